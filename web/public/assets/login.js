// The login form: Username, Password, Domain, "Log in".

import { h, fill } from './dom.js';
import * as session from './session.js';

export function mountLogin(root, { onLoggedIn }) {
  const error = h('p', { class: 'form-error', role: 'alert', id: 'login-error' });
  const field = (id, label, attrs, hint) => h('div', { class: 'field' },
    h('label', { for: id }, label),
    h('input', { id, name: id, ...attrs, 'aria-describedby': hint ? `${id}-hint` : null }),
    hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null);
  const last = localStorage.getItem('callhub.lastLogin');
  const lastLogin = last ? JSON.parse(last) : {};
  const form = h('form', { class: 'card narrow login', novalidate: true },
    h('p', { class: 'brand' }, h('img', { src: '/assets/icon.svg', alt: '', width: 28, height: 28 }), 'callhub'),
    h('h1', {}, 'Log in'),
    h('p', { class: 'muted' }, 'Calls with your team, your experts and your guests.'),
    field('username', 'Username', { type: 'text', autocomplete: 'username', required: true, value: lastLogin.username || '', autocapitalize: 'none', spellcheck: false }),
    field('password', 'Password', { type: 'password', autocomplete: 'current-password', required: true }),
    field('domain', 'Domain', { type: 'text', autocomplete: 'organization', value: lastLogin.domain || '', autocapitalize: 'none', spellcheck: false },
      'Your organisation. May stay empty when your username is unique.'),
    error,
    h('button', { class: 'btn primary wide', type: 'submit' }, 'Log in'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const username = form.username.value.trim();
    const password = form.password.value;
    const domain = form.domain.value.trim();
    if (!username || !password) {
      error.textContent = !username ? 'Enter your username.' : 'Enter your password.';
      (!username ? form.username : form.password).focus();
      return;
    }
    const button = form.querySelector('button');
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    error.textContent = '';
    try {
      await session.login(username, password, domain || undefined);
      localStorage.setItem('callhub.lastLogin', JSON.stringify({ username, domain }));
      onLoggedIn();
    } catch (err) {
      error.textContent = err.message;
      form.password.select();
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  });
  fill(root, h('main', { id: 'main', class: 'center' }, form));
  (lastLogin.username ? form.password : form.username).focus();
}
