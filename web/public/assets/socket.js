// The WebSocket to callhub: notifications and signaling. Reconnects by itself with
// backoff, resumes after the last `seq` it saw (nothing missed, nothing twice), and
// pings so a dead connection is noticed in seconds, not minutes.

const PING_EVERY = 5_000;
const DEAD_AFTER = 12_000;

export class Socket extends EventTarget {
  /**
   * token: async () => access token for the next connection; resume: whether the
   * server keeps our messages to replay (a guest's socket carries signaling only).
   */
  constructor(token, { resume = true } = {}) {
    super();
    this.token = token;
    this.resume = resume;
    this.ws = null;
    this.lastSeq = null; // the newest sequenced message handled
    this.attempts = 0;
    this.state = 'closed';
    this.stopped = true;
    this.onOnline = () => this.reconnectNow();
    this.onOffline = () => this.ws?.close();
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
    clearTimeout(this.retry);
    clearInterval(this.pinger);
    this.ws?.close(1000);
    this.ws = null;
    this.setState('closed');
  }

  /** Sends a frame; false when the socket is not open (the caller may retry later). */
  send(frame) {
    if (this.ws?.readyState !== WebSocket.OPEN || this.state !== 'open') return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  setState(state, detail = {}) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, ...detail } }));
  }

  reconnectNow() {
    if (this.stopped || this.state === 'open' || this.state === 'connecting') return;
    clearTimeout(this.retry);
    this.connect();
  }

  async connect() {
    if (this.stopped) return;
    this.setState('connecting');
    let token;
    try {
      token = await this.token();
    } catch (e) {
      this.dispatchEvent(new CustomEvent('authfailed', { detail: e }));
      return this.later();
    }
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/ws?access_token=${encodeURIComponent(token)}`);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.heard = Date.now();
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this.ping(), PING_EVERY);
    };
    ws.onmessage = (m) => {
      this.heard = Date.now();
      let frame;
      try { frame = JSON.parse(m.data); } catch { return; }
      this.receive(frame);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      clearInterval(this.pinger);
      this.ws = null;
      this.setState('closed', { opened });
      this.later();
    };
  }

  receive(frame) {
    if (frame.type === 'hello') {
      const resumed = this.resume && this.lastSeq !== null;
      if (resumed) this.ws.send(JSON.stringify({ type: 'resume', since: this.lastSeq }));
      else this.lastSeq = frame.seq ?? null;
      this.attempts = 0;
      const reconnected = !!this.everOpened;
      this.everOpened = true;
      this.setState('open', { resumed, reconnected });
      return;
    }
    if (frame.type === 'pong') return;
    if (typeof frame.seq === 'number') {
      if (this.lastSeq !== null && frame.seq <= this.lastSeq) return; // already handled
      this.lastSeq = frame.seq;
    }
    this.dispatchEvent(new CustomEvent('message', { detail: frame }));
    this.dispatchEvent(new CustomEvent(frame.type, { detail: frame }));
  }

  ping() {
    if (Date.now() - this.heard > DEAD_AFTER) {
      // Nothing heard, not even a pong: the connection is gone without a close.
      this.ws?.close();
      if (this.ws) this.ws.onclose();
      return;
    }
    this.ws?.readyState === WebSocket.OPEN && this.ws.send('{"type":"ping"}');
  }

  later() {
    if (this.stopped) return;
    const base = Math.min(10_000, 500 * 2 ** this.attempts);
    this.attempts += 1;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.connect(), base / 2 + Math.random() * base / 2);
  }
}
