// The web client's total size: every file under web/public as served, raw and
// compressed (gzip -9 and brotli, the encodings browsers accept).
// Run: node e2e/bench/client-size.mjs. Prints one JSON line.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync, brotliCompressSync, constants } from 'node:zlib';
import { REPO } from '../harness/stack.js';

const root = join(REPO, 'web', 'public');
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path); else files.push(path);
  }
};
walk(root);
let raw = 0, gzip = 0, brotli = 0;
for (const f of files) {
  const bytes = readFileSync(f);
  raw += bytes.length;
  gzip += gzipSync(bytes, { level: 9 }).length;
  brotli += brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length;
}
console.log(JSON.stringify({ files: files.length, rawBytes: raw, gzipBytes: gzip, brotliBytes: brotli }));
