/**
 * The callhub SDK for connectors: `Callhub.login` (tokens refreshed before they
 * expire), `hub.rtc` (the seed's RtcControllerApi, generated from the server's
 * OpenAPI document) and `hub.notifications()` (the WebSocket, resumed by itself).
 */
import createClient, { type Client } from "openapi-fetch";

import { CallhubError, unwrap } from "./errors.js";
import { RtcControllerApi } from "./generated/rtc.js";
import type { components, paths } from "./generated/schema.js";
import { Notifications } from "./notifications.js";

export { CallhubError, type Problem } from "./errors.js";
export { RtcControllerApi } from "./generated/rtc.js";
export type { components, paths } from "./generated/schema.js";
export { Notifications, type Frame } from "./notifications.js";

export type Schemas = components["schemas"];
export type CallLog = Schemas["CallLog"];
export type UserInfo = Schemas["UserInfo"];
export type CreateCallRequest = Schemas["CreateCallRequest"];
type TokenResponse = Schemas["TokenResponse"];

export interface LoginOptions {
  /** The server, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  username: string;
  password: string;
  /** May be omitted when the username is unique. */
  domain?: string;
  /** Another `fetch` (tests, proxies); the global one by default. */
  fetch?: typeof globalThis.fetch;
}

export interface TokenOptions {
  baseUrl: string;
  /** An access token got elsewhere; it is used as is and never refreshed. */
  accessToken: string;
  fetch?: typeof globalThis.fetch;
}

interface Session {
  accessToken: string;
  refreshToken?: string;
  /** When to refresh, in epoch milliseconds. */
  refreshAt: number;
}

/** Refresh at 80% of a token's life, so a slow request never carries a dead token. */
const REFRESH_AT = 0.8;

export class Callhub {
  readonly baseUrl: string;
  /** The typed client of every route (openapi-fetch), with the session's token. */
  readonly client: Client<paths>;
  /** The seed's RtcControllerApi: one method per operation, named by its operationId. */
  readonly rtc: RtcControllerApi;
  /** The account logged in (unset with `withToken`). */
  user?: UserInfo;
  private session?: Session;
  private refreshing?: Promise<void>;
  /** Login, refresh and logout: no bearer token on them. */
  private readonly anonymous: Client<paths>;

  private constructor(baseUrl: string, fetchImpl: typeof globalThis.fetch | undefined) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    const options = { baseUrl: this.baseUrl, ...(fetchImpl ? { fetch: fetchImpl } : {}) };
    this.anonymous = createClient<paths>(options);
    this.client = createClient<paths>(options);
    this.client.use({
      onRequest: async ({ request }) => {
        request.headers.set("Authorization", `Bearer ${await this.accessToken()}`);
        return request;
      },
    });
    this.rtc = new RtcControllerApi(this.client);
  }

  /** Logs in; the session's tokens are refreshed before they expire. */
  static async login(options: LoginOptions): Promise<Callhub> {
    const hub = new Callhub(options.baseUrl, options.fetch);
    const { username, password, domain } = options;
    const tokens = unwrap(await hub.anonymous.POST("/login", { body: { username, password, domain } }));
    hub.keep(tokens);
    return hub;
  }

  /** For a connector that gets its access token elsewhere. */
  static withToken(options: TokenOptions): Callhub {
    const hub = new Callhub(options.baseUrl, options.fetch);
    hub.session = { accessToken: options.accessToken, refreshAt: Number.POSITIVE_INFINITY };
    return hub;
  }

  private keep(t: TokenResponse): void {
    this.session = {
      accessToken: t.accessToken,
      refreshToken: t.refreshToken,
      refreshAt: Date.now() + t.expiresIn * 1000 * REFRESH_AT,
    };
    this.user = t.user;
  }

  /** A valid access token, refreshed first when it is due. */
  async accessToken(): Promise<string> {
    const s = this.session;
    if (!s) {
      throw notLoggedIn();
    }
    if (s.refreshToken !== undefined && Date.now() >= s.refreshAt) {
      await this.refresh();
    }
    return this.session!.accessToken;
  }

  /**
   * Trades the refresh token for a new pair now. Callers at the same time share
   * one request: a second would present a spent token and revoke the session.
   */
  refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const refreshToken = this.session?.refreshToken;
        if (refreshToken === undefined) {
          throw notLoggedIn();
        }
        this.keep(unwrap(await this.anonymous.POST("/refresh", { body: { refreshToken } })));
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  /** Ends the session on the server and here. */
  async logout(): Promise<void> {
    const refreshToken = this.session?.refreshToken;
    this.session = undefined;
    if (refreshToken !== undefined) {
      unwrap(await this.anonymous.POST("/logout", { body: { refreshToken } }));
    }
  }

  /**
   * The user's notifications as an async iterator: `incomingCall`,
   * `ringingStopped`, `callEvent`, and the unsequenced frames. It reconnects and
   * resumes after the last `seq` it gave out by itself; `since` starts further back.
   * `presence: false`: no `presence` frames of the domain (a device, or a
   * connector, that shows no directory).
   */
  notifications(options: { since?: number; presence?: boolean } = {}): Notifications {
    return new Notifications({
      url: this.baseUrl.replace(/^http/, "ws") + "/ws",
      token: () => this.accessToken(),
      since: options.since,
      presence: options.presence,
    });
  }
}

function notLoggedIn(): CallhubError {
  return new CallhubError({
    type: "about:blank",
    title: "Unauthorized",
    status: 401,
    detail: "not logged in (or logged out)",
  });
}
