// Connection quality from getStats readings. Run: node --test web/tests
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { qualityOf, levelOf } from '../public/assets/quality.js';

const report = (...stats) => new Map(stats.map((s, i) => [s.id ?? `s${i}`, s]));

test('round trip from the selected pair, loss and bitrate since the last reading', () => {
  const pair = { id: 'p', type: 'candidate-pair', currentRoundTripTime: 0.042 };
  const first = qualityOf(report({ type: 'transport', selectedCandidatePairId: 'p' }, pair,
    { type: 'inbound-rtp', packetsLost: 0, packetsReceived: 100, bytesReceived: 10_000 }), null, 1000);
  assert.equal(first.rtt, 42);
  assert.equal(first.loss, 0);
  const second = qualityOf(report({ type: 'transport', selectedCandidatePairId: 'p' }, pair,
    { type: 'inbound-rtp', packetsLost: 5, packetsReceived: 195, bytesReceived: 35_000 },
    { type: 'inbound-rtp', packetsLost: 0, packetsReceived: 0, bytesReceived: 0 }), first.totals, 2000);
  assert.equal(second.loss, 5);
  assert.equal(second.kbps, 200);
});

test('nothing received: loss unknown, not zero', () => {
  const q = qualityOf(report(), null, 0);
  assert.equal(q.rtt, null);
  assert.equal(q.loss, null);
});

test('four bars for a good link, fewer with delay or loss', () => {
  assert.equal(levelOf({ rtt: 20, loss: 0 }), 4);
  assert.equal(levelOf({ rtt: 200, loss: 0 }), 3);
  assert.equal(levelOf({ rtt: 20, loss: 6 }), 2);
  assert.equal(levelOf({ rtt: 700, loss: null }), 1);
  assert.equal(levelOf({ rtt: null, loss: null }), 4);
});
