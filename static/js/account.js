// The account view: who, how much, change password, sign out, apps and devices (app tokens
// with their pairing QR code, browser sessions), shared links, phone app setup.
import { api } from './api.js';
import { h, icon, clear } from './dom.js';
import { formatDate, formatDay, formatLongDate, formatSize, plural } from './format.js';
import { copyButton, createSharedLinks } from './sharing.js';
import { confirmDialog, reportError } from './ui.js';

export function createAccount(ctx) {
  const usernameEl = h('span', { class: 'account-name', 'data-test': 'username' });
  const sinceEl = h('span', { class: 'muted' });
  const avatar = h('span', { class: 'avatar large', 'aria-hidden': 'true' });
  const usageEl = h('dl', { class: 'usage', 'data-test': 'usage' });

  const formError = h('p', { class: 'form-error', 'data-test': 'form-error', role: 'alert', hidden: true });
  const okMsg = h('p', { class: 'form-ok', 'data-test': 'password-ok', role: 'status', hidden: true });
  const current = h('input', { type: 'password', name: 'current_password', id: 'current-password', autocomplete: 'current-password', required: true });
  const fresh = h('input', { type: 'password', name: 'new_password', id: 'new-password', autocomplete: 'new-password', required: true, 'aria-describedby': 'new-password-hint' });
  const revokeApps = h('input', { type: 'checkbox', name: 'revoke_apps', 'data-test': 'revoke-apps' });
  const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Change Password');
  // For password managers: which account this new password belongs to.
  const userHint = h('input', { type: 'text', name: 'username', autocomplete: 'username', readonly: true, hidden: true, tabindex: '-1' });
  const form = h('form', { class: 'stack', 'data-test': 'password-form', novalidate: true },
    userHint,
    h('label', { class: 'field' }, h('span', {}, 'Current password'), current),
    h('label', { class: 'field' }, h('span', {}, 'New password'), fresh,
      h('small', { id: 'new-password-hint', class: 'hint' }, 'At least 8 characters. Your other browser sessions will be signed out.')),
    h('label', { class: 'check' }, revokeApps, h('span', {}, 'Also sign out all apps')),
    formError, okMsg,
    h('div', {}, submit));

  const devices = createDevices(ctx);
  const sharedLinks = createSharedLinks();
  const logout = h('button', { type: 'button', class: 'btn danger-outline', 'data-test': 'logout' }, 'Sign Out');
  const serverInfo = h('dl', { class: 'usage' });
  const origin = location.origin;

  const view = h('section', { class: 'view account', 'aria-labelledby': 'account-title', hidden: true },
    h('div', { class: 'view-head' }, h('h1', { class: 'view-title', id: 'account-title' }, 'Account')),
    h('div', { class: 'card profile' }, avatar, h('div', { class: 'profile-text' }, usernameEl, sinceEl), logout),
    h('div', { class: 'card' }, h('h2', {}, 'Storage'), usageEl),
    h('div', { class: 'card' }, h('h2', {}, 'Change password'), form),
    devices.element,
    h('section', { class: 'card', 'aria-labelledby': 'shared-links-title' },
      h('h2', { id: 'shared-links-title' }, icon('link'), ' Shared links'), sharedLinks.element),
    h('div', { class: 'card' },
      h('h2', {}, icon('phone'), ' Phone app'),
      h('p', {}, 'Point your phone’s recorder app at this server, with an app token from “Apps and devices”:'),
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
      const apps = revokeApps.checked;
      await api('PUT', '/me/password', { current_password: current.value, new_password: fresh.value, revoke_apps: apps });
      form.reset();
      okMsg.textContent = apps
        ? 'Password changed. Your other browser sessions and all apps have been signed out.'
        : 'Password changed. Your other browser sessions have been signed out; apps stay signed in.';
      okMsg.hidden = false;
      devices.load();
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
      devices.load();
      sharedLinks.load();
      ctx.markReady();
    },
    usageChanged() {
      if (!view.hidden) render();
    },
    /** Leaving the page: a new token still shown is forgotten. */
    hide() {
      devices.hide();
    },
  };
}

/** Where a token was last used, in words. */
function lastUsed(token) {
  return token.last_used_at ? `Last used ${formatDate(token.last_used_at)}` : 'Never used';
}

/**
 * "Apps and devices": make an app token (shown once, with its pairing QR code), and the list of
 * app tokens and browser sessions, each revocable.
 */
function createDevices(ctx) {
  const nameInput = h('input', {
    type: 'text', id: 'token-name', name: 'token_name', 'data-test': 'token-name', maxlength: '100', required: true,
    autocomplete: 'off', placeholder: 'Pixel 8', 'aria-describedby': 'token-name-hint',
  });
  const createBtn = h('button', { type: 'submit', class: 'btn primary', 'data-test': 'token-create' }, 'Create Token');
  const formError = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const form = h('form', { class: 'stack token-form', 'data-test': 'token-form', novalidate: true },
    h('div', { class: 'field' },
      h('label', { for: 'token-name' }, 'Name of the app or device'),
      h('div', { class: 'copy-row' }, nameInput, createBtn),
      h('small', { class: 'hint', id: 'token-name-hint' }, 'Give each phone or script its own token, so you can sign it out alone.')),
    formError);

  // The new token, shown once.
  const newTitle = h('h3', { class: 'new-token-title', id: 'new-token-title' });
  const qr = h('img', { class: 'token-qr', 'data-test': 'token-qr', width: '200', height: '200', alt: '' });
  const tokenField = h('input', {
    type: 'text', id: 'token-value', class: 'mono', 'data-test': 'token-value', readonly: true, spellcheck: 'false', autocomplete: 'off',
  });
  const copyStatus = h('span', { class: 'copy-status', role: 'status' });
  const doneBtn = h('button', { type: 'button', class: 'btn', 'data-test': 'token-done' }, 'Done');
  const fresh = h('section', { class: 'new-token', 'data-test': 'new-token', 'aria-labelledby': 'new-token-title', hidden: true },
    newTitle,
    h('p', { class: 'once', 'data-test': 'token-once' },
      h('strong', {}, 'Shown only once. '),
      'Scan the code with the app, or copy the token now: the server keeps only a fingerprint of it and cannot show it again.'),
    h('div', { class: 'new-token-body' },
      h('figure', { class: 'qr-frame' }, qr),
      h('div', { class: 'stack' },
        h('div', { class: 'field' },
          h('label', { for: 'token-value' }, 'Token'),
          h('div', { class: 'copy-row' }, tokenField, copyButton(tokenField, copyStatus, 'token-copy'))),
        h('dl', { class: 'setup' },
          h('dt', {}, 'Server URL'), h('dd', {}, h('code', {}, location.origin)),
          h('dt', {}, 'Header'), h('dd', {}, h('code', {}, 'Authorization: Bearer <token>'))),
        h('p', { class: 'hint' }, copyStatus),
        h('div', {}, doneBtn))));

  const list = h('ul', { class: 'token-list', 'data-test': 'tokens', 'aria-label': 'Apps and browser sessions' });
  const listState = h('p', { class: 'muted' });
  const element = h('section', { class: 'card devices', 'data-test': 'devices', 'aria-labelledby': 'devices-title' },
    h('h2', { id: 'devices-title' }, icon('phone'), ' Apps and devices'),
    form, fresh,
    h('h3', { class: 'card-subtitle' }, 'Signed in'),
    listState, list);

  let seq = 0;

  function forgetToken() {
    fresh.hidden = true;
    tokenField.value = '';
    qr.removeAttribute('src');
    qr.alt = '';
    copyStatus.textContent = '';
  }

  async function load() {
    const mine = ++seq;
    try {
      const { tokens } = await api('GET', '/tokens');
      if (mine !== seq) return;
      render(tokens);
    } catch (e) {
      if (mine !== seq) return;
      listState.textContent = 'The list could not be loaded.';
      reportError(e);
    }
  }

  function label(token) {
    if (token.kind === 'app') return token.name;
    return token.current ? 'This browser' : 'Browser session';
  }

  function render(tokens) {
    // The credential in use first, then apps, then other sessions; newest first within each.
    const rank = (t) => (t.current ? 0 : t.kind === 'app' ? 1 : 2);
    const sorted = [...tokens].sort((a, b) => rank(a) - rank(b) || b.created_at.localeCompare(a.created_at));
    list.replaceChildren(...sorted.map(item));
    listState.textContent = sorted.some((t) => t.kind === 'app') ? '' : 'No app tokens yet.';
  }

  function item(token) {
    const name = label(token);
    const session = token.kind === 'session';
    const action = session ? 'Sign Out' : 'Revoke';
    const button = h('button', {
      type: 'button', class: 'btn small danger-outline', 'data-test': 'token-revoke',
      'aria-label': `${action} ${name}${session && !token.current ? `, signed in ${formatLongDate(token.created_at)}` : ''}`,
    }, action);
    const li = h('li', { class: 'token-item', 'data-test': 'token-item', 'data-id': token.id, 'data-kind': token.kind },
      h('span', { class: 'token-icon' }, icon(session ? 'laptop' : 'phone')),
      h('div', { class: 'token-info' },
        h('span', { class: 'token-name' },
          h('span', { class: 'token-label', 'data-test': 'token-label', title: name }, name),
          token.current ? h('span', { class: 'pill', 'data-test': 'token-current' }, 'Current') : null),
        h('span', { class: 'token-meta' },
          h('time', { datetime: token.created_at, title: formatLongDate(token.created_at) }, `${session ? 'Signed in' : 'Created'} ${formatDate(token.created_at)}`),
          ` · ${lastUsed(token)}`)),
      button);
    button.addEventListener('click', () => revoke(token, name, button));
    return li;
  }

  async function revoke(token, name, button) {
    const session = token.kind === 'session';
    const ok = await confirmDialog(session
      ? {
        title: token.current ? 'Sign out of this browser?' : 'Sign out this browser session?',
        message: token.current
          ? 'You will need your password to sign in here again.'
          : `The browser signed in ${formatLongDate(token.created_at)} will need the password to sign in again.`,
        ok: 'Sign Out',
      }
      : {
        title: `Revoke “${name}”?`,
        message: 'The app or script using this token is signed out at once, everywhere. It needs a new token to connect again.',
        ok: 'Revoke',
      });
    if (!ok) return;
    button.disabled = true;
    try {
      await api('DELETE', `/tokens/${encodeURIComponent(token.id)}`);
    } catch (e) {
      button.disabled = false;
      if (e.status === 401) return; // that was this session: the sign-in screen says so
      reportError(e);
      if (e.status !== 404) return;
    }
    if (token.current && session) {
      ctx.signedOut();
      return;
    }
    load();
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    formError.hidden = true;
    const name = nameInput.value.trim();
    if (!name) {
      formError.textContent = 'Give the token a name, such as the phone it is for.';
      formError.hidden = false;
      nameInput.focus();
      return;
    }
    createBtn.disabled = true;
    try {
      const made = await api('POST', '/tokens', { name });
      form.reset();
      newTitle.textContent = `New token: “${made.name}”`;
      tokenField.value = made.token;
      // The server's SVG, as an image: an <img> never runs what an SVG holds, and the page's
      // policy allows data: images.
      qr.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(made.qr_svg)}`;
      qr.alt = `QR code for pairing “${made.name}”: this server’s URL and the token`;
      copyStatus.textContent = '';
      fresh.hidden = false;
      tokenField.focus();
      tokenField.select();
      load();
    } catch (err) {
      formError.textContent = err.message;
      formError.hidden = false;
      nameInput.focus();
    } finally {
      createBtn.disabled = false;
    }
  });
  doneBtn.addEventListener('click', () => {
    forgetToken();
    nameInput.focus();
  });

  return {
    element,
    load,
    /** Leaving the page forgets a token still shown. */
    hide: forgetToken,
  };
}
