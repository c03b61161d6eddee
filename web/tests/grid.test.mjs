// The SFU stage's pure parts: the SFU's tracks list, the tiles of a call, the grid's
// shape, who is large in focus mode. Run: node --test web/tests
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tracksByMid, tilesOf, gridShape, focusOf, headcount, leftOf, tileKey } from '../public/assets/grid.js';

const feed = (contactId, kind, source = 'camera', track = `${contactId}-${kind}-${source}`) => ({ contactId, kind, source, track });

test('the tracks list is read by mid, and malformed entries are dropped', () => {
  const m = tracksByMid([
    { mid: '1', contactId: 3, kind: 'video', source: 'camera' },
    { mid: 2, contactId: 3, kind: 'audio', source: 'camera' },
    { mid: '3', contactId: 4, kind: 'video', source: 'screen' },
    { mid: '4', contactId: 'x', kind: 'video' },
    { mid: '5', contactId: 5, kind: 'data' },
    null,
  ]);
  assert.deepEqual([...m.keys()], ['1', '2', '3']);
  assert.deepEqual(m.get('2'), { contactId: 3, kind: 'audio', source: 'camera' });
  assert.equal(m.get('3').source, 'screen');
  assert.equal(tracksByMid(undefined).size, 0);
});

test('everyone in the call has a tile before their media arrives, ourselves excepted', () => {
  const tiles = tilesOf({ feeds: [], inCall: [1, 2, 3], selfId: 1 });
  assert.deepEqual(tiles.map((t) => t.key), ['2:camera', '3:camera']);
  assert.equal(tiles[0].video, null);
});

test('a person\'s camera and voice share a tile; a shared screen is a tile of its own, after the people', () => {
  const tiles = tilesOf({
    feeds: [feed(4, 'video', 'screen'), feed(3, 'audio'), feed(3, 'video'), feed(2, 'video')],
    inCall: [1, 2, 3, 4],
    selfId: 1,
  });
  assert.deepEqual(tiles.map((t) => t.key), ['2:camera', '3:camera', '4:camera', '4:screen']);
  assert.equal(tiles[1].video, '3-video-camera');
  assert.equal(tiles[1].audio, '3-audio-camera');
  assert.equal(tiles[3].video, '4-video-screen');
});

test('a paused video marks its tile, camera or screen; audio does not', () => {
  const tiles = tilesOf({
    feeds: [{ ...feed(2, 'video'), paused: true }, feed(2, 'audio'), feed(3, 'video'), { ...feed(3, 'video', 'screen'), paused: true }],
    inCall: [1, 2, 3],
    selfId: 1,
  });
  assert.deepEqual(tiles.map((t) => `${t.key} ${t.paused}`), ['2:camera true', '3:camera false', '3:screen true']);
});

test('someone the SFU sends media of gets a tile even if the log does not know them yet', () => {
  const tiles = tilesOf({ feeds: [feed(9, 'video')], inCall: [1], selfId: 1 });
  assert.deepEqual(tiles.map((t) => t.key), ['9:camera']);
});

test('someone who left has no tile, even while their media is still in flight', () => {
  const tiles = tilesOf({ feeds: [feed(2, 'video'), feed(2, 'video', 'screen')], inCall: [1, 3], left: [2], selfId: 1 });
  assert.deepEqual(tiles.map((t) => t.key), ['3:camera']);
});

test('who left is read from the log: the last of Join and Leave counts, Ended empties the call', () => {
  const ev = (type, id) => ({ type, contact: id ? { id } : null });
  assert.deepEqual(leftOf([ev('Join', 1), ev('Join', 2), ev('Leave', 2)]), [2]);
  assert.deepEqual(leftOf([ev('Join', 2), ev('Leave', 2), ev('Join', 2)]), []);
  assert.deepEqual(leftOf([ev('Join', 1), ev('Join', 2), ev('Ended')]).sort(), [1, 2]);
});

test('the grid is the shape with the largest tiles', () => {
  // 16:9 stage, 16:9 tiles.
  assert.deepEqual(gridShape(1, 1600, 900), { cols: 1, rows: 1 });
  assert.deepEqual(gridShape(2, 1600, 900), { cols: 2, rows: 1 });
  assert.deepEqual(gridShape(4, 1600, 900), { cols: 2, rows: 2 });
  assert.deepEqual(gridShape(5, 1600, 900), { cols: 3, rows: 2 });
  assert.deepEqual(gridShape(9, 1600, 900), { cols: 3, rows: 3 });
  // A phone held upright stacks them.
  assert.deepEqual(gridShape(2, 400, 800), { cols: 1, rows: 2 });
  assert.deepEqual(gridShape(4, 400, 800), { cols: 1, rows: 4 });
  // An unmeasured stage (not laid out yet) still gets a square-ish grid.
  assert.deepEqual(gridShape(5, 0, 0), { cols: 3, rows: 2 });
  assert.deepEqual(gridShape(0, 100, 100), { cols: 1, rows: 1 });
});

test('every tile fits: the grid has at least as many cells as tiles', () => {
  for (let n = 1; n <= 25; n++) {
    for (const [w, h] of [[1280, 600], [390, 700], [800, 800], [2000, 400]]) {
      const { cols, rows } = gridShape(n, w, h);
      assert.ok(cols * rows >= n, `${n} tiles in ${w}x${h}`);
      assert.ok(cols * rows - n < cols, `no empty row for ${n} in ${w}x${h}`);
    }
  }
});

test('focus: pinned first, then a shared screen, then the active speaker, then the last one who spoke', () => {
  const tiles = tilesOf({ feeds: [], inCall: [1, 2, 3, 4], selfId: 1 });
  assert.equal(focusOf({ tiles, selfId: 1 }), '2:camera');
  assert.equal(focusOf({ tiles, speaker: 3, selfId: 1 }), '3:camera');
  // We speak: the one who spoke before stays large.
  assert.equal(focusOf({ tiles, speaker: 1, lastSpeaker: 4, selfId: 1 }), '4:camera');
  assert.equal(focusOf({ tiles, pinned: '2:camera', speaker: 3, selfId: 1 }), '2:camera');
  const withScreen = tilesOf({ feeds: [feed(3, 'video', 'screen')], inCall: [1, 2, 3], selfId: 1 });
  assert.equal(focusOf({ tiles: withScreen, speaker: 2, selfId: 1 }), tileKey(3, 'screen'));
  // A pin on someone who left no longer holds.
  assert.equal(focusOf({ tiles, pinned: '9:camera', speaker: 4, selfId: 1 }), '4:camera');
  assert.equal(focusOf({ tiles: [], selfId: 1 }), null);
});

test('the headcount counts ourselves once', () => {
  assert.equal(headcount(new Set([1, 2, 3]), 1), 3);
  assert.equal(headcount([2, 3], 1), 3);
  assert.equal(headcount([], 1), 1);
});
