// The web client's total size: every file under web/public, raw and compressed
// (gzip -9 and brotli 11). With a server's URL, or --serve (start the e2e stack;
// inside the namespace: E2E_CMD="node bench/client-size.mjs --serve" e2e/run.sh),
// also the bytes the server sends for each with `Accept-Encoding: br`, `gzip`, none.
// Run: node e2e/bench/client-size.mjs [URL | --serve]. Prints one JSON line.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { get } from 'node:http';
import { join, relative, sep } from 'node:path';
import { gzipSync, brotliCompressSync, constants } from 'node:zlib';
import { REPO, startStack } from '../harness/stack.js';

const root = join(REPO, 'web', 'public');
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path); else files.push(path);
  }
};
walk(root);
const out = { files: files.length, rawBytes: 0, gzipBytes: 0, brotliBytes: 0 };
for (const f of files) {
  const bytes = readFileSync(f);
  out.rawBytes += bytes.length;
  out.gzipBytes += gzipSync(bytes, { level: 9 }).length;
  out.brotliBytes += brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length;
}

/** Body bytes as sent (no decoding), and the encoding the server chose. */
const sent = (url, encoding) => new Promise((res, rej) => {
  get(url, { headers: encoding ? { 'accept-encoding': encoding } : {} }, (r) => {
    let n = 0;
    r.on('data', (c) => { n += c.length; });
    r.on('end', () => (r.statusCode === 200 ? res(n) : rej(new Error(`${url}: ${r.statusCode}`))));
  }).on('error', rej);
});

const stack = process.argv[2] === '--serve' ? await startStack() : null;
const base = stack?.baseURL ?? process.argv[2];
if (base) {
  const paths = files.map((f) => `/${relative(root, f).split(sep).join('/')}`.replace(/^\/index\.html$/, '/'));
  for (const [key, enc] of [['servedBrBytes', 'br'], ['servedGzipBytes', 'gzip'], ['servedIdentityBytes', null]]) {
    out[key] = 0;
    for (const p of paths) out[key] += await sent(`${base}${p}`, enc);
  }
}
await stack?.stop();
console.log(JSON.stringify(out));
