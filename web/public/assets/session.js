// The signed-in session: login, refresh before the access token expires (at ~80 %
// of its life, one refresh at a time across tabs), logout. Kept in localStorage so
// tabs share it; a refresh token is spent once, so tabs take turns (Web Locks).

const KEY = 'callhub.session';
const LOCK = 'callhub.refresh';
const listeners = new Set();
let timer = null;
let inflight = null;

/** The session ended (logged out here or elsewhere, or its refresh was refused). */
export class SessionEnded extends Error {}

function read() {
  try { return JSON.parse(localStorage.getItem(KEY)); } catch { return null; }
}

function write(s) {
  if (s) localStorage.setItem(KEY, JSON.stringify(s));
  else localStorage.removeItem(KEY);
  schedule();
  for (const fn of listeners) fn(s);
}

function fromTokens(t, user) {
  const now = Date.now();
  return {
    accessToken: t.accessToken,
    refreshToken: t.refreshToken,
    issuedAt: now,
    expiresAt: now + t.expiresIn * 1000,
    user: t.user || user,
  };
}

/** The current session, or null. */
export function current() {
  return read();
}

/** Calls fn(session|null) whenever the session changes, in this tab or another. */
export function onChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

window.addEventListener('storage', (e) => {
  if (e.key !== KEY) return;
  schedule();
  for (const fn of listeners) fn(read());
});

async function post(path, body) {
  return fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
  });
}

async function problemText(res) {
  try {
    const p = await res.json();
    return p.detail || p.title || res.statusText;
  } catch {
    return res.statusText || `HTTP ${res.status}`;
  }
}

/** Logs in; throws an Error whose message is fit to show. */
export async function login(username, password, domain) {
  const body = { username, password };
  if (domain) body.domain = domain;
  let res;
  try {
    res = await post('/login', body);
  } catch {
    throw new Error('The server cannot be reached. Check your connection.');
  }
  if (res.status === 401) throw new Error('Wrong username or password.');
  if (res.status === 429) throw new Error('Too many attempts. Wait a minute and try again.');
  if (!res.ok) throw new Error(await problemText(res));
  const s = fromTokens(await res.json());
  write(s);
  return s;
}

/**
 * Trades the refresh token for a new pair, once even when many callers ask at
 * once; a tab that finds another tab already refreshed takes that pair.
 */
export function refresh() {
  if (inflight) return inflight;
  const seen = read()?.refreshToken;
  const run = async () => {
    const s = read();
    if (!s) throw new SessionEnded('signed out');
    if (s.refreshToken !== seen) return s; // another tab refreshed meanwhile
    const res = await post('/refresh', { refreshToken: s.refreshToken });
    if (res.status === 401) {
      write(null);
      throw new SessionEnded('session expired');
    }
    if (!res.ok) throw new Error(await problemText(res));
    const next = fromTokens(await res.json(), s.user);
    write(next);
    return next;
  };
  inflight = (navigator.locks ? navigator.locks.request(LOCK, run) : run())
    .finally(() => { inflight = null; });
  return inflight;
}

/** A valid access token, refreshed first when it is (almost) spent. */
export async function accessToken() {
  let s = read();
  if (!s) throw new SessionEnded('signed out');
  if (Date.now() > s.expiresAt - 10_000) s = await refresh();
  return s.accessToken;
}

/** Logs out everywhere this session's tokens reach. */
export async function logout() {
  const s = read();
  write(null);
  if (s) {
    try { await post('/logout', { refreshToken: s.refreshToken }); } catch { /* offline: tokens expire */ }
  }
}

function schedule() {
  clearTimeout(timer);
  const s = read();
  if (!s) return;
  const at = s.issuedAt + 0.8 * (s.expiresAt - s.issuedAt);
  timer = setTimeout(async () => {
    try {
      await refresh();
    } catch (e) {
      // A network failure: try again soon; SessionEnded already cleared the session.
      if (!(e instanceof SessionEnded)) timer = setTimeout(schedule, 5000);
    }
  }, Math.max(0, at - Date.now()));
}

schedule();
