// Runs the fake SFU (hub.html) and n web client pages (client.html) in Debian's
// Chromium with a fake camera, and takes screenshots of the grid and focus modes:
//   node web/tools/fake-sfu/run.mjs [n=4] [out-dir=/tmp/fake-sfu]
// Needs e2e's packages (cd e2e && npm ci). Serves web/ on 127.0.0.1:18090.
import http from 'node:http';
import { readFile, mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join, resolve, extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchOptions, observeMedia, smallMedia } from '../../../e2e/harness/browser.js';

const e2eRequire = createRequire(new URL('../../../e2e/package.json', import.meta.url));
const { chromium } = e2eRequire('playwright-core');
const WEB = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const n = Number(process.argv[2] || 4);
const out = resolve(process.argv[3] || '/tmp/fake-sfu');
await mkdir(out, { recursive: true });
const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' };
const server = http.createServer(async (req, res) => {
  const path = join(WEB, decodeURIComponent(new URL(req.url, 'http://x').pathname));
  if (!path.startsWith(WEB)) return res.writeHead(403).end();
  try {
    const body = await readFile(path);
    res.writeHead(200, { 'content-type': types[extname(path)] || 'application/octet-stream' }).end(body);
  } catch {
    res.writeHead(404).end();
  }
}).listen(18090, '127.0.0.1');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const browser = await chromium.launch(launchOptions);
try {
  const ctx = await browser.newContext({ baseURL: 'http://127.0.0.1:18090', viewport: { width: 1280, height: 800 } });
  await ctx.addInitScript(observeMedia);
  await ctx.addInitScript(smallMedia, { width: 320, height: 180 });
  const hub = await ctx.newPage();
  hub.on('console', (m) => console.log('[hub]', m.text()));
  await hub.goto('/tools/fake-sfu/hub.html');
  const pages = [];
  for (let id = 1; id <= n; id++) {
    const p = await ctx.newPage();
    p.on('console', (m) => console.log(`[${id}]`, m.text()));
    p.on('pageerror', (e) => console.log(`[${id}] ERROR`, e.message));
    await p.goto(`/tools/fake-sfu/client.html?id=${id}&n=${n}`);
    pages.push(p);
    if (id === n - 1) await sleep(3000); // the last one joins late
  }
  await sleep(6000);
  const frames = async (p) => p.evaluate(() => [...document.querySelectorAll('video[data-contact-id]')]
    .map((v) => `${v.dataset.contactId}:${v.dataset.source} ${v.videoWidth}x${v.videoHeight} f=${v.getVideoPlaybackQuality().totalVideoFrames}`));
  for (const [i, p] of pages.entries()) console.log(`page ${i + 1}:`, (await frames(p)).join(' | '));
  const a = pages[0];
  await a.bringToFront();
  await a.screenshot({ path: join(out, 'grid.png') });
  await a.getByRole('button', { name: 'Focus' }).click();
  await sleep(500);
  await a.screenshot({ path: join(out, 'focus.png') });
  await pages[1].getByRole('button', { name: 'Share screen' }).click();
  await sleep(5000);
  for (const [i, p] of pages.entries()) console.log(`page ${i + 1}:`, (await frames(p)).join(' | '));
  await a.screenshot({ path: join(out, 'focus-screen.png') });
  await a.getByRole('button', { name: 'Grid' }).click();
  await sleep(500);
  await a.screenshot({ path: join(out, 'grid-screen.png') });
  await pages[1].getByRole('button', { name: 'Share screen' }).click();
  await sleep(3000);
  for (const [i, p] of pages.entries()) console.log(`page ${i + 1}:`, (await frames(p)).join(' | '));
  // Camera off at 3: its tile shows the avatar at the others.
  await pages[2].getByRole('button', { name: 'Camera' }).click();
  await sleep(4000);
  console.log('tile of 3 at 1:', await a.locator('figure[data-contact-id="3"][data-source="camera"]').getAttribute('class'));
  await a.screenshot({ path: join(out, 'camera-off.png') });
  await pages[2].getByRole('button', { name: 'Camera' }).click();
  // 4 starts over with a new connection (as after ICE failure) while 2 shares its screen: glare on the way.
  await Promise.all([pages[3].evaluate(() => window.view.sfu.restart()), pages[1].getByRole('button', { name: 'Share screen' }).click()]);
  await sleep(7000);
  for (const [i, p] of pages.entries()) console.log(`page ${i + 1}:`, (await frames(p)).join(' | '));
  console.log('offers made by 4:', await pages[3].evaluate(() => window.__e2e.offers), 'pcs:', await pages[3].evaluate(() => window.__e2e.pcs.map((pc) => pc.connectionState).join()));
  await pages[0].setViewportSize({ width: 390, height: 800 });
  await sleep(500);
  await a.screenshot({ path: join(out, 'phone.png') });
  await a.getByRole('button', { name: 'Focus' }).click();
  await sleep(500);
  await a.screenshot({ path: join(out, 'phone-focus.png') });
  console.log(await hub.evaluate(() => document.getElementById('log').textContent));
} finally {
  await browser.close();
  server.close();
}
