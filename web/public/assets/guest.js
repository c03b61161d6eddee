// The guest page (/join/<callId>?t=…): a name and "Join", then the call view with
// the guest's call-scoped token (its socket carries this call's signaling only).

import { h, fill } from './dom.js';
import { api, useGuestToken } from './api.js';

const KEY = (callId) => `callhub.guest.${callId}`;

/** The guest's join of this call in this tab (kept so a reload does not join twice). */
export function savedGuest(callId) {
  try { return JSON.parse(sessionStorage.getItem(KEY(callId))); } catch { return null; }
}

export function forgetGuest(callId) {
  sessionStorage.removeItem(KEY(callId));
}

/** What the server put in the page about the call: its title and who invites. */
function meta(name) {
  return document.querySelector(`meta[name="callhub:${name}"]`)?.content || '';
}

export function mountGuest(root, { callId, token, onJoined }) {
  const title = meta('call-title');
  const inviter = meta('inviter');
  const error = h('p', { class: 'form-error', role: 'alert' });
  const name = h('input', { id: 'guest-name', type: 'text', autocomplete: 'name', maxLength: 100, required: true });
  const form = h('form', { class: 'card narrow login', novalidate: true },
    h('p', { class: 'brand' }, h('img', { src: '/assets/icon.svg', alt: '', width: 28, height: 28 }), 'callhub'),
    h('h1', {}, title || 'Join the call'),
    h('p', { class: 'muted' }, inviter ? `${inviter} invites you to join as a guest.` : 'You were invited as a guest.',
      ' Tell the others who you are; your camera and microphone are asked for next.'),
    h('div', { class: 'field' }, h('label', { for: 'guest-name' }, 'Your name'), name),
    error,
    h('button', { class: 'btn primary wide', type: 'submit' }, 'Join'));
  if (!token) {
    error.textContent = 'This link has no guest token. Open the full link from your invitation.';
  }
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const displayName = name.value.trim();
    if (!displayName) {
      error.textContent = 'Enter your name.';
      name.focus();
      return;
    }
    const button = form.querySelector('button');
    button.disabled = true;
    error.textContent = '';
    try {
      const joined = await api('POST', '/rtc/joinAnonymous', { auth: false, body: { callId, token, displayName } });
      const guest = { ...joined, name: displayName };
      sessionStorage.setItem(KEY(callId), JSON.stringify(guest));
      useGuestToken(joined.accessToken);
      onJoined(guest);
    } catch (err) {
      error.textContent = err.status === 409 ? 'This call has ended, or is full.' : err.message;
      button.disabled = false;
    }
  });
  fill(root, h('main', { id: 'main', class: 'center' }, form));
  name.focus();
}
