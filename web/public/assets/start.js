// Starting a call: search the directory, "Call" one person (MESH) or a team, pick
// several people for a group call (SFU), or plan a call for later.

import { h, fill, avatar, icon, toast } from './dom.js';
import * as directory from './directory.js';
import { createCall } from './calls.js';
import { debounce } from './callview.js';

/** The "Start a call" panel; onStarted(callLog) opens the call. */
export function startPanel({ user, onStarted, onPlanned }) {
  const selected = new Map(); // userDbId -> contact
  const input = h('input', {
    id: 'contact-q', type: 'search', autocomplete: 'off', placeholder: 'Name, user id or e-mail',
    'aria-controls': 'contact-results',
  });
  const results = h('div', { id: 'contact-results', class: 'results', 'aria-live': 'polite' });
  const chips = h('div', { class: 'chips' });
  const groupBtn = h('button', { type: 'button', class: 'btn primary', onclick: () => callSelected() }, icon('users'), 'Start group call');
  const selection = h('div', { class: 'selection', hidden: true }, chips, groupBtn);
  const title = h('input', { id: 'plan-title', type: 'text', placeholder: 'e.g. Weekly review' });
  const at = h('input', { id: 'plan-at', type: 'datetime-local', required: true });
  const planError = h('p', { class: 'form-error', role: 'alert' });
  const plan = h('details', { class: 'plan' },
    h('summary', {}, icon('clock'), 'Plan a call for later'),
    h('form', { class: 'plan-form', onsubmit: (e) => { e.preventDefault(); planCall(); } },
      h('p', { class: 'hint' }, 'Select people above (or a team); they are invited now and rung when the call starts.'),
      h('div', { class: 'field' }, h('label', { for: 'plan-title' }, 'Title'), title),
      h('div', { class: 'field' }, h('label', { for: 'plan-at' }, 'Date and time'), at),
      planError,
      h('button', { class: 'btn secondary', type: 'submit' }, 'Schedule')));

  const request = (invitedContacts, invitedTeams, extra = {}) => ({
    callTitle: extra.title || defaultTitle(invitedContacts, invitedTeams),
    callReason: 'STANDARD',
    callType: invitedContacts.length === 1 && !invitedTeams.length ? 'MESH' : 'SFU',
    invitedContacts,
    invitedTeams,
    joinAnonymousAllowed: true,
    informOthersDirectly: true,
    plannedDateTime: extra.plannedDateTime || null,
  });

  const start = async (button, req) => {
    button.disabled = true;
    try {
      onStarted(await createCall(req));
    } catch (e) {
      toast(`The call could not be started: ${e.message}`, 'error');
      button.disabled = false;
    }
  };

  async function callSelected() {
    await start(groupBtn, request([...selected.values()].map(directory.asInvitee), []));
  }

  let planTeam = null;
  async function planCall() {
    planError.textContent = '';
    if (!at.value) { planError.textContent = 'Choose a date and time.'; at.focus(); return; }
    const when = new Date(at.value);
    if (when <= new Date()) { planError.textContent = 'Choose a time in the future.'; at.focus(); return; }
    if (!selected.size && !planTeam) { planError.textContent = 'Select at least one person or team above.'; input.focus(); return; }
    try {
      const req = request([...selected.values()].map(directory.asInvitee), planTeam ? [planTeam] : [],
        { title: title.value.trim(), plannedDateTime: when.toISOString() });
      if (req.invitedContacts.length === 1 && !req.invitedTeams.length) req.callType = 'MESH';
      const call = await createCall(req);
      toast(`Planned: ${call.callTitle}, ${when.toLocaleString()}`);
      selected.clear();
      planTeam = null;
      title.value = '';
      at.value = '';
      plan.open = false;
      renderSelection();
      run();
      onPlanned?.(call);
    } catch (e) {
      planError.textContent = e.message;
    }
  }

  function renderSelection() {
    fill(chips, [...selected.values()].map((c) => h('span', { class: 'chip' }, c.displayName || c.userId,
      h('button', {
        type: 'button', class: 'chip-x', 'aria-label': `Remove ${c.displayName || c.userId}`,
        onclick: () => { selected.delete(c.userDbId); renderSelection(); syncChecks(); },
      }, '×'))),
    planTeam ? h('span', { class: 'chip team' }, `Team ${planTeam.name}`) : null);
    selection.hidden = selected.size < 2;
    groupBtn.disabled = selected.size < 2;
  }

  function syncChecks() {
    for (const box of results.querySelectorAll('input[type=checkbox][data-user]')) {
      box.checked = selected.has(Number(box.dataset.user));
    }
  }

  let seq = 0;
  async function run() {
    const mine = ++seq;
    let found;
    try {
      found = await directory.search(input.value.trim(), 20);
    } catch (e) {
      if (mine === seq) fill(results, h('p', { class: 'muted' }, `The directory cannot be searched: ${e.message}`));
      return;
    }
    if (mine !== seq) return;
    const people = found.contacts.filter((c) => c.userDbId !== user.userDbId);
    const items = [];
    for (const c of people) {
      const name = c.displayName || c.userId;
      const p = c.presence || directory.presenceOf(c.userDbId);
      const box = h('input', {
        type: 'checkbox', id: `sel-${c.userDbId}`, dataset: { user: String(c.userDbId) },
        checked: selected.has(c.userDbId),
        onchange: () => { if (box.checked) selected.set(c.userDbId, c); else selected.delete(c.userDbId); renderSelection(); },
      });
      items.push(h('li', { class: 'person', dataset: { userDbId: String(c.userDbId) } },
        box, h('label', { for: `sel-${c.userDbId}`, class: 'visually-hidden' }, `Select ${name}`),
        h('span', { class: 'avatar', 'aria-hidden': 'true' }, avatar(name).textContent,
          h('span', { class: `dot ${p}`, dataset: { presenceOf: String(c.userDbId) }, title: directory.presenceText(p) })),
        h('span', { class: 'who' }, h('strong', {}, name),
          h('span', { class: 'muted' }, h('span', { class: 'presence-text' }, directory.presenceText(p)), ` · ${c.userId}`)),
        h('button', { type: 'button', class: 'btn call', onclick: (e) => start(e.currentTarget, request([directory.asInvitee(c)], [])) },
          icon('phone'), 'Call')));
    }
    for (const t of found.teams) {
      items.push(h('li', { class: 'person team', dataset: { teamId: String(t.id) } },
        h('span', { class: 'avatar team', 'aria-hidden': 'true' }, icon('users')),
        h('span', { class: 'who' }, h('strong', {}, t.name), h('span', { class: 'muted' }, 'Team')),
        h('button', {
          type: 'button', class: 'btn ghost small', 'aria-pressed': String(planTeam?.id === t.id),
          onclick: (e) => { planTeam = planTeam?.id === t.id ? null : t; e.currentTarget.setAttribute('aria-pressed', String(!!planTeam)); renderSelection(); },
        }, 'Plan'),
        h('button', { type: 'button', class: 'btn call', onclick: (e) => start(e.currentTarget, request([], [t])) }, icon('users'), 'Call')));
    }
    fill(results, items.length
      ? h('ul', { class: 'people', 'aria-label': 'Contacts' }, items)
      : h('p', { class: 'muted empty' }, input.value.trim() ? `Nobody matches “${input.value.trim()}”.` : 'Nobody else is in your directory yet.'));
  }

  input.addEventListener('input', debounce(run, 180));
  run();
  renderSelection();
  return h('section', { class: 'panel start', 'aria-labelledby': 'start-h' },
    h('h2', { id: 'start-h' }, 'Start a call'),
    h('div', { class: 'field search' }, h('label', { for: 'contact-q' }, 'Search contacts'), input),
    results, selection, plan);
}

function defaultTitle(contacts, teams) {
  const names = [...contacts.map((c) => c.displayName || c.userId), ...teams.map((t) => t.name)];
  if (names.length === 1) return `Call with ${names[0]}`;
  if (names.length <= 3) return `Call with ${names.join(', ')}`;
  return `Call with ${names.slice(0, 2).join(', ')} and ${names.length - 2} others`;
}
