/** A frame from `GET /ws`: `type`, and `seq` on the stored (sequenced) ones. */
export interface Frame {
  type: string;
  seq?: number;
  [key: string]: unknown;
}

/** The part of the WebSocket API used here, shared by browsers, Node ≥ 22 and `ws`. */
interface Socket {
  send(data: string): void;
  close(code?: number): void;
  addEventListener(type: string, listener: (event: { data?: unknown }) => void): void;
}
type SocketConstructor = new (url: string) => Socket;

/** The global WebSocket where there is one (browsers, Node ≥ 22), else the `ws` package (Node 20). */
async function socketClass(): Promise<SocketConstructor> {
  const global = (globalThis as { WebSocket?: SocketConstructor }).WebSocket;
  if (global) {
    return global;
  }
  const ws = await import("ws");
  return ws.WebSocket as unknown as SocketConstructor;
}

const FIRST_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5000;

/**
 * An async iterator of a user's WebSocket messages that reconnects, and resumes
 * with `since` (the last `seq` it gave out), by itself. `close()` ends it.
 */
export class Notifications implements AsyncIterableIterator<Frame> {
  /** The last `seq` seen: where a reconnect resumes. */
  since?: number;
  /** How many times the socket was opened, the first time included. */
  connections = 0;
  private readonly queue: Frame[] = [];
  private readonly waiting: ((r: IteratorResult<Frame>) => void)[] = [];
  private closed = false;
  private socket?: Socket;
  private wake?: () => void;

  constructor(
    private readonly opts: { url: string; token: () => Promise<string>; since?: number; presence?: boolean },
  ) {
    this.since = opts.since;
    void this.run();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<Frame>> {
    const frame = this.queue.shift();
    if (frame) {
      return Promise.resolve({ value: frame, done: false });
    }
    if (this.closed) {
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  async return(): Promise<IteratorResult<Frame>> {
    this.close();
    return { value: undefined, done: true };
  }

  /** Sends a frame (`signal`, `ping`) on the current socket; false when there is none. */
  send(frame: object): boolean {
    if (!this.socket) {
      return false;
    }
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  close(): void {
    this.closed = true;
    this.socket?.close(1000);
    this.wake?.();
    for (const resolve of this.waiting.splice(0)) {
      resolve({ value: undefined, done: true });
    }
  }

  private give(frame: Frame): void {
    const resolve = this.waiting.shift();
    if (resolve) {
      resolve({ value: frame, done: false });
    } else {
      this.queue.push(frame);
    }
  }

  private receive(text: string): void {
    let frame: Frame;
    try {
      frame = JSON.parse(text) as Frame;
    } catch {
      return;
    }
    if (frame.type === "hello") {
      this.since ??= frame.seq;
      return;
    }
    if (frame.type === "pong") {
      return;
    }
    if (typeof frame.seq === "number") {
      if (this.since !== undefined && frame.seq <= this.since) {
        return; // seen before a reconnect
      }
      this.since = frame.seq;
    }
    this.give(frame);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private async run(): Promise<void> {
    const WebSocketClass = await socketClass();
    let backoff = FIRST_BACKOFF_MS;
    while (!this.closed) {
      let opened = false;
      try {
        const token = await this.opts.token();
        const query = new URLSearchParams({ access_token: token });
        if (this.since !== undefined) {
          query.set("since", String(this.since));
        }
        if (this.opts.presence === false) {
          query.set("presence", "false");
        }
        const socket = new WebSocketClass(`${this.opts.url}?${query}`);
        this.socket = socket;
        await new Promise<void>((resolve) => {
          socket.addEventListener("open", () => {
            opened = true;
            this.connections += 1;
          });
          socket.addEventListener("message", (event) => {
            if (typeof event.data === "string") {
              this.receive(event.data);
            }
          });
          socket.addEventListener("close", () => resolve());
          socket.addEventListener("error", () => resolve());
          if (this.closed) {
            socket.close(1000);
          }
        });
      } catch {
        // No token (the server is unreachable for a refresh): wait and try again.
      }
      this.socket = undefined;
      if (this.closed) {
        return;
      }
      backoff = opened ? FIRST_BACKOFF_MS : Math.min(backoff * 2, MAX_BACKOFF_MS);
      await this.sleep(backoff);
    }
  }
}
