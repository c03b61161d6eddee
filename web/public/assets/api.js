// Requests to callhub's HTTP API: JSON in and out, the session's bearer token (or a
// guest's), and problem+json answers turned into errors that say what went wrong.

import * as session from './session.js';

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

let guestToken = null;

/** From now on, requests carry this guest's call-scoped token. */
export function useGuestToken(token) {
  guestToken = token;
}

/**
 * api('POST', '/rtc/joinCall', {query: {callId}}) -> parsed JSON (or null on 204).
 * Throws ApiError for 4xx/5xx, TypeError when offline.
 */
export async function api(method, path, { query, body, auth = true } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const send = async (token) => {
    const headers = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (token) headers.authorization = `Bearer ${token}`;
    return fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  };
  const token = !auth ? null : guestToken || (await session.accessToken());
  let res = await send(token);
  if (res.status === 401 && auth && !guestToken) {
    // The token may have been revoked or expired early: one refresh, one retry.
    res = await send((await session.refresh()).accessToken);
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}
