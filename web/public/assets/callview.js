// The call view: own preview, the other's video with their name, Mute, Camera,
// Share screen, Invite, device choice, a connection-quality sign, Hang up, and a
// visible "Reconnecting…" while the socket or ICE recovers (never a Leave for that).
// MESH calls have one remote tile; SFU calls a grid or focus stage (stage.js).

import { h, fill, icon, avatar, toast, duration } from './dom.js';
import * as calls from './calls.js';
import * as directory from './directory.js';
import * as media from './media.js';
import { MeshPeer } from './mesh.js';
import { SfuPeer } from './sfu.js';
import { SfuStage } from './stage.js';
import { headcount, leftOf } from './grid.js';
import { levelOf } from './quality.js';

/** Relay-only ICE, for testing through TURN: localStorage['callhub.relay'] = '1'. */
const forceRelay = () => localStorage.getItem('callhub.relay') === '1';

/**
 * Opens the call `callId` in `root`. user: UserInfo (null for a guest); guest:
 * {contactId, callLog, media} from joinAnonymous; video: start with the camera on.
 * onLeave(reason) is called once the call view is done.
 */
export async function mountCall(root, { callId, socket, user, guest, video = true, onLeave }) {
  const view = new CallView(root, { callId, socket, user, guest, video, onLeave });
  await view.start();
  return view;
}

class CallView {
  constructor(root, opts) {
    Object.assign(this, opts, { root });
    this.peer = null;
    this.pending = new Map(); // remote contact id -> payloads that came before the peer
    this.outbox = []; // signal frames to send once the socket is open
    this.muted = false;
    this.cameraOn = opts.video;
    this.screen = null;
    this.done = false;
    this.timers = [];
    this.off = [];
  }

  async start() {
    this.renderShell();
    this.setBanner('Joining…');
    // Events that come while we join and open the camera (others joining at the same
    // moment) are kept, and folded into the log once it is there.
    const early = [];
    const keep = (e) => early.push(e.detail);
    this.socket.addEventListener('callEvent', keep);
    try {
      await this.join();
    } finally {
      this.socket.removeEventListener('callEvent', keep);
    }
    if (this.done || !this.callLog) return;
    for (const frame of early) {
      if (frame.callId !== this.callId || this.callLog.callEvents.some((x) => x.id === frame.event?.id)) continue;
      this.callLog = { ...this.callLog, callStatus: frame.callStatus ?? this.callLog.callStatus, callEvents: [...this.callLog.callEvents, frame.event] };
    }
    if (this.callLog.callStatus === 'Ended') return this.finish('The call has ended.');
    this.begin();
  }

  /** Joins the call and opens camera and microphone. */
  async join() {
    try {
      if (this.guest) {
        ({ callLog: this.callLog, media: this.media } = this.guest);
      } else {
        ({ callLog: this.callLog, media: this.media } = await calls.joinCall(this.callId));
      }
    } catch (e) {
      return this.fail(e.status === 409 ? 'This call has ended or is full.' : e.message);
    }
    this.myId = this.media?.contactId ?? this.guest?.contactId ?? calls.mine(this.callLog, this.user)?.id;
    this.iceServers = this.media?.iceServers || (await calls.iceServers().catch(() => ({})))?.iceServers || [];
    this.titleEl.textContent = this.callLog.callTitle || 'Call';
    document.title = `${this.callLog.callTitle || 'Call'} · callhub`;

    const { stream, error } = await media.openLocal({ video: this.video });
    this.local = stream;
    if (error && !stream.getTracks().length) toast('No camera or microphone could be opened; others will not see or hear you.', 'warn');
    this.cameraOn = stream.getVideoTracks().length > 0;
    this.showPreview();
    this.syncButtons();
    this.fillDevices();
  }

  /** Media and the call log are there: signaling, timers, and the call's own view. */
  begin() {
    this.listen(this.socket, 'signal', (e) => this.onSignal(e.detail));
    this.listen(this.socket, 'callEvent', (e) => this.onCallEvent(e.detail));
    this.listen(this.socket, 'state', (e) => this.onSocketState(e.detail));
    this.startedAt = Date.now();
    this.timers.push(setInterval(() => this.tick(), 1000));
    this.timers.push(setInterval(() => this.showQuality(), 2000));

    if (this.callLog.callType === 'SFU') return this.startSfu();
    const others = [...calls.joined(this.callLog)].filter((id) => id !== this.myId);
    if (others.length) {
      // We join later: we make the offer.
      this.startPeer(others[0], true);
    } else {
      this.showWaiting();
    }
  }

  listen(target, type, fn) {
    target.addEventListener(type, fn);
    this.off.push(() => target.removeEventListener(type, fn));
  }

  // ---- rendering ----

  renderShell() {
    const button = (name, iconName, onclick, extra = {}) =>
      h('button', { type: 'button', class: `ctl ${extra.class || ''}`, onclick, ...extra.attrs },
        icon(iconName), h('span', { class: 'ctl-label' }, name));
    this.muteBtn = button('Mute', 'mic', () => this.toggleMute(), { class: 'mute', attrs: { 'aria-pressed': 'false' } });
    this.camBtn = button('Camera', 'cam', () => this.toggleCamera(), { class: 'cam', attrs: { 'aria-pressed': 'true' } });
    this.shareBtn = button('Share screen', 'screen', () => this.toggleScreen(), { class: 'share', attrs: { 'aria-pressed': 'false' } });
    this.inviteBtn = button('Invite', 'invite', () => this.openInvite());
    this.devBtn = button('Devices', 'gear', () => this.toggleDevices(), { attrs: { 'aria-expanded': 'false', 'aria-controls': 'devices' } });
    this.hangBtn = button('Hang up', 'hangup', () => this.hangUp(), { class: 'hangup' });
    if (!navigator.mediaDevices?.getDisplayMedia) this.shareBtn.hidden = true;
    if (this.guest) this.inviteBtn.hidden = true;

    this.titleEl = h('h1', { class: 'call-title' }, 'Call');
    this.subEl = h('p', { class: 'call-sub' }, '');
    this.qualityEl = h('div', { class: 'quality', role: 'img', 'aria-label': 'Connection quality: unknown' },
      h('span', { class: 'bars', 'aria-hidden': 'true' }, h('i'), h('i'), h('i'), h('i')),
      h('span', { class: 'q-text', 'aria-hidden': 'true' }, '–'));
    this.bannerEl = h('p', { class: 'call-banner', role: 'status', 'aria-live': 'polite' });
    this.stageEl = h('div', { class: 'stage' });
    this.previewVideo = h('video', { muted: true, autoplay: true, playsInline: true, class: 'mirror' });
    this.previewVideo.muted = true;
    this.previewEl = h('figure', { class: 'tile self' },
      this.previewVideo,
      h('div', { class: 'off-placeholder' }, avatar(this.user?.displayName || this.guest?.name || 'You')),
      h('figcaption', {}, 'You'));
    this.camSelect = h('select', { id: 'cam-select', onchange: () => this.useCamera(this.camSelect.value) });
    this.micSelect = h('select', { id: 'mic-select', onchange: () => this.useMicrophone(this.micSelect.value) });
    this.devicesEl = h('div', { class: 'devices', id: 'devices', hidden: true },
      h('label', { for: 'cam-select' }, 'Choose camera'), this.camSelect,
      h('label', { for: 'mic-select' }, 'Choose microphone'), this.micSelect);
    this.sectionEl = h('section', { class: 'call-view', 'aria-label': 'Call' },
      h('header', { class: 'call-top' },
        h('div', { class: 'call-heading' }, this.titleEl, this.subEl),
        this.qualityEl),
      this.bannerEl,
      h('div', { class: 'stage-wrap' }, this.stageEl, this.previewEl),
      this.devicesEl,
      h('div', { class: 'controls', role: 'toolbar', 'aria-label': 'Call controls' },
        this.muteBtn, this.camBtn, this.shareBtn, this.inviteBtn, this.devBtn, this.hangBtn));
    fill(this.root, h('main', { id: 'main', class: 'call-main' }, this.sectionEl));
  }

  setBanner(text, kind = 'info') {
    this.bannerEl.textContent = text || '';
    this.bannerEl.className = `call-banner ${kind}`;
    this.bannerEl.hidden = !text;
    this.sectionEl.dataset.state = kind === 'warn' ? 'reconnecting' : (text ? 'waiting' : 'connected');
  }

  nameOf(id) {
    return calls.nameOf(calls.contacts(this.callLog).get(id));
  }

  /** The figure with the other's <video data-contact-id> and their name. */
  remoteTile(id) {
    let fig = this.stageEl.querySelector(`figure[data-contact-id="${id}"]`);
    if (fig) return fig;
    const video = h('video', { autoplay: true, playsInline: true, dataset: { contactId: String(id) } });
    fig = h('figure', { class: 'tile remote no-video', dataset: { contactId: String(id) } },
      video,
      h('div', { class: 'off-placeholder' }, avatar(this.nameOf(id)), h('span', { class: 'ph-text' }, 'Connecting…')),
      h('figcaption', {}, this.nameOf(id)));
    this.stageEl.append(fig);
    return fig;
  }

  showWaiting() {
    const other = calls.others(this.callLog, this.user).find((c) => c.id !== this.myId);
    const name = calls.nameOf(other);
    const rings = calls.ringing(this.callLog).some((c) => c.id === other?.id);
    fill(this.stageEl, h('div', { class: 'waiting-card' },
      other ? avatar(name) : null,
      h('p', {}, other ? (rings ? `Calling ${name}…` : `Waiting for ${name} to join…`) : 'Waiting for someone to join…')));
    this.setBanner('');
    this.subEl.textContent = other ? `with ${name}` : '';
  }

  // ---- SFU ----

  /** An SFU call: one connection to the node, the stage of tiles, the layout switch. */
  startSfu() {
    this.sectionEl.classList.add('sfu');
    this.gridBtn = h('button', { type: 'button', class: 'seg', 'aria-pressed': 'true', onclick: () => this.stage.setMode('grid') },
      icon('grid'), h('span', {}, 'Grid'));
    this.focusBtn = h('button', { type: 'button', class: 'seg', 'aria-pressed': 'false', onclick: () => this.stage.setMode('focus') },
      icon('focus'), h('span', {}, 'Focus'));
    const tools = h('div', { class: 'call-tools' });
    this.qualityEl.replaceWith(tools);
    tools.append(h('div', { class: 'layout-switch', role: 'group', 'aria-label': 'Layout' }, this.gridBtn, this.focusBtn), this.qualityEl);
    this.stage = new SfuStage({
      stageEl: this.stageEl,
      previewEl: this.previewEl,
      nameOf: (id) => this.nameOf(id),
      selfId: this.myId,
      onChange: () => this.syncLayoutButtons(),
    });
    this.previewVideo.play().catch(() => {});
    this.listen(this.socket, 'sfu', (e) => {
      if (e.detail.callId === this.callId && this.sfu) this.sfu.signal(e.detail.payload);
    });
    this.sfu = new SfuPeer({
      send: (payload) => this.signal({ type: 'sfu', callId: this.callId, payload }),
      iceServers: this.iceServers,
      stream: this.local,
      relay: forceRelay(),
    });
    this.listen(this.sfu, 'feeds', () => this.renderSfu());
    this.listen(this.sfu, 'speaker', (e) => this.stage.setSpeaker(e.detail));
    this.listen(this.sfu, 'state', () => this.onSfuState());
    this.listen(this.sfu, 'restart', () => {
      // Offers queued for the old connection mean nothing to the SFU now.
      this.outbox = this.outbox.filter((f) => f.type !== 'sfu');
    });
    this.renderSfu();
    this.onSfuState();
  }

  renderSfu() {
    if (!this.stage || this.done) return;
    const inCall = [...calls.joined(this.callLog)];
    this.stage.update({
      feeds: this.sfu.feeds(),
      inCall,
      left: leftOf(this.callLog.callEvents),
      ownScreen: this.screen,
      connected: !!this.sfu.connectedAt,
    });
    this.showSfuSub();
    this.syncLayoutButtons();
  }

  showSfuSub() {
    const n = headcount(calls.joined(this.callLog), this.myId);
    const since = this.sfu?.connectedAt ? ` · ${clockOf((Date.now() - this.startedAt) / 1000)}` : '';
    this.subEl.textContent = `${n} in the call${since}`;
  }

  syncLayoutButtons() {
    if (!this.stage) return;
    this.gridBtn.setAttribute('aria-pressed', String(this.stage.mode === 'grid'));
    this.focusBtn.setAttribute('aria-pressed', String(this.stage.mode === 'focus'));
  }

  onSfuState() {
    if (this.done || !this.sfu) return;
    const state = this.sfu.state;
    if (state === 'connected') {
      this.connectedAt ||= Date.now();
      if (this.socket.state === 'open') this.setBanner(this.stage.tiles.length ? '' : 'Waiting for others to join…');
    } else if (state === 'reconnecting') {
      this.setBanner('Reconnecting…', 'warn');
    } else if (state === 'connecting') {
      this.setBanner('Connecting…');
    }
    this.renderSfu();
  }

  showPreview() {
    // In an SFU call our screen is a tile of its own; the preview stays the camera.
    const screen = this.sfu ? null : this.screen;
    const shown = screen ? new MediaStream([screen]) : this.local;
    if (this.previewVideo.srcObject !== shown) this.previewVideo.srcObject = shown;
    this.previewVideo.classList.toggle('mirror', !screen);
    this.previewEl.classList.toggle('no-video', !screen && !this.cameraOn);
  }

  syncButtons() {
    const set = (btn, pressed, iconOn, iconOff) => {
      btn.setAttribute('aria-pressed', String(pressed));
      btn.querySelector('svg').replaceWith(icon(pressed ? iconOn : iconOff));
    };
    set(this.muteBtn, this.muted, 'micOff', 'mic');
    set(this.camBtn, this.cameraOn, 'cam', 'camOff');
    this.shareBtn.setAttribute('aria-pressed', String(!!this.screen));
    this.muteBtn.title = this.muted ? 'Unmute your microphone' : 'Mute your microphone';
    this.camBtn.title = this.cameraOn ? 'Turn your camera off' : 'Turn your camera on';
    this.shareBtn.title = this.screen ? 'Stop sharing your screen' : 'Share your screen';
  }

  tick() {
    if (this.sfu) {
      this.showSfuSub();
    } else if (this.connectedAt && this.callLog.callType !== 'SFU') {
      const other = this.peer ? this.nameOf(this.peer.remoteId) : '';
      this.subEl.textContent = `${other ? `with ${other} · ` : ''}${clockOf((Date.now() - this.connectedAt) / 1000)}`;
    }
  }

  async showQuality() {
    const link = this.peer || this.sfu;
    if (!link || link.state !== 'connected') {
      this.qualityEl.dataset.level = 'none';
      this.qualityEl.querySelector('.q-text').textContent = link ? '…' : '–';
      this.qualityEl.setAttribute('aria-label', 'Connection quality: not connected');
      return;
    }
    const q = await link.quality().catch(() => null);
    if (!q) return;
    const { rtt, loss } = q;
    const level = levelOf(q);
    const word = ['', 'Poor', 'Weak', 'Fair', 'Good'][level];
    const rttText = rtt === null ? '' : `${Math.round(rtt)} ms`;
    const lossText = loss === null ? '' : `${loss.toFixed(1)} % loss`;
    this.qualityEl.dataset.level = String(level);
    this.qualityEl.querySelector('.q-text').textContent = [word, rttText, lossText].filter(Boolean).join(' · ');
    this.qualityEl.setAttribute('aria-label', `Connection quality: ${word}${rttText ? `, round trip ${rttText}` : ''}${lossText ? `, ${lossText}` : ''}`);
    this.qualityEl.title = this.qualityEl.getAttribute('aria-label');
  }

  // ---- the peer ----

  startPeer(remoteId, offerer) {
    this.peer?.close();
    for (const fig of this.stageEl.querySelectorAll('figure, .waiting-card')) {
      if (fig.dataset?.contactId !== String(remoteId)) fig.remove();
    }
    const peer = new MeshPeer({
      send: (payload) => this.signal({ type: 'signal', callId: this.callId, to: remoteId, payload }),
      selfId: this.myId,
      remoteId,
      iceServers: this.iceServers,
      offerer,
      stream: this.local,
      relay: forceRelay(),
    });
    this.peer = peer;
    const fig = this.remoteTile(remoteId);
    const video = fig.querySelector('video');
    video.srcObject = peer.remote;
    peer.addEventListener('track', () => {
      video.srcObject = peer.remote;
      video.play().catch(() => {});
      const hasVideo = peer.remote.getVideoTracks().some((t) => !t.muted && t.readyState === 'live');
      fig.classList.toggle('no-video', !hasVideo);
    });
    peer.addEventListener('state', () => this.onPeerState(peer));
    this.subEl.textContent = `with ${this.nameOf(remoteId)}`;
    this.onPeerState(peer);
    for (const payload of this.pending.get(remoteId) || []) peer.signal(payload);
    this.pending.delete(remoteId);
    return peer;
  }

  /** Sends a signal frame now, or once the socket is back (an offer must not be lost). */
  signal(frame) {
    if (!this.socket.send(frame)) this.outbox.push(frame);
    return true;
  }

  onPeerState(peer) {
    if (peer !== this.peer || this.done) return;
    const fig = this.stageEl.querySelector(`figure[data-contact-id="${peer.remoteId}"]`);
    const state = peer.state;
    if (state === 'connected') {
      this.connectedAt ||= Date.now();
      if (this.socket.state === 'open') this.setBanner('');
      fig?.querySelector('.ph-text')?.replaceChildren('Camera off');
    } else if (state === 'reconnecting') {
      this.setBanner('Reconnecting…', 'warn');
    } else if (state === 'connecting') {
      this.setBanner(`Connecting to ${this.nameOf(peer.remoteId)}…`);
    }
  }

  async onSignal(frame) {
    if (frame.callId !== this.callId || this.done || this.callLog?.callType !== 'MESH') return;
    const { from, payload } = frame;
    const offer = payload?.sdp?.type === 'offer' ? payload.sdp : null;
    if (offer) {
      const fresh = this.peer && this.peer.remoteId === from
        && this.peer.remoteFingerprint() && this.peer.remoteFingerprint() !== MeshPeer.fingerprint(offer.sdp);
      // A first offer, or one from a new connection of the remote (it reloaded or rejoined).
      if (!this.peer || this.peer.remoteId !== from || fresh || this.peer.pc.signalingState === 'closed') {
        this.startPeer(from, false);
      }
    }
    if (!this.peer || this.peer.remoteId !== from) {
      if (!this.pending.has(from)) this.pending.set(from, []);
      this.pending.get(from).push(payload);
      return;
    }
    this.peer.signal(payload);
  }

  async onCallEvent(frame) {
    if (frame.callId !== this.callId || this.done) return;
    const e = frame.event;
    // The event itself keeps the log current at once (a guest may not read the log at all);
    // the stored log then brings names and invitations the event does not carry.
    if (!this.callLog.callEvents.some((x) => x.id === e.id)) {
      this.callLog = { ...this.callLog, callStatus: frame.callStatus, callEvents: [...this.callLog.callEvents, e] };
    }
    if (this.sfu && e.type !== 'Ended' && frame.callStatus !== 'Ended') this.renderSfu();
    try {
      const log = await calls.getCall(this.callId);
      if (this.done) return;
      this.callLog = log;
    } catch { /* the event is in already */ }
    if (e.type === 'Ended' || frame.callStatus === 'Ended') return this.finish('The call has ended.');
    if (e.contact?.id === this.myId && e.type === 'Leave') return this.finish('You left this call on another device.');
    if (this.callLog.callType === 'SFU') return this.onSfuEvent(e);
    if (e.contact?.id === this.myId) return;
    if (e.type === 'Leave' && this.peer?.remoteId === e.contact?.id) {
      toast(`${this.nameOf(e.contact.id)} left the call.`);
      this.peer.close();
      this.peer = null;
      this.connectedAt = null;
      this.stageEl.replaceChildren();
      this.showWaiting();
    } else if (e.type === 'Join' && !this.peer) {
      // They join later: they will offer. Show them arriving meanwhile.
      fill(this.stageEl);
      const fig = this.remoteTile(e.contact.id);
      fig.querySelector('.ph-text').textContent = 'Connecting…';
      this.setBanner(`Connecting to ${this.nameOf(e.contact.id)}…`);
      this.subEl.textContent = `with ${this.nameOf(e.contact.id)}`;
    } else if (e.type === 'Declined' || e.type === 'Missed') {
      toast(`${this.nameOf(e.contact.id)} ${e.type === 'Declined' ? 'declined' : 'did not answer'}.`);
      if (!this.peer) this.showWaiting();
    } else if (!this.peer) {
      this.showWaiting();
    }
  }

  /** Joins and leaves: names and tiles now, before the SFU's own word on their tracks. */
  onSfuEvent(e) {
    if (!this.sfu) return;
    if (e.contact?.id !== this.myId) {
      if (e.type === 'Join') toast(`${this.nameOf(e.contact.id)} joined.`);
      else if (e.type === 'Leave') toast(`${this.nameOf(e.contact.id)} left the call.`);
      else if (e.type === 'Declined' || e.type === 'Missed') toast(`${this.nameOf(e.contact.id)} ${e.type === 'Declined' ? 'declined' : 'did not answer'}.`);
    }
    this.renderSfu();
    this.onSfuState();
  }

  onSocketState({ state, reconnected }) {
    if (this.done || !this.callLog) return;
    if (state === 'closed' || state === 'connecting') {
      this.setBanner('Reconnecting…', 'warn');
    } else if (state === 'open' && this.sfu) {
      // A socket that came back may have lost our frames both ways: a new connection.
      const queued = this.outbox.splice(0);
      if (reconnected) this.sfu.restart();
      else for (const frame of queued) this.socket.send(frame);
      this.onSfuState();
    } else if (state === 'open') {
      for (const frame of this.outbox.splice(0)) {
        if (frame.to === this.peer?.remoteId) this.socket.send(frame);
      }
      if (reconnected && this.peer?.offerer) this.peer.restartIce();
      if (this.peer) this.onPeerState(this.peer);
      else if (this.callLog.callType === 'SFU') this.setBanner('');
      else this.showWaiting();
      if (this.peer?.state === 'connected') this.setBanner('');
    }
  }

  // ---- controls ----

  toggleMute() {
    this.muted = !this.muted;
    for (const t of this.local.getAudioTracks()) t.enabled = !this.muted;
    this.syncButtons();
  }

  async toggleCamera() {
    if (this.cameraOn) {
      media.swapTrack(this.local, 'video', null);
      this.cameraOn = false;
      if (this.sfu) await this.sfu.replaceTrack('video', null);
      else if (!this.screen) await this.peer?.replaceTrack('video', null);
    } else {
      const track = await media.openCamera(this.camSelect.value || undefined);
      if (!track) return toast('The camera could not be opened.', 'warn');
      media.swapTrack(this.local, 'video', track);
      this.cameraOn = true;
      if (this.sfu) await this.sfu.replaceTrack('video', track);
      else if (!this.screen) await this.sendVideo(track);
    }
    this.showPreview();
    this.syncButtons();
  }

  /** Sends `track` as our video; a peer without a video sender renegotiates one. */
  async sendVideo(track) {
    if (!this.peer) return;
    const t = this.peer.pc.getTransceivers().find((x) => x.receiver.track.kind === 'video');
    if (t) {
      if (t.direction !== 'sendrecv') t.direction = 'sendrecv';
      await t.sender.replaceTrack(track);
    } else {
      this.peer.pc.addTrack(track, this.local);
    }
  }

  async toggleScreen() {
    if (this.screen) return this.stopScreen();
    const track = await media.openScreen();
    if (!track) return;
    this.screen = track;
    track.addEventListener('ended', () => this.stopScreen());
    if (this.sfu) await this.sfu.shareScreen(track);
    else await this.sendVideo(track);
    this.showPreview();
    this.syncButtons();
    this.renderSfu();
  }

  async stopScreen() {
    if (!this.screen) return;
    this.screen.stop();
    this.screen = null;
    if (this.sfu) await this.sfu.stopScreen();
    else await this.peer?.replaceTrack('video', this.local.getVideoTracks()[0] || null);
    this.showPreview();
    this.syncButtons();
    this.renderSfu();
  }

  toggleDevices() {
    const open = this.devicesEl.hidden;
    this.devicesEl.hidden = !open;
    this.devBtn.setAttribute('aria-expanded', String(open));
    if (open) this.fillDevices();
  }

  async fillDevices() {
    const { cameras, microphones } = await media.devices();
    const current = (kind) => this.local?.getTracks().find((t) => t.kind === kind)?.getSettings().deviceId;
    const options = (list, selected, what) => list.length
      ? list.map((d, i) => h('option', { value: d.deviceId, selected: d.deviceId === selected }, d.label || `${what} ${i + 1}`))
      : [h('option', { value: '' }, `No ${what.toLowerCase()} found`)];
    fill(this.camSelect, options(cameras, current('video'), 'Camera'));
    fill(this.micSelect, options(microphones, current('audio'), 'Microphone'));
  }

  async useCamera(deviceId) {
    if (!this.cameraOn) return;
    const track = await media.openCamera(deviceId);
    if (!track) return toast('That camera could not be opened.', 'warn');
    media.swapTrack(this.local, 'video', track);
    if (this.sfu) await this.sfu.replaceTrack('video', track);
    else if (!this.screen) await this.sendVideo(track);
    this.showPreview();
  }

  async useMicrophone(deviceId) {
    const track = await media.openMicrophone(deviceId);
    if (!track) return toast('That microphone could not be opened.', 'warn');
    track.enabled = !this.muted;
    media.swapTrack(this.local, 'audio', track);
    await (this.peer || this.sfu)?.replaceTrack('audio', track);
  }

  openInvite() {
    const list = h('ul', { class: 'people compact' });
    const input = h('input', { type: 'search', id: 'invite-q', autocomplete: 'off', placeholder: 'Name, id or e-mail' });
    const close = () => dialog.close();
    const link = this.callLog.joinUrl;
    const copy = h('button', {
      type: 'button', class: 'btn secondary', onclick: async () => {
        try { await navigator.clipboard.writeText(link); toast('Guest link copied.'); } catch { linkInput.select(); }
      },
    }, 'Copy link');
    const linkInput = h('input', { type: 'text', readOnly: true, value: link || '', id: 'guest-link' });
    const dialog = h('dialog', { class: 'invite', 'aria-labelledby': 'invite-h' },
      h('h2', { id: 'invite-h' }, 'Invite people'),
      h('label', { for: 'invite-q' }, 'Search contacts'), input, list,
      link ? h('div', { class: 'guest-link' }, h('label', { for: 'guest-link' }, 'Guest link'), h('div', { class: 'row' }, linkInput, copy)) : null,
      h('div', { class: 'row end' }, h('button', { type: 'button', class: 'btn secondary', onclick: close }, 'Close')));
    dialog.addEventListener('close', () => dialog.remove());
    let seq = 0;
    const run = async () => {
      const mine = ++seq;
      const found = await directory.search(input.value.trim(), 8).catch(() => ({ contacts: [], teams: [] }));
      if (mine !== seq) return;
      const inCall = new Set([...calls.contacts(this.callLog).values()].map((c) => c.userDbId).filter(Boolean));
      fill(list, found.contacts.filter((c) => c.userDbId !== this.user?.userDbId).map((c) =>
        h('li', {}, avatar(c.displayName, c.presence),
          h('span', { class: 'who' }, h('strong', {}, c.displayName || c.userId)),
          inCall.has(c.userDbId) ? h('span', { class: 'badge' }, 'In this call')
            : h('button', {
              type: 'button', class: 'btn small', onclick: async (ev) => {
                ev.currentTarget.disabled = true;
                try {
                  this.callLog = await calls.inviteContacts(this.callId, { invitedContacts: [directory.asInvitee(c)], invitedTeams: [] });
                  toast(`${c.displayName || c.userId} is invited.`);
                  run();
                } catch (err) {
                  toast(err.message, 'error');
                  ev.currentTarget.disabled = false;
                }
              },
            }, 'Invite'))));
    };
    input.addEventListener('input', debounce(run, 200));
    this.root.append(dialog);
    dialog.showModal();
    run();
  }

  async hangUp() {
    this.hangBtn.disabled = true;
    try {
      if (this.callLog) await calls.leaveCall(this.callId);
    } catch (e) {
      if (e.status !== 409 && e.status !== 404) {
        this.hangBtn.disabled = false;
        return toast(`Could not hang up: ${e.message}`, 'error');
      }
    }
    this.finish('');
  }

  fail(text) {
    this.done = true;
    fill(this.stageEl, h('div', { class: 'waiting-card' }, h('p', {}, text)));
    this.setBanner('');
    for (const b of this.sectionEl.querySelectorAll('.controls button')) b.disabled = b !== this.hangBtn;
  }

  /** Ends the view: media off, peer closed, then back to where we came from. */
  finish(reason) {
    if (this.finished) return;
    this.finished = true;
    this.destroy();
    if (reason) toast(reason);
    this.onLeave?.(reason);
  }

  destroy() {
    this.done = true;
    for (const t of this.timers) clearInterval(t);
    for (const off of this.off) off();
    this.peer?.close();
    this.peer = null;
    this.sfu?.close();
    this.stage?.destroy();
    this.screen?.stop();
    for (const t of this.local?.getTracks() || []) t.stop();
    this.local = null;
  }
}

function clockOf(secs) {
  const s = Math.floor(secs);
  const mm = String(Math.floor(s / 60) % 60).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm}:${ss}` : `${mm}:${ss}`;
}

export function debounce(fn, ms) {
  let t;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

export { duration };
