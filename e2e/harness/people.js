// What a person does in the web client, by the accessible names API.md fixes
// ("The web client"), and the REST calls a connector makes.
import { expect } from '@playwright/test';
import { DOMAIN } from './stack.js';
import { observeMedia, smallMedia } from './browser.js';

/**
 * A fresh browser context (own storage, like another device) with a page that observes
 * media; small: {width, height} of the camera (see smallMedia), for many pages at once.
 */
export async function openPage(browser, baseURL, { relay = false, small = null, viewport = { width: 1280, height: 800 } } = {}) {
  const context = await browser.newContext({ baseURL, viewport });
  await context.addInitScript(observeMedia);
  if (small) await context.addInitScript(smallMedia, small);
  if (small?.simulcast === false) {
    // The client's switch for one video layer to the SFU (web/public/assets/sfu.js).
    await context.addInitScript(() => localStorage.setItem('callhub.simulcast', '0'));
  }
  if (relay) {
    // The client's switch for relay-only ICE (e2e/FINDINGS.md): forces TURN for every connection.
    await context.addInitScript(() => localStorage.setItem('callhub.relay', '1'));
  }
  const page = await context.newPage();
  return page;
}

export async function logIn(page, user) {
  await page.goto('/');
  await page.getByLabel('Username').fill(user.userId);
  await page.getByLabel('Password').fill(user.password);
  await page.getByLabel('Domain').fill(user.domain ?? DOMAIN);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByLabel('Search contacts')).toBeVisible();
}

/** Dashboard -> search the directory -> Call the one person found. */
export async function callFromDashboard(page, callee) {
  await page.getByLabel('Search contacts').fill(callee.userId);
  const found = page.getByRole('listitem').filter({ hasText: callee.displayName });
  await found.getByRole('button', { name: 'Call' }).click();
}

export function incomingCall(page) {
  return page.getByRole('alertdialog', { name: 'Incoming call' });
}

export async function answer(page, { video = true } = {}) {
  const popup = incomingCall(page);
  await expect(popup).toBeVisible();
  await popup.getByRole('button', { name: video ? 'Answer' : 'Answer without video', exact: true }).click();
  await expect(popup).toBeHidden();
}

export async function hangUp(page) {
  await page.getByRole('button', { name: 'Hang up' }).click();
}

/** The REST side: log in as a connector would, and call the seed's routes. */
export async function api(baseURL, user) {
  const login = await fetch(`${baseURL}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: user.userId, password: user.password, domain: user.domain ?? DOMAIN }),
  });
  if (!login.ok) throw new Error(`login ${user.userId}: ${login.status} ${await login.text()}`);
  const { accessToken } = await login.json();
  const call = async (method, path, body) => {
    const r = await fetch(`${baseURL}${path}`, {
      method,
      headers: { authorization: `Bearer ${accessToken}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: typeof body === 'string' ? body : body && JSON.stringify(body),
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  return {
    accessToken,
    get: (path) => call('GET', path),
    post: (path, body) => call('POST', path, body),
    /** The newest call this user is part of. */
    async latestCall() {
      const page = await call('GET', '/rtc/getCallLogs?page=0&size=1');
      return page.content[0];
    },
  };
}

/** A CallLogContact for an account, as the seed's connector writes it. */
export function contactOf(user) {
  return {
    displayName: user.displayName, domain: user.domain, email: user.email,
    phoneNumber: '', userDbId: user.userDbId, userId: user.userId,
  };
}

/** A (logged in as caller) calls B (logged in as callee) from the dashboard, and B answers. */
export async function callAndAnswer(a, b, callee) {
  await callFromDashboard(a, callee);
  await answer(b);
}

/**
 * The seed's broker flow: a connector creates a MESH call for `glasses` with
 * `expert` invited; the expert's page answers, then the glasses' page rings and
 * answers. `connector` is the account or its api(). Returns that api and the call.
 */
export async function connectorCall(baseURL, connector, { glasses, expert, a, b }) {
  // An account logs in (argon2, on purpose slow); an api() already logged in is reused.
  const rest = connector.post ? connector : await api(baseURL, connector);
  const call = await rest.post('/rtc/createCall', {
    callTitle: 'New Call', callReason: 'STANDARD', callType: 'MESH',
    invitedContacts: [contactOf(expert)], invitedTeams: [],
    joinAnonymousAllowed: false, informOthersDirectly: true, creatorUser: glasses.userDbId,
  });
  await answer(b);
  await answer(a);
  return { rest, call };
}
