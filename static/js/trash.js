// The trash view: restore, delete forever, empty trash.
import { api } from './api.js';
import { h, icon, clear } from './dom.js';
import { daysLeft, formatDate, formatLongDate, formatSize, plural, problemText } from './format.js';
import { createPager, pageParams } from './pager.js';
import { confirmDialog, reportError, toast } from './ui.js';

export function createTrash(ctx) {
  const ul = h('ul', { class: 'rec-list trash-list', 'data-test': 'trash', 'aria-label': 'Trash', 'data-loaded': '0' });
  const sentinel = h('div', { class: 'sentinel', 'aria-hidden': 'true' });
  const stateBox = h('div', { class: 'list-state' });
  const note = h('p', { class: 'view-subtitle' });
  const emptyBtn = h('button', { type: 'button', class: 'btn danger-outline', 'data-test': 'empty-trash', disabled: true }, 'Empty Trash');
  const title = h('h1', { class: 'view-title', id: 'trash-title' }, 'Trash');
  const view = h('section', { class: 'view', 'aria-labelledby': 'trash-title', hidden: true },
    h('div', { class: 'view-head' }, h('div', {}, title, note), emptyBtn),
    ul, stateBox, sentinel);

  const items = new Map();
  const pager = createPager({
    ctx, ul, sentinel, view, items, skeletons: 4,
    path: (cursor) => `/trash?${pageParams(cursor)}`,
    render: renderItem,
    renderState,
  });

  function renderNote() {
    const days = ctx.server.trash_retention_days;
    note.textContent = days === 0
      ? 'This server deletes recordings at once; nothing is kept in the Trash.'
      : `Deleted recordings are kept for ${plural(days, 'day', 'days')}, then deleted forever.`;
  }

  function renderState() {
    clear(stateBox);
    emptyBtn.disabled = items.size === 0;
    if (items.size > 0 || pager.loading) return;
    stateBox.append(h('div', { class: 'empty', 'data-test': 'trash-empty' },
      h('div', { class: 'empty-icon' }, icon('trash')),
      h('p', { class: 'empty-title' }, 'Trash is empty'),
      h('p', {}, 'Recordings you delete appear here, so you can restore them.')));
  }

  function problemBadge(rec) {
    const text = problemText(rec.problem);
    return text ? [h('span', { class: 'sep', 'aria-hidden': 'true' }, '·'), h('span', { class: 'problem', 'data-test': 'problem' }, text)] : [];
  }

  function renderItem(rec) {
    const li = h('li', { class: 'rec trash-item', 'data-test': 'trash-item', 'data-id': rec.id },
      h('span', { class: 'trash-icon' }, icon('wave')),
      h('div', { class: 'rec-main' }, h('span', { class: 'rec-name', 'data-test': 'name', title: rec.name }, rec.name)),
      h('div', { class: 'rec-meta' },
        h('time', { datetime: rec.deleted_at, title: `Deleted ${formatLongDate(rec.deleted_at)}` }, `Deleted ${formatDate(rec.deleted_at)}`),
        h('span', { class: 'sep', 'aria-hidden': 'true' }, '·'),
        h('span', {}, formatSize(rec.size)),
        ...problemBadge(rec)),
      h('span', { class: 'days-left', 'data-test': 'days-left', title: rec.purge_at ? formatLongDate(rec.purge_at) : '' },
        rec.purge_at ? daysLeft(rec.purge_at) : ''),
      h('div', { class: 'rec-actions' },
        h('button', { type: 'button', class: 'btn small', 'data-test': 'restore', 'aria-label': `Restore ${rec.name}` },
          icon('restore'), h('span', { class: 'label' }, 'Restore')),
        h('button', { type: 'button', class: 'icon-btn danger', 'data-test': 'purge', 'aria-label': `Delete ${rec.name} forever`, title: 'Delete forever' },
          icon('trash'))));
    items.set(rec.id, { rec, li });
    return li;
  }

  function removeItem(li, focusTest) {
    const next = li.nextElementSibling || li.previousElementSibling;
    items.delete(li.dataset.id);
    li.remove();
    renderState();
    (next?.querySelector(`[data-test=${focusTest}]`) || document.querySelector('[data-test=nav-trash]'))?.focus();
  }

  async function restore(li, rec) {
    li.classList.add('busy');
    try {
      await api('POST', `/trash/${encodeURIComponent(rec.id)}/restore`);
      removeItem(li, 'restore');
      ctx.listChanged();
      ctx.refreshUsage();
      toast(`Restored “${rec.name}”`);
    } catch (e) {
      li.classList.remove('busy');
      if (e.status === 404) removeItem(li, 'restore');
      reportError(e);
    }
  }

  async function purge(li, rec) {
    const ok = await confirmDialog({
      title: 'Delete forever?',
      message: `“${rec.name}” will be deleted permanently. This cannot be undone.`,
      ok: 'Delete Forever',
    });
    if (!ok) return;
    li.classList.add('busy');
    try {
      await api('DELETE', `/trash/${encodeURIComponent(rec.id)}`);
      removeItem(li, 'purge');
      ctx.forgetPlayback(rec.id);
      ctx.refreshUsage();
    } catch (e) {
      li.classList.remove('busy');
      if (e.status === 404) removeItem(li, 'purge');
      reportError(e);
    }
  }

  async function emptyTrash() {
    const n = ctx.me?.usage?.trash_recordings ?? items.size;
    const ok = await confirmDialog({
      title: 'Empty Trash?',
      message: `${n > 0 ? plural(n, 'recording', 'recordings') : 'Everything in the Trash'} will be deleted permanently. This cannot be undone.`,
      ok: 'Empty Trash',
    });
    if (!ok) return;
    emptyBtn.disabled = true;
    try {
      const result = await api('DELETE', '/trash');
      for (const id of items.keys()) ctx.forgetPlayback(id);
      pager.clear();
      renderState();
      ctx.refreshUsage();
      toast(`Deleted ${plural(result?.purged ?? 0, 'recording', 'recordings')} forever`);
    } catch (e) {
      renderState();
      reportError(e);
    }
  }

  ul.addEventListener('click', (e) => {
    const button = e.target.closest('button');
    const li = e.target.closest('li[data-test=trash-item]');
    if (!button || !li || li.classList.contains('busy')) return;
    const entry = items.get(li.dataset.id);
    if (!entry) return;
    if (button.dataset.test === 'restore') restore(li, entry.rec);
    else if (button.dataset.test === 'purge') purge(li, entry.rec);
  });
  emptyBtn.addEventListener('click', emptyTrash);

  return {
    element: view,
    show() {
      renderNote();
      pager.reload();
    },
  };
}
