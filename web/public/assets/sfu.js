// One peer connection to the node's SFU, negotiated as API.md "Media" (SFU part)
// says: we send microphone, camera (simulcast h/m/l) and, while sharing, our screen;
// the SFU offers the others' tracks and names them by mid in its `tracks` message.
// We are the polite side. After ICE or socket loss a NEW connection replaces the
// old one (the SFU knows it by its new DTLS fingerprint).

import { qualityOf } from './quality.js';
import { tracksByMid } from './grid.js';

/** The camera's simulcast layers, full, half and quarter size. */
export const SIMULCAST = [
  { rid: 'h' },
  { rid: 'm', scaleResolutionDownBy: 2 },
  { rid: 'l', scaleResolutionDownBy: 4 },
];

const UNANSWERED_MS = 8000; // an offer with no answer by then was lost: start over
const DISCONNECTED_MS = 5000; // ICE 'disconnected' this long: start over
const NEVER_CONNECTED_MS = 15000;

/** Simulcast off: localStorage['callhub.simulcast'] = '0' (for a browser or SFU that chokes on it). */
const simulcastWanted = () => globalThis.localStorage?.getItem('callhub.simulcast') !== '0';

export class SfuPeer extends EventTarget {
  /**
   * send(payload) relays an `sfu` payload to the node; stream: our local MediaStream
   * (its audio and video tracks, either may be missing); relay: TURN only.
   * Events: 'feeds' (received tracks changed), 'speaker' (detail: contactId),
   * 'state' (see `state`), 'restart' (a new connection replaced the old one).
   */
  constructor({ send, iceServers, stream, relay = false, simulcast = simulcastWanted() }) {
    super();
    Object.assign(this, { send, iceServers, stream, relay, simulcast });
    this.screen = null; // our screen track while we share it
    this.queue = Promise.resolve();
    this.closed = false;
    this.restarts = 0;
    this.open();
    this.watchdog = setInterval(() => this.watch(), 1000);
  }

  emit(type, detail) {
    this.dispatchEvent(detail === undefined ? new Event(type) : new CustomEvent(type, { detail }));
  }

  /** A fresh RTCPeerConnection with our transceivers, offered at once. */
  open() {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, iceTransportPolicy: this.relay ? 'relay' : 'all' });
    this.pc = pc;
    this.tracks = new Map(); // mid -> {contactId, kind, source}: the SFU's latest list
    this.paused = new Set(); // mids of videos the SFU holds back for our bandwidth
    this.makingOffer = false;
    this.wantOffer = false;
    this.offeredAt = 0;
    this.openedAt = Date.now();
    this.troubleSince = 0;
    this.connectedAt = 0;
    this.lastStats = null;
    const mic = this.stream.getAudioTracks()[0];
    const cam = this.stream.getVideoTracks()[0];
    // Audio first, then the camera: the SFU takes our first video m-line as the camera,
    // so it is always there, even with the camera off (a sender without a track).
    this.audioT = pc.addTransceiver(mic || 'audio', { direction: 'sendonly', streams: [this.stream] });
    this.cameraT = pc.addTransceiver(cam || 'video', {
      direction: 'sendonly', streams: [this.stream], ...(this.simulcast ? { sendEncodings: SIMULCAST } : {}),
    });
    this.screenT = null;
    if (this.screen) this.screenT = this.addScreen(this.screen);
    pc.ontrack = ({ track }) => {
      // Chromium mutes a remote track until its media flows, and again when it stops.
      track.addEventListener('mute', () => this.emit('feeds'));
      track.addEventListener('unmute', () => this.emit('feeds'));
      track.addEventListener('ended', () => this.emit('feeds'));
    };
    pc.onnegotiationneeded = () => this.offer();
    pc.onicecandidate = ({ candidate }) => {
      if (this.pc === pc) this.send({ candidate: candidate ? candidate.toJSON() : null });
    };
    pc.oniceconnectionstatechange = () => this.pc === pc && this.emit('state');
    pc.onconnectionstatechange = () => {
      if (this.pc !== pc) return;
      if (pc.connectionState === 'connected') this.connectedAt ||= Date.now();
      this.emit('state');
    };
    this.offer();
  }

  addScreen(track) {
    return this.pc.addTransceiver(track, { direction: 'sendonly', streams: [new MediaStream([track])] });
  }

  /** 'connecting' | 'connected' | 'reconnecting' | 'closed', for the view. */
  get state() {
    if (this.closed) return 'closed';
    const s = this.pc.connectionState;
    if (s === 'connected') return 'connected';
    if (s === 'disconnected' || s === 'failed' || this.restarts > 0) return 'reconnecting';
    return 'connecting';
  }

  /** Asks for an offer: made in turn with the SFU's messages, once we are stable. */
  offer() {
    this.wantOffer = true;
    this.run(() => this.makeOffer());
  }

  run(step) {
    this.queue = this.queue.then(step).catch((e) => console.warn('sfu negotiation failed', e));
    return this.queue;
  }

  async makeOffer() {
    const pc = this.pc;
    if (!this.wantOffer || pc.signalingState !== 'stable') return; // again after the answer
    this.wantOffer = false;
    try {
      this.makingOffer = true;
      await pc.setLocalDescription();
      if (pc !== this.pc || pc.localDescription?.type !== 'offer') return;
      this.offeredAt = Date.now();
      this.send({ sdp: { type: 'offer', sdp: pc.localDescription.sdp } });
    } finally {
      this.makingOffer = false;
    }
  }

  /** An `sfu` payload from the node, handled in arrival order. */
  signal(payload) {
    return this.run(() => this.handle(payload || {}));
  }

  async handle({ sdp, candidate, tracks, activeSpeaker, restart, paused }) {
    const pc = this.pc;
    if (this.closed || pc.signalingState === 'closed') return;
    if (restart) {
      // The node carrying the call is stopping (docs/api.md "SFU calls"): a new
      // connection, offered again, lands on a live node. Outside this queue step.
      setTimeout(() => this.restart(), 0);
      return;
    }
    if (tracks) {
      // Comes right before the offer it describes: kept for when that offer is applied.
      this.tracks = tracksByMid(tracks);
      return;
    }
    if (activeSpeaker !== undefined) {
      this.emit('speaker', activeSpeaker);
      return;
    }
    if (Array.isArray(paused)) {
      // Videos our bandwidth estimate does not carry now (docs/api.md "SFU calls").
      this.paused = new Set(paused.map(String));
      this.emit('feeds');
      return;
    }
    if (sdp?.type === 'offer') {
      if (pc.signalingState === 'have-local-offer') {
        // Glare: the SFU's offer wins. Ours is made again once this one is answered.
        await pc.setLocalDescription({ type: 'rollback' });
        this.wantOffer = true;
      }
      await pc.setRemoteDescription(sdp);
      await pc.setLocalDescription();
      if (pc !== this.pc) return;
      this.send({ sdp: { type: 'answer', sdp: pc.localDescription.sdp } });
      this.emit('feeds');
      if (this.wantOffer) await this.makeOffer();
    } else if (sdp?.type === 'answer') {
      if (pc.signalingState !== 'have-local-offer') return; // a stale answer
      await pc.setRemoteDescription(sdp);
      this.offeredAt = 0;
      this.emit('feeds');
      if (this.wantOffer) await this.makeOffer();
    } else if (candidate) {
      await pc.addIceCandidate(candidate).catch((e) => console.warn('sfu candidate refused', e));
    }
  }

  /**
   * What the SFU sends us now: [{mid, contactId, kind, source, track, live}], one
   * per receiving m-line it named in its last `tracks` list and has not stopped.
   */
  feeds() {
    const out = [];
    for (const t of this.pc.getTransceivers()) {
      if (t === this.audioT || t === this.cameraT || t === this.screenT) continue;
      if (t.mid === null || t.stopped) continue;
      if (!['recvonly', 'sendrecv'].includes(t.currentDirection)) continue;
      const info = this.tracks.get(t.mid);
      if (!info) continue;
      const track = t.receiver.track;
      out.push({ mid: t.mid, ...info, track, live: track.readyState === 'live' && !track.muted, paused: this.paused.has(t.mid) });
    }
    return out;
  }

  /** Our microphone ('audio') or camera ('video') from now on; null sends nothing. */
  async replaceTrack(kind, track) {
    const t = kind === 'audio' ? this.audioT : this.cameraT;
    await t.sender.replaceTrack(track);
  }

  /** Shares `track` as our screen: its own m-line, offered to the SFU. */
  async shareScreen(track) {
    this.screen = track;
    if (this.screenT && !this.screenT.stopped) {
      await this.screenT.sender.replaceTrack(track);
      this.screenT.direction = 'sendonly';
    } else {
      this.screenT = this.addScreen(track);
    }
    this.offer();
  }

  /** Stops sharing: the screen's m-line goes inactive (kept for the next share). */
  async stopScreen() {
    this.screen = null;
    if (!this.screenT || this.screenT.stopped) return;
    this.screenT.direction = 'inactive';
    await this.screenT.sender.replaceTrack(null);
    this.offer();
  }

  /** Closes this connection and opens a new one, offered again (ICE or socket loss). */
  restart() {
    if (this.closed) return;
    this.restarts += 1;
    const old = this.pc;
    for (const k of ['ontrack', 'onnegotiationneeded', 'onicecandidate', 'oniceconnectionstatechange', 'onconnectionstatechange']) old[k] = null;
    old.close();
    // Whatever was queued belonged to the old connection.
    this.queue = Promise.resolve();
    this.open();
    this.emit('restart');
    this.emit('feeds');
    this.emit('state');
  }

  /** Once a second: a lost offer or broken ICE means a new connection. */
  watch() {
    const pc = this.pc;
    const now = Date.now();
    const ice = pc.iceConnectionState;
    if (ice === 'connected' || ice === 'completed') {
      this.troubleSince = 0;
      return;
    }
    this.troubleSince ||= now;
    const unanswered = pc.signalingState === 'have-local-offer' && this.offeredAt && now - this.offeredAt > UNANSWERED_MS;
    const broken = ice === 'failed'
      || (ice === 'disconnected' && now - this.troubleSince > DISCONNECTED_MS)
      // Backing off: a node that never answers is not asked every 15 s forever.
      || (!this.connectedAt && now - this.openedAt > NEVER_CONNECTED_MS * Math.min(4, 1 + this.restarts));
    if (unanswered || broken) this.restart();
  }

  /** {rtt (ms), loss (%), kbps} since the last call, from getStats. */
  async quality() {
    const q = qualityOf(await this.pc.getStats(), this.lastStats, performance.now());
    this.lastStats = q.totals;
    return q;
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.watchdog);
    this.pc.close();
    this.emit('state');
  }
}
