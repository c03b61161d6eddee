// How the tests run Chromium: Debian's binary (no browser download), a fake
// camera and microphone, and the WebRTC flags MEDIA.md found necessary on loopback.
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--no-sandbox',
  '--autoplay-policy=no-user-gesture-required',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--allow-loopback-in-peer-connection',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export const launchOptions = { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS };

/**
 * Runs in every page before its own scripts: keeps each RTCPeerConnection the
 * client makes (so tests read getStats without knowing the client's code), the
 * time a remote <video data-contact-id> first shows a frame, and how many
 * oscillators (the ringtone) are sounding.
 */
export function observeMedia() {
  const Native = window.RTCPeerConnection;
  // firstFrames: when each remote <video> ("<contactId>:<source>") first showed a frame;
  // connectedAt: when each connection's state became 'connected' (ms since the epoch).
  const e2e = { pcs: [], firstRemoteFrameAt: null, firstFrames: {}, connectedAt: [], clicks: {}, iceStates: [], tones: 0, offers: 0 };
  window.__e2e = e2e;
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      e2e.pcs.push(this);
      // The ICE states a connection went through, for a test's report.
      this.addEventListener('iceconnectionstatechange', () => e2e.iceStates.push(this.iceConnectionState));
      this.addEventListener('connectionstatechange', () => {
        if (this.connectionState === 'connected') e2e.connectedAt.push(performance.timeOrigin + performance.now());
      });
    }

    // Offers this page made (a second one in a call is a re-offer: ICE restart or renegotiation).
    setLocalDescription(...args) {
      const desc = args[0];
      if ((desc?.type ?? (this.signalingState === 'stable' || this.signalingState === 'have-local-offer' ? 'offer' : 'answer')) === 'offer') e2e.offers += 1;
      return super.setLocalDescription(...args);
    }
  };
  // The `sfu` frames both ways, summed up (SDP type, candidates, tracks, speaker), for a failing test's report.
  e2e.sfu = [];
  const NativeWS = window.WebSocket;
  const note = (dir, text) => {
    try {
      const f = JSON.parse(text);
      if (f.type === 'callEvent' || f.type === 'hello') {
        e2e.sfu.push(`${Math.round(performance.now())} ${dir} ${f.type} ${f.event?.type ?? ''} ${f.event?.contact?.id ?? ''} seq=${f.seq}`);
        return;
      }
      if (f.type !== 'sfu' && f.type !== 'error') return;
      const p = f.payload || {};
      e2e.sfu.push(`${Math.round(performance.now())} ${dir} ${f.type === 'error' ? `error ${f.detail}` : p.sdp ? `sdp ${p.sdp.type}` : p.tracks ? `tracks ${JSON.stringify(p.tracks)}` : 'candidate' in p ? 'candidate' : JSON.stringify(p)}`);
    } catch { /* not JSON */ }
  };
  window.WebSocket = class extends NativeWS {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (m) => note('in', m.data));
    }

    send(data) {
      if (typeof data === 'string' && data.includes('"resume"')) e2e.sfu.push(`${Math.round(performance.now())} out ${data}`);
      note('out', data);
      return super.send(data);
    }
  };
  // Oscillators sounding now: a ringtone made in the page is heard through them.
  if (window.OscillatorNode) {
    const { start, stop } = OscillatorNode.prototype;
    OscillatorNode.prototype.start = function (...args) {
      if (!this.__e2eOn) { this.__e2eOn = true; e2e.tones += 1; }
      return start.apply(this, args);
    };
    OscillatorNode.prototype.stop = function (...args) {
      if (this.__e2eOn) { this.__e2eOn = false; e2e.tones -= 1; }
      return stop.apply(this, args);
    };
  }
  const watch = (video) => {
    if (video.__e2eWatched || !video.requestVideoFrameCallback) return;
    video.__e2eWatched = true;
    video.requestVideoFrameCallback(() => {
      const at = performance.timeOrigin + performance.now();
      e2e.firstRemoteFrameAt ??= at;
      e2e.firstFrames[`${video.dataset.contactId}:${video.dataset.source || 'camera'}`] ??= at;
    });
  };
  const scan = () => document.querySelectorAll('video[data-contact-id]').forEach(watch);
  // When a button is pressed, by its accessible text: the start of a measured interval.
  document.addEventListener('click', (ev) => {
    const button = ev.target.closest?.('button');
    const name = button && (button.getAttribute('aria-label') || button.textContent.trim());
    if (!name) return;
    const at = performance.timeOrigin + performance.now();
    e2e.clicks[name] = at;
    // Kept across a navigation the click may cause (same tab).
    try { sessionStorage.setItem(`e2e.click.${name}`, String(at)); } catch { /* storage off */ }
  }, true);
  new MutationObserver(scan).observe(document, { childList: true, subtree: true, attributes: true, attributeFilter: ['data-contact-id'] });
}

/**
 * An init script that keeps media small, so four pages fit on two cores: the camera
 * at `width` x `height` (640x360), 15 fps, whatever the client asks for, a shared screen at
 * 640 x 360, 10 fps. Passed to addInitScript with its argument.
 */
export function smallMedia({ width = 640, height = 360 } = {}) {
  const md = navigator.mediaDevices;
  if (!md) return;
  const gum = md.getUserMedia.bind(md);
  md.getUserMedia = (constraints = {}) => {
    if (constraints.video) {
      const deviceId = typeof constraints.video === 'object' ? constraints.video.deviceId : undefined;
      constraints = { ...constraints, video: { width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: 15 }, ...(deviceId ? { deviceId } : {}) } };
    }
    return gum(constraints);
  };
  const gdm = md.getDisplayMedia?.bind(md);
  if (gdm) {
    md.getDisplayMedia = async (constraints) => {
      const stream = await gdm(constraints);
      await stream.getVideoTracks()[0]?.applyConstraints({ width: 640, height: 360, frameRate: 10 }).catch(() => {});
      return stream;
    };
  }
}
