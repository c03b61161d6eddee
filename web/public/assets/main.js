// The client's entry: routes by path (/ login or dashboard, /call/<id> the call
// view, /join/<id>?t= the guest page), and keeps one socket and one pop-up for the
// signed-in person across pages.

import { h, fill, icon, toast } from './dom.js';
import * as session from './session.js';
import * as directory from './directory.js';
import * as calls from './calls.js';
import { Socket } from './socket.js';
import { IncomingCalls } from './popup.js';
import { mountLogin } from './login.js';
import { mountGuest, savedGuest, forgetGuest } from './guest.js';
import { mountCall, debounce } from './callview.js';
import { startPanel } from './start.js';
import { callsPanel } from './dashboard.js';
import { useGuestToken } from './api.js';

const root = document.getElementById('app');
const popups = document.getElementById('popups');
let socket = null;
let incoming = null;
let callView = null;
let dashboard = null;
let nextVideo = true; // "Answer without video" opens the call with the camera off
let connection = null;

function navigate(path) {
  history.pushState({}, '', path);
  route();
}

window.addEventListener('popstate', () => route());

function route() {
  const path = location.pathname;
  const join = /^\/join\/([^/]+)\/?$/.exec(path);
  if (join) return showGuest(decodeURIComponent(join[1]), new URLSearchParams(location.search).get('t') || '');
  const s = session.current();
  if (!s) {
    signOutHere();
    document.title = 'Log in · callhub';
    return mountLogin(root, { onLoggedIn: () => route() });
  }
  ensureSocket();
  const call = /^\/call\/([^/]+)\/?$/.exec(path);
  if (call) return showCall(decodeURIComponent(call[1]));
  showDashboard();
}

function signOutHere() {
  callView?.destroy();
  callView = null;
  incoming?.stopAll();
  incoming = null;
  socket?.stop();
  socket = null;
  dashboard = null;
}

session.onChange((s) => {
  if (!s && socket) {
    signOutHere();
    route();
  }
});

function ensureSocket() {
  if (socket) return;
  const user = session.current().user;
  socket = new Socket(() => session.accessToken());
  const reload = debounce(() => dashboard?.reload(), 250);
  incoming = new IncomingCalls({
    host: popups,
    user,
    inCall: () => !!callView,
    onAnswer: (call, { video }) => answer(call, video),
    onDecline: async (call) => {
      try {
        await calls.declineCall(call.callId);
      } catch (e) {
        if (e.status !== 409) toast(`Could not decline: ${e.message}`, 'error');
      }
      incoming.stop(call.callId, 'answeredHere');
      reload();
    },
  });
  incoming.onStopped = (text) => toast(text);
  socket.addEventListener('incomingCall', (e) => { incoming.ring(e.detail); reload(); });
  socket.addEventListener('ringingStopped', (e) => { incoming.stop(e.detail.callId, e.detail.reason); reload(); });
  socket.addEventListener('callEvent', reload);
  socket.addEventListener('presence', (e) => directory.applyPresence(e.detail));
  let failures = 0;
  socket.addEventListener('state', (e) => {
    const { state, opened } = e.detail;
    if (state === 'open') failures = 0;
    if (state === 'closed' && !opened && ++failures >= 2) {
      // Refused twice before opening: the token may be revoked; a refresh tells.
      session.refresh().catch(() => {});
    }
    if (state === 'open' && e.detail.resumed) reload();
    showConnection();
  });
  socket.start();
}

async function answer(call, video) {
  incoming.stop(call.callId, 'answeredHere');
  if (callView) {
    // Call waiting: answering ends the call we are in.
    const current = callView;
    callView = null;
    await calls.leaveCall(current.callId).catch(() => {});
    current.destroy();
  }
  nextVideo = video;
  navigate(`/call/${call.callId}`);
}

function showConnection() {
  if (!connection) return;
  const state = socket?.state;
  connection.className = `conn ${state === 'open' ? 'ok' : 'warn'}`;
  connection.textContent = state === 'open' ? 'Online' : 'Reconnecting…';
}

function shell(user, content) {
  connection = h('span', { class: 'conn', role: 'status' });
  showConnection();
  const notify = 'Notification' in window && Notification.permission === 'default'
    ? h('button', {
      type: 'button', class: 'btn ghost small', onclick: async (e) => {
        const btn = e.currentTarget;
        const p = await Notification.requestPermission().catch(() => 'denied');
        btn.remove();
        if (p === 'granted') toast('Desktop notifications are on for incoming calls.');
      },
    }, 'Enable notifications')
    : null;
  return [
    h('header', { class: 'topbar' },
      h('a', { class: 'brand', href: '/', onclick: (e) => { e.preventDefault(); navigate('/'); } },
        h('img', { src: '/assets/icon.svg', alt: '', width: 28, height: 28 }), 'callhub'),
      h('div', { class: 'topbar-right' },
        connection, notify,
        h('span', { class: 'me' }, h('strong', {}, user.displayName || user.userId), h('span', { class: 'muted' }, user.domain)),
        h('button', { type: 'button', class: 'btn ghost small', onclick: () => session.logout() }, 'Log out'))),
    content,
  ];
}

function showDashboard() {
  const user = session.current().user;
  if (callView && !callView.finished) {
    // Back to the dashboard from a call (the browser's Back): that is hanging up.
    // A reload or a lost network is not: the call waits for us to come back.
    calls.leaveCall(callView.callId).catch(() => {});
  }
  callView?.destroy();
  callView = null;
  document.title = 'callhub';
  dashboard = callsPanel({ user, onOpen: (callId) => navigate(`/call/${callId}`) });
  const start = startPanel({
    user,
    onStarted: (call) => navigate(`/call/${call.callId}`),
    onPlanned: () => dashboard.reload(),
  });
  fill(root, shell(user, h('main', { id: 'main', class: 'dash' },
    h('h1', { class: 'visually-hidden' }, 'Dashboard'), start, dashboard.element)));
}

async function showCall(callId) {
  const user = session.current().user;
  dashboard = null;
  if (callView && !callView.finished && callView.callId !== callId) calls.leaveCall(callView.callId).catch(() => {});
  callView?.destroy();
  const video = nextVideo;
  nextVideo = true;
  const view = await mountCall(root, {
    callId, socket, user, video,
    onLeave: () => {
      if (callView === view || !callView) {
        callView = null;
        navigate('/');
      }
    },
  });
  view.callId = callId;
  if (!view.done) callView = view;
}

async function showGuest(callId, token) {
  signOutHere();
  const start = (guest) => {
    useGuestToken(guest.accessToken);
    const guestSocket = new Socket(async () => guest.accessToken, { resume: false });
    guestSocket.start();
    mountCall(root, {
      callId, socket: guestSocket, user: null, guest, video: true,
      onLeave: () => {
        guestSocket.stop();
        forgetGuest(callId);
        fill(root, h('main', { id: 'main', class: 'center' }, h('div', { class: 'card narrow' },
          h('p', { class: 'brand' }, h('img', { src: '/assets/icon.svg', alt: '', width: 28, height: 28 }), 'callhub'),
          h('h1', {}, 'You left the call'),
          h('p', { class: 'muted' }, 'Thank you. You may close this page.'))));
      },
    }).then((view) => { callView = view; });
  };
  document.title = 'Join a call · callhub';
  const saved = savedGuest(callId);
  if (saved) return start(saved);
  mountGuest(root, { callId, token, onJoined: start });
}

route();

export { icon };
