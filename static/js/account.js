// The account view: who, how much, change password, sign out, phone app setup.
import { api } from './api.js';
import { h, icon, clear } from './dom.js';
import { formatDay, formatSize, plural } from './format.js';
import { reportError } from './ui.js';

export function createAccount(ctx) {
  const usernameEl = h('span', { class: 'account-name', 'data-test': 'username' });
  const sinceEl = h('span', { class: 'muted' });
  const avatar = h('span', { class: 'avatar large', 'aria-hidden': 'true' });
  const usageEl = h('dl', { class: 'usage', 'data-test': 'usage' });

  const formError = h('p', { class: 'form-error', 'data-test': 'form-error', role: 'alert', hidden: true });
  const okMsg = h('p', { class: 'form-ok', 'data-test': 'password-ok', role: 'status', hidden: true });
  const current = h('input', { type: 'password', name: 'current_password', id: 'current-password', autocomplete: 'current-password', required: true });
  const fresh = h('input', { type: 'password', name: 'new_password', id: 'new-password', autocomplete: 'new-password', required: true, 'aria-describedby': 'new-password-hint' });
  const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Change Password');
  // For password managers: which account this new password belongs to.
  const userHint = h('input', { type: 'text', name: 'username', autocomplete: 'username', readonly: true, hidden: true, tabindex: '-1' });
  const form = h('form', { class: 'stack', 'data-test': 'password-form', novalidate: true },
    userHint,
    h('label', { class: 'field' }, h('span', {}, 'Current password'), current),
    h('label', { class: 'field' }, h('span', {}, 'New password'), fresh,
      h('small', { id: 'new-password-hint', class: 'hint' }, 'At least 8 characters. Your other devices will be signed out.')),
    formError, okMsg,
    h('div', {}, submit));

  const logout = h('button', { type: 'button', class: 'btn danger-outline', 'data-test': 'logout' }, 'Sign Out');
  const serverInfo = h('dl', { class: 'usage' });
  const origin = location.origin;

  const view = h('section', { class: 'view account', 'aria-labelledby': 'account-title', hidden: true },
    h('div', { class: 'view-head' }, h('h1', { class: 'view-title', id: 'account-title' }, 'Account')),
    h('div', { class: 'card profile' }, avatar, h('div', { class: 'profile-text' }, usernameEl, sinceEl), logout),
    h('div', { class: 'card' }, h('h2', {}, 'Storage'), usageEl),
    h('div', { class: 'card' }, h('h2', {}, 'Change password'), form),
    h('div', { class: 'card' },
      h('h2', {}, icon('phone'), ' Phone app'),
      h('p', {}, 'Point your phone’s recorder app at this server:'),
      h('dl', { class: 'setup' },
        h('dt', {}, 'Server URL'), h('dd', {}, h('code', {}, origin)),
        h('dt', {}, 'Upload endpoint'), h('dd', {}, h('code', {}, `POST ${origin}/api/v1/recordings`)),
        h('dt', {}, 'Header'), h('dd', {}, h('code', {}, 'Authorization: Bearer <token>')))),
    h('div', { class: 'card' }, h('h2', {}, 'Server'), serverInfo));

  function render() {
    const { user, usage } = ctx.me;
    usernameEl.textContent = user.username;
    userHint.value = user.username;
    avatar.textContent = user.username.charAt(0).toUpperCase();
    sinceEl.textContent = `Member since ${formatDay(user.created_at)}`;
    clear(usageEl).append(
      h('dt', {}, 'Recordings'), h('dd', {}, `${plural(usage.recordings, 'recording', 'recordings')} · ${formatSize(usage.bytes)}`),
      h('dt', {}, 'Trash'), h('dd', {}, `${plural(usage.trash_recordings, 'recording', 'recordings')} · ${formatSize(usage.trash_bytes)}`));
    const s = ctx.server;
    clear(serverInfo).append(
      h('dt', {}, 'Version'), h('dd', {}, s.version),
      h('dt', {}, 'Largest upload'), h('dd', {}, formatSize(s.max_upload_size)),
      h('dt', {}, 'Trash kept for'), h('dd', {}, s.trash_retention_days ? plural(s.trash_retention_days, 'day', 'days') : 'not kept'),
      h('dt', {}, 'Sign-ups'), h('dd', {}, s.signups === 'open' ? 'Open' : 'Closed'));
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    formError.hidden = true;
    okMsg.hidden = true;
    submit.disabled = true;
    try {
      await api('PUT', '/me/password', { current_password: current.value, new_password: fresh.value });
      form.reset();
      okMsg.textContent = 'Password changed. Your other devices have been signed out.';
      okMsg.hidden = false;
    } catch (err) {
      formError.textContent = err.message;
      formError.hidden = false;
      (err.code === 'weak_password' ? fresh : current).focus();
    } finally {
      submit.disabled = false;
    }
  });
  for (const input of [current, fresh]) input.addEventListener('input', () => { okMsg.hidden = true; });

  logout.addEventListener('click', async () => {
    logout.disabled = true;
    try {
      await api('POST', '/auth/logout');
    } catch (err) {
      if (err.status !== 401) {
        logout.disabled = false;
        reportError(err);
        return;
      }
    }
    ctx.signedOut();
  });

  return {
    element: view,
    show() {
      render();
      ctx.markReady();
    },
    usageChanged() {
      if (!view.hidden) render();
    },
  };
}
