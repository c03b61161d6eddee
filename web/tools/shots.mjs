// Screenshots of the web client's pages, for whoever works on it: login, dashboard
// (wide and phone width), the incoming-call pop-up, both sides of a real 1:1 call,
// and the guest page. Runs a real callhub on a temporary SQLite database and
// Debian's Chromium with a fake camera. On loopback only (MEDIA.md), as root:
//
//   unshare -n bash -c 'ip link set lo up && node web/tools/shots.mjs [out-dir]'
//
// Needs playwright-core (e2e/node_modules) and a built callhub
// ($CALLHUB_BIN, else $CARGO_TARGET_DIR/debug/callhub).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { chromium } = createRequire(join(repo, 'e2e', 'package.json'))('playwright-core');
const out = resolve(process.argv[2] || '/tmp/callhub-shots');
const bin = process.env.CALLHUB_BIN || join(process.env.CARGO_TARGET_DIR || join(repo, 'target'), 'debug', 'callhub');
const port = 18080 + Math.floor(Math.random() * 1000);
const base = `http://127.0.0.1:${port}`;
const data = mkdtempSync(join(tmpdir(), 'callhub-shots-'));
mkdirSync(out, { recursive: true });
const env = {
  ...process.env,
  CALLHUB_LISTEN: `127.0.0.1:${port}`,
  CALLHUB_PUBLIC_URL: base,
  CALLHUB_DATA_DIR: data,
  CALLHUB_DATABASE_URL: `sqlite://${join(data, 'callhub.db')}`,
  CALLHUB_CONFIG: join(data, 'none.toml'),
};

function user(id, name, email) {
  const r = spawnSync(bin, ['user', 'add', '--domain', 'ubimax', '--user-id', id, '--display-name', name, '--email', email, '--password-stdin'],
    { env, input: 'secret-pass-1\n' });
  if (r.status !== 0) throw new Error(`user add ${id}: ${r.stderr}`);
}

async function api(token, method, path, body) {
  const r = await fetch(base + path, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const login = async (u) => (await api(null, 'POST', '/login', { username: u, password: 'secret-pass-1', domain: 'ubimax' })).accessToken;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

spawnSync(bin, ['migrate'], { env });
user('alice', 'Alice Martin', 'alice@example.com');
user('bob', 'Bob Keller', 'bob@example.com');
user('carol', 'Carol Nguyen', 'carol@example.com');
user('dan', 'Dan Okafor', 'dan@example.com');
spawnSync(bin, ['team', 'add', '--domain', 'ubimax', '--name', 'Remote experts', '--member', 'bob', '--member', 'carol'], { env });
const server = spawn(bin, ['serve'], { env, stdio: ['ignore', 'inherit', 'inherit'] });
let browser;
try {
  for (let i = 0; ; i++) {
    try { if ((await fetch(`${base}/health`)).ok) break; } catch { /* starting */ }
    if (i > 100) throw new Error('callhub did not start');
    await sleep(100);
  }
  // Some history for the dashboard: an answered call, a declined one, a planned one.
  const [ta, tb, tc] = [await login('alice'), await login('bob'), await login('carol')];
  const contact = (id, name) => ({ userId: id, domain: 'ubimax', displayName: name });
  const req = (title, invited, extra = {}) => ({
    callTitle: title, callReason: 'STANDARD', callType: invited.length > 1 ? 'SFU' : 'MESH',
    invitedContacts: invited, invitedTeams: [], joinAnonymousAllowed: true, informOthersDirectly: true, ...extra,
  });
  let c = await api(ta, 'POST', '/rtc/createCall', req('Pump inspection', [contact('bob', 'Bob Keller')]));
  await api(tb, 'POST', `/rtc/joinCall?callId=${c.callId}`);
  await sleep(1200);
  await api(ta, 'POST', `/rtc/leaveCall?callId=${c.callId}`);
  c = await api(ta, 'POST', '/rtc/createCall', req('Line 3 stoppage', [contact('carol', 'Carol Nguyen')]));
  await api(tc, 'POST', `/rtc/declineCall?callId=${c.callId}`);
  await api(ta, 'POST', '/rtc/createCall', req('Weekly review', [contact('bob', 'Bob Keller'), contact('carol', 'Carol Nguyen')],
    { plannedDateTime: new Date(Date.now() + 26 * 3600e3).toISOString() }));

  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--no-sandbox',
      '--autoplay-policy=no-user-gesture-required', '--disable-features=WebRtcHideLocalIpsWithMdns',
      '--allow-loopback-in-peer-connection'],
  });
  const page = async (w = 1280, h = 800) => {
    const ctx = await browser.newContext({ viewport: { width: w, height: h }, permissions: ['camera', 'microphone'] });
    const p = await ctx.newPage();
    p.on('console', (m) => m.type() === 'error' && console.log(`[page] ${m.text()}`));
    p.on('pageerror', (e) => console.log(`[page error] ${e.message}`));
    return p;
  };
  const logIn = async (p, u) => {
    await p.goto(base + '/');
    await p.getByLabel('Username').fill(u);
    await p.getByLabel('Password').fill('secret-pass-1');
    await p.getByLabel('Domain').fill('ubimax');
    await p.getByRole('button', { name: 'Log in' }).click();
    await p.getByLabel('Search contacts').waitFor();
  };
  const shot = async (p, name) => {
    await p.screenshot({ path: join(out, `${name}.png`) });
    console.log(`wrote ${join(out, `${name}.png`)}`);
  };

  const a = await page();
  await a.goto(base + '/');
  await a.getByLabel('Username').waitFor();
  await shot(a, 'login');
  await logIn(a, 'alice');
  await a.locator('.history-item').first().click();
  await sleep(500);
  await shot(a, 'dashboard');
  const phone = await page(390, 844);
  await logIn(phone, 'carol');
  await sleep(500);
  await shot(phone, 'dashboard-phone');

  const b = await page();
  await logIn(b, 'bob');
  const callBob = a.locator('li.person', { hasText: 'Bob Keller' }).getByRole('button', { name: 'Call', exact: true });
  if (await callBob.count()) {
    await callBob.click();
  } else {
    // No directory on this server yet: the same call, made by the API.
    const call = await api(ta, 'POST', '/rtc/createCall', req('Call with Bob Keller', [contact('bob', 'Bob Keller')]));
    await a.goto(`${base}/call/${call.callId}`);
  }
  const dialog = b.getByRole('alertdialog', { name: 'Incoming call' });
  await dialog.waitFor();
  await sleep(400);
  await shot(b, 'popup');
  await shot(a, 'call-calling');
  await dialog.getByRole('button', { name: 'Answer', exact: true }).click();
  for (const p of [a, b]) {
    await p.waitForFunction(() => {
      const v = document.querySelector('video[data-contact-id]');
      return v && v.videoWidth > 0 && v.getVideoPlaybackQuality().totalVideoFrames > 10;
    }, null, { timeout: 20000 });
  }
  await sleep(2500);
  await shot(a, 'call-a');
  await shot(b, 'call-b');
  const phoneCall = b; // the same call at phone width
  await phoneCall.setViewportSize({ width: 390, height: 844 });
  await sleep(500);
  await shot(phoneCall, 'call-phone');
  await a.getByRole('button', { name: 'Hang up' }).click();
  await a.getByLabel('Search contacts').waitFor();

  const open = await api(ta, 'POST', '/rtc/createCall', req('Visit of the auditor', [contact('dan', 'Dan Okafor')]));
  const g = await page();
  await g.goto(open.joinUrl);
  await g.getByLabel('Your name').waitFor();
  await shot(g, 'guest');
  await g.getByLabel('Your name').fill('Erin (auditor)');
  await g.getByRole('button', { name: 'Join' }).click();
  await g.getByRole('button', { name: 'Hang up' }).waitFor();
  await sleep(1500);
  await shot(g, 'guest-call');
} finally {
  await browser?.close();
  server.kill('SIGTERM');
  rmSync(data, { recursive: true, force: true });
}
