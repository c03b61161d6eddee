// Reading call logs: who is in a call, who rings, which list a call belongs to, and
// the statistics of the history. Pure functions of CallLog objects: no DOM, no I/O.

/** Every contact of the call by its id (creator, invitees, and guests from the events). */
export function contacts(call) {
  const all = new Map();
  for (const c of [call.creatorContact, ...(call.invitedContacts || [])]) if (c) all.set(c.id, c);
  for (const e of call.callEvents || []) if (e.contact && !all.has(e.contact.id)) all.set(e.contact.id, e.contact);
  return all;
}

export function nameOf(contact) {
  return contact?.displayName || contact?.userId || contact?.email || (contact?.anonymous ? 'Guest' : 'Someone');
}

/** Ids of the contacts in the call now, replaying Join and Leave. */
export function joined(call) {
  const inside = new Set();
  for (const e of call.callEvents || []) {
    if (e.type === 'Join') inside.add(e.contact?.id);
    else if (e.type === 'Leave') inside.delete(e.contact?.id);
    else if (e.type === 'Ended') inside.clear();
  }
  return inside;
}

/** My contact in the call, for an account. */
export function mine(call, user) {
  return [...contacts(call).values()].find((c) => c.userDbId === user.userDbId) || null;
}

/** The contact's last event among those that answer an invitation. */
function lastAnswer(call, id) {
  let state = null;
  for (const e of call.callEvents || []) {
    if (e.contact?.id !== id) continue;
    if (['Ringing', 'Invited', 'Join', 'Declined', 'Missed', 'Leave'].includes(e.type)) state = e.type;
  }
  return state;
}

/**
 * Whether the call waits for this contact: invited, not in, and it has not
 * answered, declined or missed (ringing is not always an event in the log).
 */
function awaited(call, contact) {
  if (!contact || call.callStatus !== 'Started') return false;
  if (joined(call).has(contact.id)) return false;
  return [null, 'Ringing', 'Invited'].includes(lastAnswer(call, contact.id));
}

export function ringingFor(call, user) {
  return awaited(call, mine(call, user));
}

/** People with an account the call still waits for. */
export function ringing(call) {
  return [...contacts(call).values()].filter((c) => c.userDbId && awaited(call, c));
}

/**
 * Which list of the dashboard shows the call: 'incoming' (rings for me),
 * 'ongoing' (someone is in), 'waiting' (nobody in, invitees ringing or not yet
 * reached), 'scheduled' (Planned) or 'history' (Ended).
 */
export function section(call, user) {
  if (call.callStatus === 'Ended') return 'history';
  if (call.callStatus === 'Planned') return 'scheduled';
  if (ringingFor(call, user)) return 'incoming';
  const inside = joined(call).size;
  if (inside >= 2 || (inside === 1 && !ringing(call).length)) return 'ongoing';
  return 'waiting';
}

/** Whether anybody besides the first to join ever joined (the call was answered). */
export function answered(call) {
  const joiners = new Set((call.callEvents || []).filter((e) => e.type === 'Join').map((e) => e.contact?.id));
  return joiners.size >= 2;
}

/** Seconds from the second person's Join to the end, for answered calls. */
export function talkSeconds(call) {
  const joins = [];
  for (const e of call.callEvents || []) {
    if (e.type === 'Join' && !joins.some((j) => j.contact?.id === e.contact?.id)) joins.push(e);
  }
  if (joins.length < 2 || !call.endedAt) return null;
  return (new Date(call.endedAt) - new Date(joins[1].timestamp)) / 1000;
}

/** {answered, missed, averageSeconds, total} over ended calls. */
export function statistics(calls) {
  const ended = calls.filter((c) => c.callStatus === 'Ended');
  const talked = ended.filter(answered);
  const secs = talked.map(talkSeconds).filter((s) => s !== null);
  return {
    total: ended.length,
    answered: talked.length,
    missed: ended.length - talked.length,
    averageSeconds: secs.length ? secs.reduce((a, b) => a + b, 0) / secs.length : null,
  };
}

const EVENT_TEXT = {
  Created: 'created the call',
  Join: 'joined',
  Leave: 'left',
  Invited: 'was invited',
  Ringing: 'was rung',
  Declined: 'declined',
  Missed: 'missed the call',
  Ended: 'The call ended',
};

/** "Alice joined" for a timeline. */
export function eventText(e) {
  if (e.type === 'Ended') return EVENT_TEXT.Ended;
  return `${nameOf(e.contact)} ${EVENT_TEXT[e.type] || e.type}`;
}

/** The other people of a call, as seen by `user`, for a title line. */
export function others(call, user) {
  const me = user ? mine(call, user) : null;
  return [...contacts(call).values()].filter((c) => c.id !== me?.id);
}
