// The dashboard's reading of call logs: which list a call is in, who it waits for,
// and the statistics. Run: node --test web/tests
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { section, ringing, ringingFor, statistics, eventText, joined } from '../public/assets/calllog.js';

const alice = { id: 1, userDbId: 10, userId: 'alice', displayName: 'Alice' };
const bob = { id: 2, userDbId: 20, userId: 'bob', displayName: 'Bob' };
const visitor = { id: 2, userDbId: null, email: 'v@example.com', displayName: 'Visitor' };
const asUser = (c) => ({ userDbId: c.userDbId });

let nextEvent = 0;
const at = (secs) => new Date(Date.UTC(2026, 10, 27, 10, 0, secs)).toISOString();
const ev = (type, contact, secs = 0) => ({ id: ++nextEvent, type, contact, timestamp: at(secs) });

function call({ status = 'Started', invited = [bob], events, ended } = {}) {
  return {
    callId: `c${++nextEvent}`, callTitle: 'T', callType: 'MESH', callStatus: status,
    creatorContact: alice, invitedContacts: invited,
    callEvents: events ?? [ev('Created', alice), ev('Join', alice)],
    startedAt: at(0), endedAt: ended === undefined ? null : at(ended),
  };
}

test('a new call rings the invitee and waits for them on the caller side', () => {
  const c = call();
  assert.equal(section(c, asUser(bob)), 'incoming');
  assert.ok(ringingFor(c, asUser(bob)));
  assert.equal(section(c, asUser(alice)), 'waiting');
  assert.deepEqual(ringing(c).map((x) => x.userId), ['bob']);
});

test('once the invitee joins, the call is ongoing for both', () => {
  const c = call({ events: [ev('Created', alice), ev('Join', alice), ev('Join', bob, 3)] });
  assert.equal(section(c, asUser(alice)), 'ongoing');
  assert.equal(section(c, asUser(bob)), 'ongoing');
  assert.deepEqual([...joined(c)].sort(), [1, 2]);
});

test('a declined invitee is not waited for', () => {
  const c = call({ events: [ev('Created', alice), ev('Join', alice), ev('Declined', bob, 2)] });
  assert.ok(!ringingFor(c, asUser(bob)));
  assert.equal(ringing(c).length, 0);
  assert.equal(section(c, asUser(alice)), 'ongoing');
});

test('a call with only an external invitee is ongoing for its creator (mail is not ringing)', () => {
  const c = call({ invited: [visitor] });
  assert.equal(section(c, asUser(alice)), 'ongoing');
});

test('planned calls are scheduled and ended calls are history', () => {
  assert.equal(section(call({ status: 'Planned', events: [ev('Created', alice)] }), asUser(bob)), 'scheduled');
  assert.equal(section(call({ status: 'Ended' }), asUser(bob)), 'history');
});

test('statistics count answered and missed calls and average the talk time', () => {
  const talked = (secs) => call({
    status: 'Ended', ended: 5 + secs,
    events: [ev('Created', alice), ev('Join', alice), ev('Join', bob, 5), ev('Leave', alice, 5 + secs), ev('Ended', null, 5 + secs)],
  });
  const missed = call({ status: 'Ended', ended: 60, events: [ev('Created', alice), ev('Join', alice), ev('Missed', bob, 60), ev('Ended', null, 60)] });
  const live = call();
  const s = statistics([talked(30), talked(90), missed, live]);
  assert.deepEqual(s, { total: 3, answered: 2, missed: 1, averageSeconds: 60 });
  assert.equal(statistics([]).averageSeconds, null);
});

test('the timeline says who did what', () => {
  assert.equal(eventText(ev('Join', bob)), 'Bob joined');
  assert.equal(eventText(ev('Ended', null)), 'The call ended');
  assert.equal(eventText(ev('Declined', { anonymous: true })), 'Guest declined');
});
