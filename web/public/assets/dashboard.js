// The dashboard: statistics, ongoing calls (Join), waiting and ringing, scheduled
// calls (Start), and the history with each call's events as a timeline.

import { h, fill, avatar, icon, when, clock, duration, toast } from './dom.js';
import * as calls from './calls.js';

/** The calls panel; reload() fetches the lists again. */
export function callsPanel({ user, onOpen }) {
  const stats = h('div', { class: 'stats', role: 'group', 'aria-label': 'Statistics' });
  const lists = {
    ongoing: h('ul', { class: 'calls-list' }),
    waiting: h('ul', { class: 'calls-list' }),
    scheduled: h('ul', { class: 'calls-list' }),
    history: h('ul', { class: 'calls-list history' }),
  };
  const block = (key, title, empty) => h('section', { class: `calls-block ${key}`, 'aria-labelledby': `${key}-h` },
    h('h3', { id: `${key}-h` }, title, h('span', { class: 'count', id: `${key}-count` })),
    lists[key],
    h('p', { class: 'muted empty', id: `${key}-empty` }, empty));
  const panel = h('section', { class: 'panel calls', 'aria-labelledby': 'calls-h' },
    h('div', { class: 'panel-head' }, h('h2', { id: 'calls-h' }, 'Calls'),
      h('button', { type: 'button', class: 'btn ghost small', onclick: () => reload() }, 'Refresh')),
    stats,
    block('ongoing', 'Ongoing', 'No call is going on.'),
    block('waiting', 'Waiting and ringing', 'Nothing is ringing.'),
    block('scheduled', 'Scheduled', 'No planned calls.'),
    block('history', 'History', 'No calls yet.'));

  const openedDetails = new Set();

  function row(call, section) {
    const others = calls.others(call, user);
    const names = others.map(calls.nameOf).join(', ') || 'Only you';
    const kind = call.callType === 'SFU' ? 'Group' : '1:1';
    const meta = h('span', { class: 'muted' }, `${kind} · ${names}`);
    const act = (label, fn, cls = 'btn small') => h('button', {
      type: 'button', class: cls, onclick: async (e) => {
        e.currentTarget.disabled = true;
        try { await fn(); } catch (err) { toast(err.message, 'error'); } finally { e.currentTarget.disabled = false; }
      },
    }, label);
    const lead = h('span', { class: 'avatar', 'aria-hidden': 'true' }, call.callType === 'SFU' ? icon('users') : avatar(names).textContent);
    if (section === 'ongoing') {
      const inside = [...calls.joined(call)].length;
      return h('li', { class: 'call-row live', dataset: { callId: call.callId } }, lead,
        h('span', { class: 'who' }, h('strong', {}, call.callTitle), meta),
        h('span', { class: 'badge live' }, `${inside} in call`),
        act('Join', () => onOpen(call.callId), 'btn small primary'));
    }
    if (section === 'incoming' || section === 'waiting') {
      const ringing = calls.ringing(call);
      const mineRings = section === 'incoming';
      const status = mineRings ? 'Waiting for you' : ringing.length ? `Calling ${ringing.map(calls.nameOf).join(', ')}` : 'Nobody in';
      const mineCreated = call.creatorContact?.userDbId === user.userDbId;
      return h('li', { class: 'call-row', dataset: { callId: call.callId } }, lead,
        h('span', { class: 'who' }, h('strong', {}, call.callTitle), meta),
        h('span', { class: `badge ${mineRings ? 'warn' : ''}` }, status),
        !mineRings && mineCreated ? act('Cancel', () => calls.endCall(call.callId).then(reload), 'btn small ghost') : null,
        act('Join', () => onOpen(call.callId), mineRings ? 'btn small primary' : 'btn small'));
    }
    if (section === 'scheduled') {
      return h('li', { class: 'call-row', dataset: { callId: call.callId } },
        h('span', { class: 'avatar cal', 'aria-hidden': 'true' }, icon('clock')),
        h('span', { class: 'who' }, h('strong', {}, call.callTitle), meta),
        h('time', { datetime: call.plannedDateTime, class: 'when' }, when(call.plannedDateTime)),
        act('Start', () => onOpen(call.callId), 'btn small primary'));
    }
    // history
    const ok = calls.answered(call);
    const secs = calls.talkSeconds(call);
    const details = h('details', { class: 'history-item', dataset: { callId: call.callId } },
      h('summary', {},
        lead,
        h('span', { class: 'who' }, h('strong', {}, call.callTitle), meta),
        h('span', { class: `badge ${ok ? 'ok' : 'bad'}` }, ok ? 'Answered' : declined(call) ? 'Declined' : 'Missed'),
        h('span', { class: 'when muted' }, when(call.startedAt || call.createdAt), ok && secs !== null ? ` · ${duration(secs)}` : '')),
      h('ol', { class: 'timeline', 'aria-label': `Events of ${call.callTitle}` },
        (call.callEvents || []).map((e) => h('li', { class: `ev ${e.type.toLowerCase()}` },
          h('time', { datetime: e.timestamp }, clock(e.timestamp)),
          h('span', {}, calls.eventText(e))))));
    if (openedDetails.has(call.callId)) details.open = true;
    details.addEventListener('toggle', () => {
      if (details.open) openedDetails.add(call.callId); else openedDetails.delete(call.callId);
    });
    return h('li', {}, details);
  }

  let loading = null;
  async function reload() {
    if (loading) return loading;
    loading = (async () => {
      let page;
      try {
        page = await calls.listCalls(100);
      } catch (e) {
        toast(`Calls could not be loaded: ${e.message}`, 'error');
        return;
      }
      const all = page.content || [];
      const by = { ongoing: [], waiting: [], scheduled: [], history: [] };
      for (const c of all) {
        const s = calls.section(c, user);
        (by[s === 'incoming' ? 'waiting' : s]).push({ c, s });
      }
      by.scheduled.sort((a, b) => new Date(a.c.plannedDateTime) - new Date(b.c.plannedDateTime));
      for (const key of Object.keys(lists)) {
        fill(lists[key], by[key].slice(0, key === 'history' ? 30 : 50).map(({ c, s }) => row(c, s)));
        panel.querySelector(`#${key}-empty`).hidden = by[key].length > 0;
        panel.querySelector(`#${key}-count`).textContent = by[key].length ? String(by[key].length) : '';
      }
      const st = calls.statistics(all);
      fill(stats,
        stat('Answered', st.answered, 'ok'),
        stat('Missed', st.missed, 'bad'),
        stat('Average duration', st.averageSeconds === null ? '–' : duration(st.averageSeconds), ''));
    })().finally(() => { loading = null; });
    return loading;
  }

  reload();
  return { element: panel, reload };
}

const declined = (call) => (call.callEvents || []).some((e) => e.type === 'Declined');

function stat(label, value, kind) {
  return h('div', { class: `stat ${kind}` }, h('span', { class: 'stat-value' }, String(value)), h('span', { class: 'stat-label' }, label));
}
