// Answer-to-first-remote-frame of 1:1 (MESH) calls on loopback, and the server's
// CPU per call (media is peer to peer, so it should be about nothing). Each call
// is the seed's broker flow: a connector's createCall rings the expert (B), who
// answers; then the glasses user (A) rings and answers, and media starts: the
// interval runs from A's Answer click to the later of both pages' first remote
// video frame (requestVideoFrameCallback), on the same clock.
// Run inside the loopback namespace: E2E_CMD="node bench/answer-to-frame.mjs" ./run.sh
// (CALLS=20 by default). Prints one JSON line with the figures.
import { chromium } from '@playwright/test';
import { startStack, addUser, cpuSeconds } from '../harness/stack.js';
import { launchOptions } from '../harness/browser.js';
import { api, openPage, logIn, connectorCall, hangUp } from '../harness/people.js';
import { expectRemoteVideoFlowing, sleep } from '../harness/media.js';

const CALLS = Number(process.env.CALLS ?? 20);

const quantile = (xs, q) => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
};

const firstFrameAt = (page) => page.evaluate(() => window.__e2e.firstRemoteFrameAt);
const answeredAt = (page) => page.evaluate(() => Number(sessionStorage.getItem('e2e.click.Answer')));
const forget = (page) => page.evaluate(() => {
  window.__e2e.firstRemoteFrameAt = null;
  window.__e2e.offers = 0;
  sessionStorage.removeItem('e2e.click.Answer');
  document.querySelectorAll('video').forEach((v) => { v.__e2eWatched = false; });
});

/** HTTP responses the server has answered so far, all classes (GET /metrics). */
const httpResponses = async (baseURL) => {
  const text = await (await fetch(`${baseURL}/metrics`)).text();
  return [...text.matchAll(/^callhub_http_responses_total\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
};

const stack = await startStack();
const browser = await chromium.launch(launchOptions);
try {
  const glasses = addUser(stack.env, { userId: 'glasses', displayName: 'Glasses Wearer' });
  const expert = addUser(stack.env, { userId: 'expert', displayName: 'Remote Expert' });
  const connector = addUser(stack.env, { userId: 'connector', role: 'broker' });
  const a = await openPage(browser, stack.baseURL);
  const b = await openPage(browser, stack.baseURL);
  await logIn(a, glasses);
  await logIn(b, expert);
  const rest = await api(stack.baseURL, connector);

  // The server's idle CPU over a few seconds, to set beside the calls' figure.
  const idle0 = cpuSeconds(stack.serverPid);
  const idleStart = Date.now();
  await sleep(5000);
  const idlePerSecond = (cpuSeconds(stack.serverPid) - idle0) / ((Date.now() - idleStart) / 1000);

  const samples = [];
  const cpuPerCall = [];
  const offers = []; // SDP offers both pages made per call: 1 when the first offer is answered
  const cpu0 = cpuSeconds(stack.serverPid);
  const http0 = await httpResponses(stack.baseURL);
  const start = Date.now();
  for (let i = 0; i < CALLS; i++) {
    await forget(a);
    await forget(b);
    const callCpu0 = cpuSeconds(stack.serverPid);
    await connectorCall(stack.baseURL, rest, { glasses, expert, a, b });
    await expectRemoteVideoFlowing(a);
    await expectRemoteVideoFlowing(b);
    const answered = await answeredAt(a);
    const seen = Math.max(await firstFrameAt(a), await firstFrameAt(b));
    if (!answered || !seen) throw new Error(`call ${i}: no timestamps (answer ${answered}, frame ${seen})`);
    samples.push(seen - answered);
    offers.push((await a.evaluate(() => window.__e2e.offers)) + (await b.evaluate(() => window.__e2e.offers)));
    await hangUp(a);
    await a.getByLabel('Search contacts').waitFor();
    await b.getByLabel('Search contacts').waitFor();
    cpuPerCall.push(cpuSeconds(stack.serverPid) - callCpu0);
  }
  const seconds = (Date.now() - start) / 1000;
  const cpu = cpuSeconds(stack.serverPid) - cpu0;
  const httpPerCall = (await httpResponses(stack.baseURL) - http0) / CALLS;
  console.log(JSON.stringify({
    calls: CALLS,
    answerToFirstRemoteFrameMs: { median: Math.round(quantile(samples, 0.5)), p95: Math.round(quantile(samples, 0.95)), all: samples.map(Math.round) },
    offersPerCall: offers,
    serverCpuSeconds: { total: +cpu.toFixed(3), perCall: +(cpu / CALLS).toFixed(4), overSeconds: +seconds.toFixed(1), idlePerSecond: +idlePerSecond.toFixed(4), eachCallMs: cpuPerCall.map((c) => Math.round(c * 1000)) },
    httpRequestsPerCall: +httpPerCall.toFixed(1),
  }));
} finally {
  await browser.close();
  await stack.stop();
}
