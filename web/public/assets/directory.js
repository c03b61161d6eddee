// The directory: people and teams of the caller's domain, found by name, id or
// mail, each person with a presence dot that `presence` frames keep current.

import { api } from './api.js';

const presence = new Map(); // userDbId -> 'online' | 'busy' | 'offline'
const PRESENCE_TEXT = { online: 'Online', busy: 'In a call', offline: 'Offline' };

export function presenceText(p) {
  return PRESENCE_TEXT[p] || 'Offline';
}

/** GET /rtc/contacts: {contacts, teams}. */
export async function search(q, size = 20) {
  const found = await api('GET', '/rtc/contacts', { query: { q, size } });
  for (const c of found.contacts || []) presence.set(c.userDbId, c.presence);
  return { contacts: found.contacts || [], teams: found.teams || [] };
}

export function presenceOf(userDbId) {
  return presence.get(userDbId) || 'offline';
}

/** Applies a `presence` frame and updates every dot that shows that person. */
export function applyPresence(frame) {
  presence.set(frame.userDbId, frame.presence);
  for (const el of document.querySelectorAll(`[data-presence-of="${Number(frame.userDbId)}"]`)) {
    el.className = `dot ${frame.presence}`;
    el.title = presenceText(frame.presence);
    const label = el.closest('li')?.querySelector('.presence-text');
    if (label) label.textContent = presenceText(frame.presence);
  }
}

/** A contact of the directory as a CallLogContact for createCall/inviteContacts. */
export function asInvitee(c) {
  return {
    userDbId: c.userDbId,
    userId: c.userId,
    domain: c.domain,
    displayName: c.displayName,
    email: c.email || '',
    phoneNumber: c.phoneNumber || '',
  };
}
