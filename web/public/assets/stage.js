// The SFU call's stage in the page: a tile per person (video, or their avatar) and
// per shared screen, each with its name and a pin button, laid out as a grid or in
// focus mode (one large, the others in a strip). Tiles are never moved in the DOM
// (a moved <video> pauses): CSS grid placement and `order` arrange them.

import { h, icon, avatar } from './dom.js';
import { tilesOf, gridShape, focusOf, tileKey } from './grid.js';

const SELF = 'self:camera';
const SELF_SCREEN = 'self:screen';

export class SfuStage {
  /**
   * stageEl: the grid container; previewEl: our own preview figure (moved into the
   * grid once, before it plays); nameOf(contactId) -> display name.
   */
  constructor({ stageEl, previewEl, nameOf, selfId, onChange }) {
    Object.assign(this, { stageEl, previewEl, nameOf, selfId, onChange });
    this.mode = 'grid';
    this.pinned = null;
    this.speaker = null;
    this.lastSpeaker = null;
    this.tiles = []; // the remote tiles of the last update, from tilesOf()
    this.figs = new Map(); // key -> figure
    this.connected = false;
    this.ownScreen = null;
    stageEl.replaceChildren();
    stageEl.classList.add('sfu');
    previewEl.dataset.key = SELF;
    stageEl.append(previewEl);
    this.figs.set(SELF, previewEl);
    this.resize = new ResizeObserver(() => this.layout());
    this.resize.observe(stageEl);
    // A remote track need not say when its media stops (a camera turned off sends
    // nothing, and the track stays unmuted): a tile shows video while frames come.
    this.frozenCheck = setInterval(() => this.showVideoState(), 1000);
  }

  /** Follows the frames a tile's <video> presents, to tell video from a frozen picture. */
  watchFrames(video) {
    if (video.__watching || !video.requestVideoFrameCallback) return;
    video.__watching = true;
    const next = () => video.requestVideoFrameCallback(() => {
      video.__lastFrameAt = performance.now();
      const fig = video.closest('figure');
      if (fig?.classList.contains('no-video') && this.hasVideo(fig)) fig.classList.remove('no-video');
      if (video.isConnected) next();
    });
    next();
  }

  hasVideo(fig) {
    const video = fig.querySelector('video');
    const track = video?.srcObject?.getVideoTracks()[0];
    if (!track || track.readyState !== 'live' || track.muted) return false;
    if (!video.requestVideoFrameCallback) return true;
    return performance.now() - (video.__lastFrameAt ?? -Infinity) < 2500;
  }

  showVideoState() {
    for (const fig of this.figs.values()) {
      if (!fig.classList.contains('remote')) continue;
      fig.classList.toggle('no-video', !this.hasVideo(fig));
    }
  }

  /** Brings the tiles in line with the received feeds and who is in the call. */
  update({ feeds, inCall, left, ownScreen = null, connected = this.connected }) {
    this.connected = connected;
    this.tiles = tilesOf({ feeds, inCall, left, selfId: this.selfId });
    const keep = new Set([SELF]);
    this.tiles.forEach((t, i) => {
      keep.add(t.key);
      this.render(t, i);
    });
    this.ownScreen = ownScreen;
    if (ownScreen) {
      keep.add(SELF_SCREEN);
      this.renderOwnScreen(ownScreen);
    }
    this.previewEl.style.order = String(this.tiles.length);
    for (const [key, fig] of this.figs) {
      if (keep.has(key)) continue;
      const video = fig.querySelector('video');
      if (video) video.srcObject = null;
      fig.remove();
      this.figs.delete(key);
    }
    if (this.pinned && !keep.has(this.pinned)) this.pinned = null;
    this.layout();
  }

  label(t) {
    const name = this.nameOf(t.contactId);
    return t.source === 'screen' ? `${name}'s screen` : name;
  }

  /** One remote tile: created once, its video and caption kept current. */
  render(t, index) {
    let fig = this.figs.get(t.key);
    const label = this.label(t);
    if (!fig) {
      const video = h('video', {
        autoplay: true, playsInline: true,
        dataset: { contactId: String(t.contactId), source: t.source },
      });
      const pin = h('button', {
        type: 'button', class: 'pin', 'aria-pressed': 'false',
        onclick: () => this.togglePin(t.key),
      }, icon('pin'));
      fig = h('figure', { class: `tile remote no-video ${t.source}`, dataset: { contactId: String(t.contactId), source: t.source, key: t.key } },
        video,
        h('div', { class: 'off-placeholder' }, avatar(this.nameOf(t.contactId)), h('span', { class: 'ph-text' }, '')),
        h('figcaption', {}, label),
        pin);
      this.stageEl.append(fig);
      this.figs.set(t.key, fig);
    }
    fig.style.order = String(index);
    fig.querySelector('figcaption').textContent = label;
    fig.querySelector('.off-placeholder .avatar')?.replaceWith(avatar(this.nameOf(t.contactId)));
    const pin = fig.querySelector('.pin');
    const pinned = this.pinned === t.key;
    pin.setAttribute('aria-pressed', String(pinned));
    pin.setAttribute('aria-label', `${pinned ? 'Unpin' : 'Pin'} ${label}`);
    pin.title = pin.getAttribute('aria-label');
    const video = fig.querySelector('video');
    const want = [t.video, t.audio].filter(Boolean);
    const has = video.srcObject?.getTracks() ?? [];
    if (want.length !== has.length || want.some((x) => !has.includes(x))) {
      video.srcObject = want.length ? new MediaStream(want) : null;
      video.__lastFrameAt = undefined;
      if (want.length) video.play().catch(() => {});
      this.watchFrames(video);
    }
    fig.classList.toggle('no-video', !this.hasVideo(fig));
    let why = t.source === 'screen' ? 'Starting…' : 'Camera off';
    if (t.paused) why = 'Video paused: low bandwidth';
    fig.querySelector('.ph-text').textContent = this.connected ? why : 'Connecting…';
  }

  renderOwnScreen(track) {
    let fig = this.figs.get(SELF_SCREEN);
    if (!fig) {
      const video = h('video', { autoplay: true, playsInline: true });
      video.muted = true;
      fig = h('figure', { class: 'tile self-screen screen', dataset: { key: SELF_SCREEN } },
        video, h('figcaption', {}, 'Your screen'));
      this.stageEl.append(fig);
      this.figs.set(SELF_SCREEN, fig);
    }
    fig.style.order = String(this.tiles.length + 1);
    const video = fig.querySelector('video');
    if (video.srcObject?.getVideoTracks()[0] !== track) {
      video.srcObject = new MediaStream([track]);
      video.play().catch(() => {});
    }
  }

  togglePin(key) {
    this.pinned = this.pinned === key ? null : key;
    if (this.pinned) this.mode = 'focus';
    for (const t of this.tiles) this.render(t, this.tiles.indexOf(t));
    this.layout();
    this.onChange?.();
  }

  setMode(mode) {
    this.mode = mode;
    this.layout();
    this.onChange?.();
  }

  setSpeaker(contactId) {
    this.speaker = contactId;
    if (contactId !== this.selfId && contactId !== null && contactId !== undefined) this.lastSpeaker = contactId;
    for (const [key, fig] of this.figs) {
      const id = key === SELF ? this.selfId : Number(fig.dataset.contactId);
      fig.classList.toggle('speaking', key !== SELF_SCREEN && fig.dataset.source !== 'screen' && id === contactId);
    }
    if (this.mode === 'focus' && !this.pinned) this.layout();
  }

  /** The key shown large in focus mode now (null: nobody else to show). */
  focused() {
    return focusOf({ tiles: this.tiles, pinned: this.pinned, speaker: this.speaker, lastSpeaker: this.lastSpeaker, selfId: this.selfId });
  }

  layout() {
    const st = this.stageEl;
    const figs = [...this.figs.values()];
    const { width, height } = st.getBoundingClientRect();
    const gap = 10;
    const focus = this.mode === 'focus' ? this.focused() : null;
    st.classList.toggle('focus', !!focus);
    st.classList.toggle('grid', !focus);
    st.dataset.tiles = String(figs.length);
    for (const fig of figs) {
      fig.classList.toggle('focused', fig.dataset.key === focus);
      fig.style.gridColumn = '';
      fig.style.gridRow = '';
    }
    if (!focus) {
      const { cols, rows } = gridShape(figs.length, width, height, { gap });
      st.style.setProperty('--cols', String(cols));
      st.style.setProperty('--rows', String(rows));
      st.style.gridTemplateColumns = '';
      st.style.gridTemplateRows = '';
      return;
    }
    const others = figs.filter((f) => f.dataset.key !== focus);
    const main = this.figs.get(focus);
    const k = Math.max(1, others.length);
    if (width >= height * 1.2) {
      // A strip on the right.
      const strip = Math.round(Math.min(280, Math.max(160, width * 0.22)));
      st.style.gridTemplateColumns = `minmax(0, 1fr) ${strip}px`;
      st.style.gridTemplateRows = `repeat(${k}, minmax(0, 1fr))`;
      main.style.gridColumn = '1';
      main.style.gridRow = `1 / span ${k}`;
      for (const f of others) f.style.gridColumn = '2';
    } else {
      // Narrow screens: a strip below.
      st.style.gridTemplateColumns = `repeat(${k}, minmax(0, 1fr))`;
      st.style.gridTemplateRows = `minmax(0, 1fr) ${Math.round(Math.min(160, Math.max(90, height * 0.2)))}px`;
      main.style.gridRow = '1';
      main.style.gridColumn = `1 / span ${k}`;
      for (const f of others) f.style.gridRow = '2';
    }
  }

  /** The remote <video> of a person's camera, for tests and the view. */
  videoOf(contactId, source = 'camera') {
    return this.figs.get(tileKey(contactId, source))?.querySelector('video') ?? null;
  }

  destroy() {
    this.resize.disconnect();
    clearInterval(this.frozenCheck);
    for (const [key, fig] of this.figs) {
      if (key === SELF) continue;
      const video = fig.querySelector('video');
      if (video) video.srcObject = null;
    }
  }
}
