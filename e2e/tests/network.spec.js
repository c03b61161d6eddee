// Media over bad paths: relay-only through coturn, and a 3-second outage. The
// calls start as the seed's connector starts them (call.spec.js covers the dashboard).
import { test, expect } from './fixtures.js';
import { connectorCall, logIn } from '../harness/people.js';
import { expectRemoteVideoFlowing, mediaStats, sleep } from '../harness/media.js';
import { blockPorts, localPorts } from '../harness/outage.js';

/** Two people logged in on pages of their own, and a connector to call them. */
async function twoPeople({ person, newPage }, pageOptions) {
  const glasses = person('glasses', { displayName: 'Glasses Wearer' });
  const expert = person('expert', { displayName: 'Remote Expert' });
  const connector = person('connector', { role: 'broker' });
  const a = await newPage(pageOptions);
  const b = await newPage(pageOptions);
  await logIn(a, glasses);
  await logIn(b, expert);
  return { glasses, expert, connector, a, b };
}

test('relay only: both sides forced through coturn still see each other', async ({ person, newPage, stack }) => {
  const people = await twoPeople({ person, newPage }, { relay: true });
  const { a, b } = people;
  await connectorCall(stack.baseURL, people.connector, people);
  for (const page of [a, b]) {
    const { stats } = await expectRemoteVideoFlowing(page);
    expect(stats.policies).toEqual(['relay']);
    expect(stats.pairs.length).toBeGreaterThan(0);
    for (const pair of stats.pairs) expect(pair.local, JSON.stringify(pair)).toBe('relay');
  }
});

test('one side offline for 3 s: the call recovers within 10 s and nobody leaves', async ({ person, newPage, stack }) => {
  const people = await twoPeople({ person, newPage });
  const { a, b } = people;
  const { rest, call } = await connectorCall(stack.baseURL, people.connector, people);
  await expectRemoteVideoFlowing(a);
  await expectRemoteVideoFlowing(b);

  // A loses its network: its page goes offline (HTTP and WebSocket) and every
  // port its peer connection gathered a candidate on is blocked.
  const ports = await localPorts(a);
  expect(ports.length).toBeGreaterThan(0);
  await a.context().setOffline(true);
  const unblock = blockPorts(ports);
  await sleep(1000);
  const during = (await mediaStats(b)).framesDecoded;
  await sleep(2000);
  const stalled = (await mediaStats(b)).framesDecoded;
  unblock();
  await a.context().setOffline(false);
  expect(stalled - during, 'B decoded (almost) nothing of A while A was offline').toBeLessThan(10);

  const back = Date.now();
  await expectRemoteVideoFlowing(b, { timeout: 10000 });
  await expectRemoteVideoFlowing(a, { timeout: Math.max(1000, 10000 - (Date.now() - back)) });
  const recoveredMs = Date.now() - back;
  expect(recoveredMs).toBeLessThan(10000);
  const iceStates = await a.evaluate(() => window.__e2e.iceStates.join(' '));
  test.info().annotations.push({ type: 'recovery', description: `video flowing both ways ${recoveredMs} ms after the network came back; A's ICE: ${iceStates}` });

  const log = await rest.get(`/rtc/getCallLogById?callId=${call.callId}`);
  expect(log.callStatus).toBe('Started');
  expect(log.callEvents.map((e) => e.type)).not.toContain('Leave');
});
