// Media over bad paths: relay-only through coturn, and a 3-second outage.
import { execFileSync } from 'node:child_process';
import { test, expect } from './fixtures.js';
import { api, callAndAnswer, logIn } from '../harness/people.js';
import { expectRemoteVideoFlowing, mediaStats, sleep } from '../harness/media.js';

test('relay only: both sides forced through coturn still see each other', async ({ person, newPage }) => {
  const alice = person('alice', { displayName: 'Alice Field' });
  const bob = person('bob', { displayName: 'Bob Expert' });
  const a = await newPage({ relay: true });
  const b = await newPage({ relay: true });
  await logIn(a, alice);
  await logIn(b, bob);
  await callAndAnswer(a, b, bob);
  for (const page of [a, b]) {
    const { stats } = await expectRemoteVideoFlowing(page);
    expect(stats.policies).toEqual(['relay']);
    expect(stats.pairs.length).toBeGreaterThan(0);
    for (const pair of stats.pairs) expect(pair.local, JSON.stringify(pair)).toBe('relay');
  }
});

/** nftables inside the test's namespace: drop every packet to or from these ports. */
function blockPorts(ports) {
  const set = ports.join(', ');
  execFileSync('nft', ['-f', '-'], {
    input: `table inet e2e_outage {
      chain input { type filter hook input priority 0; policy accept;
        udp sport { ${set} } drop; udp dport { ${set} } drop;
        tcp sport { ${set} } drop; tcp dport { ${set} } drop; }
    }\n`,
  });
  return () => execFileSync('nft', ['delete', 'table', 'inet', 'e2e_outage']);
}

test('one side offline for 3 s: the call recovers within 10 s and nobody leaves', async ({ person, newPage, stack }) => {
  const alice = person('alice', { displayName: 'Alice Field' });
  const bob = person('bob', { displayName: 'Bob Expert' });
  const a = await newPage();
  const b = await newPage();
  await logIn(a, alice);
  await logIn(b, bob);
  await callAndAnswer(a, b, bob);
  await expectRemoteVideoFlowing(a);
  await expectRemoteVideoFlowing(b);

  // A loses its network: its page goes offline (HTTP and WebSocket) and every
  // port its peer connection gathered a candidate on is blocked.
  const ports = await a.evaluate(async () => {
    const found = new Set();
    for (const pc of window.__e2e.pcs) {
      for (const s of (await pc.getStats()).values()) if (s.type === 'local-candidate' && s.port > 9) found.add(s.port);
    }
    return [...found];
  });
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
  expect(Date.now() - back).toBeLessThan(10000);

  const call = await (await api(stack.baseURL, alice)).latestCall();
  expect(call.callStatus).toBe('Started');
  expect(call.callEvents.map((e) => e.type)).not.toContain('Leave');
});
