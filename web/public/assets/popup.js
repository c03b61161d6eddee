// The incoming-call pop-up: an alertdialog named "Incoming call" with the caller,
// Answer / Answer without video / Decline, a ringtone, and a desktop notification
// where allowed. It closes when ringing stops anywhere (`ringingStopped`).

import { h, avatar } from './dom.js';
import * as ringtone from './ringtone.js';
import { contacts, joined, mine, nameOf } from './calllog.js';

const STOP_TEXT = {
  answeredElsewhere: 'Answered on another device',
  declinedElsewhere: 'Declined on another device',
  cancelled: 'The caller hung up',
  missed: 'Missed call',
  ended: 'The call ended',
};

export class IncomingCalls {
  /**
   * host: element to show the dialog in; user: UserInfo;
   * onAnswer(call, {video}), onDecline(call): the choices; inCall(): whether a call is on.
   */
  constructor({ host, user, onAnswer, onDecline, inCall }) {
    Object.assign(this, { host, user, onAnswer, onDecline, inCall });
    this.queue = new Map(); // callId -> {call, busy}
    this.shown = null;
    this.notification = null;
  }

  /** An `incomingCall` frame. */
  ring(frame) {
    this.queue.set(frame.call.callId, { call: frame.call, busy: !!frame.busy });
    if (!this.shown) this.showNext();
  }

  /** A `ringingStopped` frame (or our own answer/decline). */
  stop(callId, reason) {
    const was = this.queue.get(callId);
    this.queue.delete(callId);
    if (this.shown === callId) {
      this.close();
      if (reason && reason !== 'answeredHere' && STOP_TEXT[reason] && was) {
        this.onStopped?.(`${STOP_TEXT[reason]}: ${callerName(was.call, this.user)}`);
      }
      this.showNext();
    }
  }

  stopAll() {
    this.queue.clear();
    this.close();
  }

  close() {
    ringtone.stop();
    this.notification?.close();
    this.notification = null;
    this.dialog?.remove();
    this.dialog = null;
    this.shown = null;
    this.returnFocus?.focus?.();
  }

  showNext() {
    const next = this.queue.values().next().value;
    if (!next) return;
    const { call, busy } = next;
    this.shown = call.callId;
    const waiting = busy || this.inCall();
    const caller = callerName(call, this.user);
    const group = call.callType === 'SFU';
    const choose = (fn) => async (e) => {
      for (const b of this.dialog.querySelectorAll('button')) b.disabled = true;
      e.currentTarget.setAttribute('aria-busy', 'true');
      try {
        await fn();
      } finally {
        if (this.shown === call.callId) {
          for (const b of this.dialog?.querySelectorAll('button') || []) b.disabled = false;
        }
      }
    };
    this.returnFocus = document.activeElement;
    this.dialog = h('div', { class: 'popup-backdrop' },
      h('div', {
        class: `popup${waiting ? ' waiting' : ''}`, role: 'alertdialog', 'aria-modal': 'true',
        'aria-labelledby': 'incoming-title', 'aria-describedby': 'incoming-caller incoming-what',
        dataset: { callId: call.callId },
      },
      h('p', { class: 'popup-kicker', id: 'incoming-title' }, 'Incoming call'),
      h('div', { class: 'ring-avatar' }, avatar(caller)),
      h('p', { class: 'popup-caller', id: 'incoming-caller' }, caller),
      h('p', { class: 'popup-what', id: 'incoming-what' },
        group ? `Group call · ${call.callTitle || ''}` : (call.callTitle || 'Video call'),
        waiting ? h('span', { class: 'badge warn' }, 'Call waiting: you are in a call') : null),
      h('div', { class: 'popup-actions' },
        h('button', { class: 'btn round accept', type: 'button', onclick: choose(() => this.onAnswer(call, { video: true })) },
          'Answer'),
        h('button', { class: 'btn round secondary', type: 'button', onclick: choose(() => this.onAnswer(call, { video: false })) },
          'Answer without video'),
        h('button', { class: 'btn round danger', type: 'button', onclick: choose(() => this.onDecline(call)) },
          'Decline'))));
    this.host.append(this.dialog);
    this.dialog.querySelector('button').focus();
    // Keep focus inside the dialog while it shows.
    this.dialog.addEventListener('keydown', (e) => {
      if (e.key !== 'Tab') return;
      const buttons = [...this.dialog.querySelectorAll('button')];
      const i = buttons.indexOf(document.activeElement);
      const j = e.shiftKey ? (i <= 0 ? buttons.length - 1 : i - 1) : (i + 1) % buttons.length;
      buttons[j].focus();
      e.preventDefault();
    });
    ringtone.start(waiting ? 'waiting' : 'ring');
    if ('Notification' in window && Notification.permission === 'granted') {
      try {
        this.notification = new Notification('Incoming call', {
          body: `${caller}${waiting ? ' (call waiting)' : ''}`,
          tag: call.callId,
          requireInteraction: true,
        });
        this.notification.onclick = () => window.focus();
      } catch { /* some platforms only allow notifications from a service worker */ }
    }
  }
}

/** Who is calling: whoever is in the call already, else the call's creator. */
export function callerName(call, user) {
  const me = mine(call, user);
  const all = contacts(call);
  const inside = [...joined(call)].filter((id) => id !== me?.id).map((id) => all.get(id));
  const caller = inside[0] || (call.creatorContact?.id !== me?.id ? call.creatorContact : null);
  return nameOf(caller || call.creatorContact);
}
