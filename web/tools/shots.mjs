// Screenshots of the web client's pages, for whoever works on it: login, dashboard
// (wide and phone width), the incoming-call pop-up, both sides of a real 1:1 call,
// and the guest page. Runs the browser tests' stack (e2e/harness: callhub on a
// temporary SQLite database, the SMTP sink, coturn) and Debian's Chromium with a
// fake camera, on loopback only (MEDIA.md), as root:
//
//   unshare -n bash -c 'ip link set lo up && node web/tools/shots.mjs [out-dir]'
//
// Needs e2e's packages (cd e2e && npm ci) and a built callhub ($CALLHUB_BIN, else
// $CARGO_TARGET_DIR/debug/callhub; build it with CALLHUB_WEB_FROM_DISK=1 to see
// edits of web/public without rebuilding).
import { join, resolve } from 'node:path';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { startStack, addUser } from '../../e2e/harness/stack.js';
import { launchOptions } from '../../e2e/harness/browser.js';
import { api, contactOf, logIn, callFromDashboard, answer } from '../../e2e/harness/people.js';

// playwright-core and axe-core are e2e's packages: resolve them from there.
const e2eRequire = createRequire(new URL('../../e2e/package.json', import.meta.url));
const { chromium } = e2eRequire('playwright-core');
const { default: AxeBuilder } = await import(e2eRequire.resolve('@axe-core/playwright'));
const out = resolve(process.argv[2] || '/tmp/callhub-shots');
mkdirSync(out, { recursive: true });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const stack = await startStack();
let browser;
try {
  const person = (userId, displayName) => addUser(stack.env, { userId, displayName });
  const [alice, bob, carol, dan] = [person('alice', 'Alice Martin'), person('bob', 'Bob Keller'),
    person('carol', 'Carol Nguyen'), person('dan', 'Dan Okafor')];
  const [ra, rb, rc] = [await api(stack.baseURL, alice), await api(stack.baseURL, bob), await api(stack.baseURL, carol)];
  const req = (title, invited, extra = {}) => ({
    callTitle: title, callReason: 'STANDARD', callType: invited.length > 1 ? 'SFU' : 'MESH',
    invitedContacts: invited.map(contactOf), invitedTeams: [], joinAnonymousAllowed: true, informOthersDirectly: true, ...extra,
  });
  // Some history for the dashboard: an answered call, a declined one, a planned one.
  let c = await ra.post('/rtc/createCall', req('Pump inspection', [bob]));
  await rb.post(`/rtc/joinCall?callId=${c.callId}`);
  await sleep(1200);
  await ra.post(`/rtc/leaveCall?callId=${c.callId}`);
  c = await ra.post('/rtc/createCall', req('Line 3 stoppage', [carol]));
  await rc.post(`/rtc/declineCall?callId=${c.callId}`);
  await ra.post('/rtc/createCall', req('Weekly review', [bob, carol], { plannedDateTime: new Date(Date.now() + 26 * 3600e3).toISOString() }));

  browser = await chromium.launch(launchOptions);
  const page = async (width = 1280, height = 800) => {
    const ctx = await browser.newContext({ baseURL: stack.baseURL, viewport: { width, height } });
    const p = await ctx.newPage();
    p.on('pageerror', (e) => console.log(`[page error] ${e.message}`));
    return p;
  };
  const shot = async (p, name) => {
    await p.screenshot({ path: join(out, `${name}.png`) });
    console.log(`wrote ${join(out, `${name}.png`)}`);
    // axe-core's serious and critical findings on the same page, as the e2e tests count them.
    const { violations } = await new AxeBuilder({ page: p }).analyze();
    for (const v of violations.filter((x) => ['serious', 'critical'].includes(x.impact))) {
      console.log(`  axe ${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join('; ')})`);
    }
  };

  const a = await page();
  await a.goto('/');
  await a.getByLabel('Username').waitFor();
  await shot(a, 'login');
  await logIn(a, alice);
  await a.locator('.history-item').first().click();
  await sleep(500);
  await shot(a, 'dashboard');
  const phone = await page(390, 844);
  await logIn(phone, carol);
  await sleep(500);
  await shot(phone, 'dashboard-phone');

  const b = await page();
  await logIn(b, bob);
  try {
    await callFromDashboard(a, bob);
  } catch {
    // No directory on this server yet: the same call, made by the API.
    const call = await ra.post('/rtc/createCall', req('Call with Bob Keller', [bob]));
    await a.goto(`/call/${call.callId}`);
  }
  await b.getByRole('alertdialog', { name: 'Incoming call' }).waitFor();
  await sleep(400);
  await shot(b, 'popup');
  await shot(a, 'call-calling');
  await answer(b);
  for (const p of [a, b]) {
    await p.waitForFunction(() => {
      const v = document.querySelector('video[data-contact-id]');
      return v && v.videoWidth > 0 && v.getVideoPlaybackQuality().totalVideoFrames > 10;
    }, null, { timeout: 20000 });
  }
  await sleep(2500);
  await shot(a, 'call-a');
  await shot(b, 'call-b');
  await b.setViewportSize({ width: 390, height: 844 });
  await sleep(500);
  await shot(b, 'call-phone');
  await a.getByRole('button', { name: 'Hang up' }).click();
  await a.getByLabel('Search contacts').waitFor();

  const open = await ra.post('/rtc/createCall', req('Visit of the auditor', [dan]));
  await a.getByRole('listitem').filter({ hasText: 'Visit of the auditor' }).getByRole('button', { name: 'Join' }).first().click();
  const g = await page();
  await g.goto(open.joinUrl);
  await g.getByLabel('Your name').waitFor();
  await shot(g, 'guest');
  await g.getByLabel('Your name').fill('Erin (auditor)');
  await g.getByRole('button', { name: 'Join' }).click();
  await g.getByRole('button', { name: 'Hang up' }).waitFor();
  await sleep(3000);
  await shot(g, 'guest-call');
  await shot(a, 'call-with-guest');
  await a.getByRole('button', { name: 'Hang up' }).click();

  // A group call: two people picked from the directory.
  await a.getByLabel('Search contacts').waitFor();
  await a.getByLabel('Select Bob Keller').check();
  await a.getByLabel('Select Carol Nguyen').check();
  await sleep(300);
  await shot(a, 'group-selection');
  await a.getByRole('button', { name: 'Start group call' }).click();
  await a.getByRole('button', { name: 'Hang up' }).waitFor();
  await sleep(1500);
  await shot(a, 'call-sfu');
} finally {
  await browser?.close();
  await stack.stop();
}
