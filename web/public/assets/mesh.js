// One MESH peer connection to the other participant, negotiated as API.md "MESH"
// says: W3C perfect negotiation (the lower contactId is polite), the later joiner
// offers first, and after ICE or socket trouble the later joiner offers again with
// an ICE restart until the connection is back.

import { qualityOf } from './quality.js';

export class MeshPeer extends EventTarget {
  /**
   * send(payload) -> bool relays a signal payload to the remote; selfId/remoteId
   * are contact ids; offerer: whether we joined later (we offer, we restart ICE);
   * stream: our local MediaStream (audio and/or video tracks, may be empty).
   */
  constructor({ send, selfId, remoteId, iceServers, offerer, stream, relay = false }) {
    super();
    Object.assign(this, { send, selfId, remoteId, offerer });
    this.polite = selfId < remoteId;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.queue = Promise.resolve();
    this.remote = new MediaStream();
    this.stream = stream;
    this.offeredAt = 0;
    this.troubleSince = 0;
    this.lastStats = null;
    const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: relay ? 'relay' : 'all' });
    this.pc = pc;
    if (offerer) {
      // Both kinds always, so the camera can come and go later by replaceTrack alone.
      for (const kind of ['audio', 'video']) {
        const track = stream.getTracks().find((t) => t.kind === kind);
        pc.addTransceiver(track || kind, { direction: 'sendrecv', streams: [stream] });
      }
    }
    pc.ontrack = ({ track }) => {
      this.remote.addTrack(track);
      track.onunmute = () => this.emit('track');
      this.emit('track');
    };
    pc.onnegotiationneeded = () => this.offer();
    pc.onicecandidate = ({ candidate }) => this.send({ candidate: candidate ? candidate.toJSON() : null });
    pc.oniceconnectionstatechange = () => this.emit('state');
    pc.onconnectionstatechange = () => this.emit('state');
    this.watchdog = setInterval(() => this.watch(), 1000);
  }

  emit(type) {
    this.dispatchEvent(new Event(type));
  }

  /** 'connected' | 'connecting' | 'reconnecting' | 'closed' for the view. */
  get state() {
    const s = this.pc.connectionState;
    if (s === 'connected') return 'connected';
    if (s === 'closed') return 'closed';
    if (s === 'disconnected' || s === 'failed') return 'reconnecting';
    return this.everConnected ? 'reconnecting' : 'connecting';
  }

  async offer({ iceRestart = false } = {}) {
    if (this.pc.signalingState === 'closed') return;
    try {
      this.makingOffer = true;
      if (iceRestart) this.pc.restartIce();
      await this.pc.setLocalDescription();
      if (this.pc.localDescription.type !== 'offer') return;
      this.offeredAt = Date.now();
      this.send({ sdp: { type: 'offer', sdp: this.pc.localDescription.sdp } });
    } catch (e) {
      console.warn('offer failed', e);
    } finally {
      this.makingOffer = false;
    }
  }

  /** A `signal` payload from the remote, handled in arrival order. */
  signal(payload) {
    this.queue = this.queue.then(() => this.handle(payload)).catch((e) => console.warn('signal failed', e));
    return this.queue;
  }

  async handle({ sdp, candidate }) {
    const pc = this.pc;
    if (pc.signalingState === 'closed') return;
    if (sdp) {
      const collision = sdp.type === 'offer' && (this.makingOffer || pc.signalingState !== 'stable');
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return;
      if (sdp.type === 'answer' && pc.signalingState !== 'have-local-offer') return; // a stale answer
      await pc.setRemoteDescription(sdp); // the polite peer rolls its own offer back here
      if (sdp.type === 'offer') {
        await this.attachLocal();
        await pc.setLocalDescription();
        this.send({ sdp: { type: 'answer', sdp: pc.localDescription.sdp } });
      } else {
        this.offeredAt = 0;
      }
    } else if (candidate) {
      try {
        await pc.addIceCandidate(candidate);
      } catch (e) {
        if (!this.ignoreOffer) console.warn('candidate refused', e);
      }
    }
  }

  /** On the answering side: send our tracks on the transceivers the offer made. */
  async attachLocal() {
    for (const t of this.pc.getTransceivers()) {
      const kind = t.receiver.track.kind;
      if (t.direction === 'sendrecv' || t.stopped) continue;
      if (!['audio', 'video'].includes(kind)) continue;
      t.direction = 'sendrecv';
      const track = this.stream.getTracks().find((x) => x.kind === kind) || null;
      if (track) {
        await t.sender.replaceTrack(track);
        t.sender.setStreams?.(this.stream);
      }
    }
  }

  /** Sends `track` (or nothing, with null) in place of the current one of its kind. */
  async replaceTrack(kind, track) {
    const t = this.pc.getTransceivers().find((x) => x.receiver.track.kind === kind);
    if (t) await t.sender.replaceTrack(track);
  }

  /** The later joiner offers again with an ICE restart (after a socket or ICE loss). */
  restartIce() {
    if (!this.offerer || this.pc.signalingState === 'closed') return;
    this.queue = this.queue.then(async () => {
      if (this.pc.signalingState === 'have-local-offer') {
        // Our last offer was never answered (lost while a socket was down): replace it.
        await this.pc.setLocalDescription({ type: 'rollback' });
      }
      if (this.pc.signalingState === 'stable') await this.offer({ iceRestart: true });
    }).catch((e) => console.warn('ICE restart failed', e));
  }

  /** Once a second: notice lost offers and broken ICE, and recover. */
  watch() {
    const pc = this.pc;
    const ice = pc.iceConnectionState;
    const now = Date.now();
    if (ice === 'connected' || ice === 'completed') {
      this.everConnected = true;
      this.troubleSince = 0;
    } else if (!this.troubleSince) {
      this.troubleSince = now;
    }
    if (!this.offerer) return;
    const unanswered = pc.signalingState === 'have-local-offer' && this.offeredAt && now - this.offeredAt > 4000;
    const broken = ice === 'failed'
      || (ice === 'disconnected' && now - this.troubleSince > 2000)
      || (this.troubleSince && now - this.troubleSince > 8000 && now - this.offeredAt > 8000);
    if (unanswered || (broken && pc.signalingState === 'stable')) {
      this.troubleSince = now;
      this.restartIce();
    }
  }

  /** {rtt (ms), loss (%), kbps} since the last call, from getStats. */
  async quality() {
    const q = qualityOf(await this.pc.getStats(), this.lastStats, performance.now());
    this.lastStats = q.totals;
    return q;
  }

  close() {
    clearInterval(this.watchdog);
    this.pc.close();
    for (const t of this.remote.getTracks()) t.stop();
    this.emit('state');
  }

  /** The DTLS fingerprint of an SDP: it changes when the remote made a new connection. */
  static fingerprint(sdp) {
    return /a=fingerprint:(\S+ \S+)/.exec(sdp || '')?.[1] || null;
  }

  remoteFingerprint() {
    return MeshPeer.fingerprint(this.pc.remoteDescription?.sdp);
  }
}
