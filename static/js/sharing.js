// Share links: the "Share…" dialog of a recording (make a link, copy it, revoke the recording's
// links) and the list of every live link on the account page.
import { api } from './api.js';
import { h, icon } from './dom.js';
import { formatDate, formatLongDate, plural } from './format.js';
import { confirmDialog, reportError } from './ui.js';

/**
 * Copies `text`: the Clipboard API where the page may use it, else the selection of `field`
 * (an input holding the text) and the old copy command. Whether it worked.
 */
export async function copyText(text, field) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // denied: fall back to the selection
  }
  field.focus();
  field.select();
  try {
    return document.execCommand('copy');
  } catch {
    return false;
  }
}

/** A Copy button for a read-only field; says what happened in `status` (a live region). */
export function copyButton(field, status, test) {
  const button = h('button', { type: 'button', class: 'btn', 'data-test': test }, icon('copy'), h('span', {}, 'Copy'));
  let timer = 0;
  button.addEventListener('click', async () => {
    const ok = await copyText(field.value, field);
    status.textContent = ok ? 'Copied.' : 'Select the text and copy it (Ctrl+C or ⌘C).';
    clearTimeout(timer);
    timer = setTimeout(() => { status.textContent = ''; }, 4000);
  });
  return button;
}

const EXPIRY = [
  { value: '1', label: '1 day' },
  { value: '7', label: '7 days' },
  { value: '30', label: '30 days' },
  { value: '', label: 'Never' },
];

function shareMeta(share) {
  const expires = share.expires_at ? `Expires ${formatDate(share.expires_at)}` : 'Never expires';
  const opens = share.opens === 0 ? 'Not opened yet' : `Opened ${plural(share.opens, 'time', 'times')}`;
  return `${expires} · ${opens} · ${share.download ? 'Download allowed' : 'Listen only'}`;
}

/** Revokes a link after asking; whether it was revoked. */
async function revoke(share) {
  const ok = await confirmDialog({
    title: 'Revoke this link?',
    message: `Anyone who opens the link to “${share.name}” will see “Link not found”. This cannot be undone.`,
    ok: 'Revoke',
  });
  if (!ok) return false;
  try {
    await api('DELETE', `/shares/${encodeURIComponent(share.id)}`);
    return true;
  } catch (e) {
    reportError(e);
    return e.status === 404;
  }
}

/** One live link with its Revoke button; `showName` for the account page's list of all. */
function shareItem(share, { showName, onRevoked }) {
  const button = h('button', {
    type: 'button', class: 'btn small danger-outline', 'data-test': 'share-revoke',
    'aria-label': `Revoke the link to ${share.name}, made ${formatLongDate(share.created_at)}`,
  }, 'Revoke');
  const li = h('li', { class: 'share-item', 'data-test': 'share-item', 'data-id': share.id },
    h('div', { class: 'share-info' },
      showName ? h('span', { class: 'share-name', 'data-test': 'share-name', title: share.name }, share.name) : null,
      h('span', { class: 'share-meta' },
        h('time', { datetime: share.created_at, title: formatLongDate(share.created_at) }, `Made ${formatDate(share.created_at)}`),
        ` · ${shareMeta(share)}`)),
    button);
  button.addEventListener('click', async () => {
    button.disabled = true;
    if (await revoke(share)) onRevoked(share);
    else button.disabled = false;
  });
  return li;
}

/** Every live link of the account, with Revoke: `{ element, load() }`. */
export function createSharedLinks() {
  const list = h('ul', { class: 'share-links', 'data-test': 'shared-links', 'aria-label': 'Shared links' });
  const state = h('p', { class: 'muted' });
  const element = h('div', {}, state, list);
  let seq = 0;

  async function load() {
    const mine = ++seq;
    try {
      const { shares } = await api('GET', '/shares');
      if (mine !== seq) return;
      render(shares);
    } catch (e) {
      if (mine !== seq) return;
      state.textContent = 'The shared links could not be loaded.';
      reportError(e);
    }
  }

  function render(shares) {
    list.replaceChildren(...shares.map((s) => shareItem(s, { showName: true, onRevoked: () => load() })));
    state.textContent = shares.length
      ? 'Links that still open. A link’s address is shown only when it is made.'
      : 'No shared links. Share a recording from its row in the list.';
  }

  return { element, load };
}

/** The "Share…" dialog: `{ element, open(rec) }`. */
export function createShareDialog() {
  const title = h('h2', { class: 'dialog-title', id: 'share-title' }, 'Share');
  const expiry = h('select', { id: 'share-expiry', 'data-test': 'share-expiry' },
    EXPIRY.map((o) => h('option', { value: o.value }, o.label)));
  const download = h('input', { type: 'checkbox', 'data-test': 'share-download', 'aria-describedby': 'share-download-hint' });
  const create = h('button', { type: 'submit', class: 'btn primary', 'data-test': 'share-create' }, 'Create Link');
  const form = h('form', { class: 'stack', 'data-test': 'share-form' },
    h('div', { class: 'field' }, h('label', { for: 'share-expiry' }, 'Link expires after'), expiry),
    h('div', { class: 'field' },
      h('label', { class: 'check' }, download, h('span', {}, 'Allow download')),
      h('small', { class: 'hint', id: 'share-download-hint' },
        'Without it the page has no download button; anyone who can play a recording can still save it.')),
    h('div', {}, create));

  const url = h('input', { type: 'text', id: 'share-url', class: 'mono', 'data-test': 'share-url', readonly: true, spellcheck: 'false' });
  const copyStatus = h('span', { class: 'copy-status', role: 'status' });
  const result = h('div', { class: 'share-result stack', 'data-test': 'share-result', hidden: true },
    h('div', { class: 'field' },
      h('label', { for: 'share-url' }, 'Link'),
      h('div', { class: 'copy-row' }, url, copyButton(url, copyStatus, 'share-copy'))),
    h('p', { class: 'hint' }, copyStatus,
      ' Anyone with this link can listen, without an account. It is shown only now: copy it before you close this.'));

  const links = h('ul', { class: 'share-links', 'data-test': 'share-links', 'aria-labelledby': 'share-links-title' });
  const linksNote = h('p', { class: 'hint' });
  const linksBox = h('section', { class: 'share-existing', 'aria-labelledby': 'share-links-title' },
    h('h3', { class: 'dialog-subtitle', id: 'share-links-title' }, 'Links to this recording'), linksNote, links);
  const close = h('button', { type: 'button', class: 'btn', 'data-test': 'share-close' }, 'Done');
  const dialog = h('dialog', { class: 'sheet', 'data-test': 'share-dialog', 'aria-labelledby': 'share-title' },
    title,
    h('p', { class: 'dialog-message' }, 'Make a link that plays this recording for anyone who has it.'),
    form, result, linksBox,
    h('div', { class: 'dialog-actions' }, close));

  let rec = null;
  let seq = 0;

  async function loadLinks() {
    const mine = ++seq;
    const id = rec?.id;
    try {
      const { shares } = await api('GET', '/shares');
      if (mine !== seq || rec?.id !== id) return;
      const own = shares.filter((s) => s.recording_id === id);
      links.replaceChildren(...own.map((s) => shareItem(s, { showName: false, onRevoked: loadLinks })));
      linksNote.textContent = own.length ? '' : 'None yet.';
    } catch (e) {
      if (mine !== seq) return;
      linksNote.textContent = 'The links could not be loaded.';
      reportError(e);
    }
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!rec) return;
    create.disabled = true;
    try {
      const days = expiry.value ? Number(expiry.value) : null;
      const share = await api('POST', `/recordings/${encodeURIComponent(rec.id)}/shares`,
        { expires_in_days: days, download: download.checked });
      url.value = new URL(share.url, location.origin).href;
      result.hidden = false;
      copyStatus.textContent = '';
      url.focus();
      url.select();
      loadLinks();
    } catch (err) {
      reportError(err);
      if (err.status === 404) dialog.close();
    } finally {
      create.disabled = false;
    }
  });
  close.addEventListener('click', () => dialog.close());
  // A click on the backdrop (outside the box) closes it.
  dialog.addEventListener('click', (e) => {
    if (e.target !== dialog) return;
    const r = dialog.getBoundingClientRect();
    if (e.clientX < r.left || e.clientX > r.right || e.clientY < r.top || e.clientY > r.bottom) dialog.close();
  });
  dialog.addEventListener('close', () => {
    // The link is gone from the page once the dialog closes: it was shown once.
    url.value = '';
    result.hidden = true;
    rec = null;
    seq++;
  });

  return {
    element: dialog,
    open(recording) {
      rec = recording;
      title.textContent = `Share “${recording.name}”`;
      expiry.value = '7';
      download.checked = true;
      url.value = '';
      result.hidden = true;
      links.replaceChildren();
      linksNote.textContent = 'Loading…';
      if (!dialog.open) dialog.showModal();
      expiry.focus();
      loadLinks();
    },
    /** The recording left the list (trashed, deleted): its dialog closes. */
    forget(id) {
      if (rec?.id === id && dialog.open) dialog.close();
    },
    /** A fresher copy of a recording (renamed). */
    update(recording) {
      if (rec?.id === recording.id) title.textContent = `Share “${recording.name}”`;
    },
  };
}
