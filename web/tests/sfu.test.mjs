// The SFU peer's negotiation (API.md "Media", SFU part) against a stand-in
// RTCPeerConnection: what it offers, how it yields to the SFU's offer, how it maps
// received m-lines to people, and how a new connection replaces the old.
// Run: node --test web/tests
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';

/** Just enough of RTCPeerConnection for the negotiation: states, transceivers, descriptions. */
class FakePC {
  static all = [];

  constructor(config) {
    this.config = config;
    this.signalingState = 'stable';
    this.iceConnectionState = 'new';
    this.connectionState = 'new';
    this.transceivers = [];
    this.localDescription = null;
    this.remoteDescription = null;
    this.log = [];
    this.nextMid = 0;
    FakePC.all.push(this);
  }

  addTransceiver(trackOrKind, init = {}) {
    const kind = typeof trackOrKind === 'string' ? trackOrKind : trackOrKind.kind;
    const track = typeof trackOrKind === 'string' ? null : trackOrKind;
    const t = {
      mid: null, direction: init.direction, currentDirection: null, stopped: false, init,
      sender: { track, replaceTrack: async (x) => { t.sender.track = x; } },
      receiver: { track: { kind, readyState: 'live', muted: true, addEventListener() {} } },
    };
    this.transceivers.push(t);
    return t;
  }

  getTransceivers() { return this.transceivers; }

  async setLocalDescription(desc) {
    this.log.push(`local ${desc?.type ?? (this.signalingState === 'have-remote-offer' ? 'answer' : 'offer')}`);
    if (desc?.type === 'rollback') {
      this.signalingState = 'stable';
      this.localDescription = null;
      return;
    }
    if (this.signalingState === 'have-remote-offer') {
      this.localDescription = { type: 'answer', sdp: 'answer-sdp' };
      this.signalingState = 'stable';
      for (const t of this.transceivers) t.currentDirection = t.pending ?? t.currentDirection;
      return;
    }
    for (const t of this.transceivers) if (t.mid === null) t.mid = String(this.nextMid++);
    this.localDescription = { type: 'offer', sdp: `offer-${this.log.length}` };
    this.signalingState = 'have-local-offer';
  }

  /** A remote offer: {mids: {mid: 'sendonly' | 'inactive' | 'stopped'}} (JSON in the sdp). */
  async setRemoteDescription(desc) {
    this.log.push(`remote ${desc.type}`);
    if (desc.type === 'answer') {
      this.signalingState = 'stable';
      for (const t of this.transceivers) t.currentDirection = t.direction;
      this.remoteDescription = desc;
      return;
    }
    if (this.signalingState === 'have-local-offer') throw new Error('glare not rolled back');
    const { mids } = JSON.parse(desc.sdp);
    for (const [mid, dir] of Object.entries(mids)) {
      let t = this.transceivers.find((x) => x.mid === mid);
      if (!t) {
        t = this.addTransceiver(mid.startsWith('v') ? 'video' : 'audio', { direction: 'recvonly' });
        t.mid = mid;
      }
      if (dir === 'stopped') t.stopped = true;
      t.pending = dir === 'sendonly' ? 'recvonly' : 'inactive';
    }
    this.remoteDescription = desc;
    this.signalingState = 'have-remote-offer';
  }

  async addIceCandidate() {}
  async getStats() { return new Map(); }
  close() { this.signalingState = 'closed'; this.connectionState = 'closed'; }
}

const track = (kind) => ({ kind, id: `${kind}-1` });
const stream = (...tracks) => ({ getAudioTracks: () => tracks.filter((t) => t.kind === 'audio'), getVideoTracks: () => tracks.filter((t) => t.kind === 'video') });
const tick = () => new Promise((r) => setTimeout(r, 0));
const sfuOffer = (mids) => ({ sdp: { type: 'offer', sdp: JSON.stringify({ mids }) } });

let SfuPeer;
let timers;
beforeEach(async () => {
  FakePC.all = [];
  globalThis.RTCPeerConnection = FakePC;
  globalThis.MediaStream = class { constructor(t) { this.tracks = t; } };
  timers = [];
  ({ SfuPeer } = await import('../public/assets/sfu.js'));
});
afterEach(() => {
  for (const p of timers) p.close();
});

function peer(opts = {}) {
  const sent = [];
  const p = new SfuPeer({ send: (x) => sent.push(x), iceServers: [], stream: stream(track('audio'), track('video')), simulcast: true, ...opts });
  timers.push(p);
  return { p, sent, pc: () => p.pc };
}

test('it offers the microphone, then the camera with three simulcast layers, both send-only', async () => {
  const { p, sent } = peer();
  await p.queue;
  const [audio, video] = p.pc.getTransceivers();
  assert.equal(audio.receiver.track.kind, 'audio');
  assert.equal(video.receiver.track.kind, 'video');
  assert.equal(audio.direction, 'sendonly');
  assert.equal(video.direction, 'sendonly');
  assert.deepEqual(video.init.sendEncodings.map((e) => e.rid), ['h', 'm', 'l']);
  assert.equal(sent.filter((x) => x.sdp?.type === 'offer').length, 1);
});

test('the camera m-line is there with the camera off', async () => {
  const { p } = peer({ stream: stream(track('audio')) });
  await p.queue;
  assert.deepEqual(p.pc.getTransceivers().map((t) => t.receiver.track.kind), ['audio', 'video']);
  assert.equal(p.pc.getTransceivers()[1].sender.track, null);
});

test('an SFU offer meeting ours wins: we roll back, answer, then offer again', async () => {
  const { p, sent } = peer();
  await p.queue; // our offer is out, unanswered
  assert.equal(p.pc.signalingState, 'have-local-offer');
  await p.signal(sfuOffer({ a1: 'sendonly' }));
  await p.queue;
  const log = p.pc.log;
  assert.deepEqual(log, ['local offer', 'local rollback', 'remote offer', 'local answer', 'local offer']);
  assert.deepEqual(sent.filter((x) => x.sdp).map((x) => x.sdp.type), ['offer', 'answer', 'offer']);
});

test('an answer to no offer of ours is ignored', async () => {
  const { p } = peer();
  await p.queue;
  await p.signal({ sdp: { type: 'answer', sdp: 'x' } });
  await p.signal({ sdp: { type: 'answer', sdp: 'y' } }); // stale
  assert.equal(p.pc.signalingState, 'stable');
  assert.deepEqual(p.pc.log, ['local offer', 'remote answer']);
});

test('received m-lines are people by the last tracks list; stopped and inactive ones are gone', async () => {
  const { p } = peer();
  await p.queue;
  await p.signal({ sdp: { type: 'answer', sdp: 'x' } });
  await p.signal({ tracks: [
    { mid: 'a1', contactId: 3, kind: 'audio', source: 'camera' },
    { mid: 'v1', contactId: 3, kind: 'video', source: 'camera' },
    { mid: 'v2', contactId: 4, kind: 'video', source: 'screen' },
  ] });
  await p.signal(sfuOffer({ a1: 'sendonly', v1: 'sendonly', v2: 'sendonly' }));
  assert.deepEqual(p.feeds().map((f) => `${f.mid} ${f.contactId} ${f.kind} ${f.source}`),
    ['a1 3 audio camera', 'v1 3 video camera', 'v2 4 video screen']);
  await p.signal({ tracks: [{ mid: 'a1', contactId: 3, kind: 'audio', source: 'camera' }, { mid: 'v1', contactId: 3, kind: 'video', source: 'camera' }] });
  await p.signal(sfuOffer({ a1: 'sendonly', v1: 'inactive', v2: 'stopped' }));
  assert.deepEqual(p.feeds().map((f) => f.mid), ['a1']);
});

test('videos the SFU pauses for our bandwidth are marked, and unmarked when it resumes them', async () => {
  const { p } = peer();
  await p.queue;
  await p.signal({ sdp: { type: 'answer', sdp: 'x' } });
  await p.signal({ tracks: [
    { mid: 'v1', contactId: 3, kind: 'video', source: 'camera' },
    { mid: 'v2', contactId: 4, kind: 'video', source: 'camera' },
  ] });
  await p.signal(sfuOffer({ v1: 'sendonly', v2: 'sendonly' }));
  let changed = 0;
  p.addEventListener('feeds', () => { changed += 1; });
  await p.signal({ paused: ['v2'] });
  assert.deepEqual(p.feeds().map((f) => `${f.mid} ${f.paused}`), ['v1 false', 'v2 true']);
  await p.signal({ paused: [] });
  assert.deepEqual(p.feeds().map((f) => f.paused), [false, false]);
  assert.equal(changed, 2, 'each change re-renders the stage');
});

test('a shared screen is a third m-line, send-only; stopping it makes it inactive and offers again', async () => {
  const { p, sent } = peer();
  await p.queue;
  await p.signal({ sdp: { type: 'answer', sdp: 'x' } });
  const screen = track('video');
  await p.shareScreen(screen);
  await p.queue;
  const t = p.pc.getTransceivers()[2];
  assert.equal(t.direction, 'sendonly');
  assert.equal(t.sender.track, screen);
  await p.signal({ sdp: { type: 'answer', sdp: 'x' } });
  await p.stopScreen();
  await p.queue;
  assert.equal(t.direction, 'inactive');
  assert.equal(t.sender.track, null);
  assert.equal(sent.filter((x) => x.sdp?.type === 'offer').length, 3);
});

test('a restart closes the connection and offers from a new one, screen share included', async () => {
  const { p, sent } = peer();
  await p.queue;
  await p.shareScreen(track('video'));
  const old = p.pc;
  p.restart();
  await p.queue;
  await tick();
  assert.equal(old.signalingState, 'closed');
  assert.notEqual(p.pc, old);
  assert.equal(p.pc.getTransceivers().length, 3);
  assert.equal(p.state, 'reconnecting');
  assert.equal(sent.at(-1).sdp.type, 'offer');
});

test('the SFU asking for a restart (its node stops) means a new connection, offered again', async () => {
  const { p, sent } = peer();
  await p.queue;
  await p.signal({ sdp: { type: 'answer', sdp: 'x' } });
  const old = p.pc;
  await p.signal({ restart: true });
  await tick();
  await p.queue;
  await tick();
  assert.equal(old.signalingState, 'closed');
  assert.notEqual(p.pc, old);
  assert.equal(sent.at(-1).sdp.type, 'offer');
});

test('ICE disconnected for more than 5 s means a new connection', async () => {
  const { p } = peer();
  await p.queue;
  await p.signal({ sdp: { type: 'answer', sdp: 'x' } });
  const first = p.pc;
  first.iceConnectionState = 'connected';
  p.watch();
  first.iceConnectionState = 'disconnected';
  const realNow = Date.now;
  const t0 = realNow();
  try {
    Date.now = () => t0;
    p.watch();
    Date.now = () => t0 + 4000;
    p.watch();
    assert.equal(p.pc, first);
    Date.now = () => t0 + 5500;
    p.watch();
    assert.notEqual(p.pc, first);
  } finally {
    Date.now = realNow;
  }
});
