// The sign-in screen: sign in, or sign up when the server allows it.
import { api } from './api.js';
import { h, icon } from './dom.js';

export function renderAuth(root, { server, notice, onSignedIn }) {
  const signupsOpen = server?.signups === 'open';

  function field(label, input, hint) {
    return h('label', { class: 'field' }, h('span', {}, label), input, hint && h('small', { class: 'hint' }, hint));
  }

  function buildForm(kind) {
    const signup = kind === 'signup';
    const username = h('input', {
      type: 'text', name: 'username', autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false',
      required: true,
    });
    const password = h('input', {
      type: 'password', name: 'password', autocomplete: signup ? 'new-password' : 'current-password', required: true,
    });
    const error = h('p', { class: 'form-error', 'data-test': 'form-error', role: 'alert', hidden: true });
    const submit = h('button', { type: 'submit', class: 'btn primary wide' }, signup ? 'Create Account' : 'Sign In');
    const form = h('form', { class: 'stack', 'data-test': signup ? 'signup-form' : 'login-form', novalidate: true, 'aria-label': signup ? 'Create account' : 'Sign in' },
      field('Username', username, signup ? '3–32 characters: a–z, 0–9, _ . -' : null),
      field('Password', password, signup ? 'At least 8 characters.' : null),
      error,
      submit);
    if (!signup && notice) {
      error.textContent = notice;
      error.hidden = false;
    }

    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      error.hidden = true;
      submit.disabled = true;
      submit.setAttribute('aria-busy', 'true');
      try {
        await api('POST', signup ? '/auth/signup' : '/auth/login', { username: username.value.trim(), password: password.value });
        await onSignedIn();
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
        submit.disabled = false;
        submit.removeAttribute('aria-busy');
        (err.code === 'weak_password' || err.code === 'invalid_credentials' ? password : username).focus();
      }
    });
    return { form, username };
  }

  const body = h('div', { class: 'auth-body' });
  const card = h('main', { class: 'auth-card' },
    h('div', { class: 'auth-logo' }, icon('wave')),
    h('h1', { class: 'auth-title' }, 'Recorder'),
    body);
  root.replaceChildren(h('div', { class: 'auth-screen' }, card));

  function show(kind) {
    const { form, username } = buildForm(kind);
    const switcher = kind === 'signup'
      ? h('p', { class: 'auth-switch' }, 'Already have an account? ',
        h('button', { type: 'button', class: 'link', 'data-test': 'show-login', onclick: () => show('login') }, 'Sign in'))
      : signupsOpen
        ? h('p', { class: 'auth-switch' }, 'New here? ',
          h('button', { type: 'button', class: 'link', 'data-test': 'show-signup', onclick: () => show('signup') }, 'Create an account'))
        : h('p', { class: 'auth-switch muted' }, 'Ask the owner of this server for an account.');
    body.replaceChildren(
      h('p', { class: 'auth-subtitle' }, kind === 'signup' ? 'Create your account' : 'Sign in to your recordings'),
      form, switcher);
    username.focus();
  }

  show('login');
}
