// The trash view: restore, delete forever, empty trash; several at once on a selection; kept
// in step with the account's live changes while it is shown.
import { api } from './api.js';
import { h, icon, clear, metaPart } from './dom.js';
import { daysLeft, formatDate, formatLongDate, formatSize, plural, problemText } from './format.js';
import { createPager, pageParams } from './pager.js';
import { createNotice, createSelection, runBatch } from './select.js';
import { confirmDialog, reportError, toast } from './ui.js';

export function createTrash(ctx) {
  const ul = h('ul', { class: 'rec-list trash-list', 'data-test': 'trash', 'aria-label': 'Trash', 'data-loaded': '0' });
  const sentinel = h('div', { class: 'sentinel', 'aria-hidden': 'true' });
  const stateBox = h('div', { class: 'list-state' });
  const note = h('p', { class: 'view-subtitle' });
  const emptyBtn = h('button', { type: 'button', class: 'btn danger-outline', 'data-test': 'empty-trash', disabled: true }, 'Empty Trash');
  const title = h('h1', { class: 'view-title', id: 'trash-title' }, 'Trash');
  const items = new Map();
  const selection = createSelection({
    ul, items, label: 'Selected recordings in the Trash',
    actions: [
      { label: 'Restore', test: 'bulk-restore', icon: 'restore', run: restoreMany },
      { label: 'Delete Forever', test: 'bulk-purge', className: 'danger-outline', icon: 'trash', run: purgeMany },
    ],
  });
  const notice = createNotice();
  const view = h('section', { class: 'view', 'data-test': 'trash-view', 'aria-labelledby': 'trash-title', hidden: true },
    h('div', { class: 'view-head' }, h('div', {}, title, note), h('div', { class: 'head-actions' }, selection.toggle, emptyBtn)),
    selection.bar, notice.element,
    ul, stateBox, sentinel);

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
    selection.sync();
    selection.toggle.disabled = items.size === 0 && !selection.active;
    if (items.size > 0 || pager.loading) return;
    stateBox.append(h('div', { class: 'empty', 'data-test': 'trash-empty' },
      h('div', { class: 'empty-icon' }, icon('trash')),
      h('p', { class: 'empty-title' }, 'Trash is empty'),
      h('p', {}, 'Recordings you delete appear here, so you can restore them.')));
  }

  function problemBadge(rec) {
    const text = problemText(rec.problem);
    return text ? [metaPart(h('span', { class: 'problem', 'data-test': 'problem' }, text))] : [];
  }

  function renderItem(rec) {
    const li = h('li', { class: 'rec trash-item', 'data-test': 'trash-item', 'data-id': rec.id },
      selection.rowCheck(rec),
      h('span', { class: 'trash-icon' }, icon('wave')),
      h('div', { class: 'rec-main' }, h('span', { class: 'rec-name', 'data-test': 'name', title: rec.name }, rec.name)),
      h('div', { class: 'rec-meta' },
        h('time', { datetime: rec.deleted_at, title: `Deleted ${formatLongDate(rec.deleted_at)}` }, `Deleted ${formatDate(rec.deleted_at)}`),
        metaPart(h('span', {}, formatSize(rec.size))),
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
    if (focusTest) (next?.querySelector(`[data-test=${focusTest}]`) || document.querySelector('[data-test=nav-trash]'))?.focus();
  }

  /** Takes a row away, keeping the focus in the list if it was in that row. */
  function dropRow(id) {
    const li = items.get(id)?.li;
    if (!li) return;
    const focused = li.contains(document.activeElement) ? document.activeElement.dataset.test || 'restore' : null;
    removeItem(li, focused === 'select' ? 'select' : focused ? 'restore' : null);
  }

  async function restore(li, rec) {
    li.classList.add('busy');
    const settled = ctx.markLocal([rec.id]);
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
    } finally {
      settled();
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
    const settled = ctx.markLocal([rec.id]);
    try {
      await api('DELETE', `/trash/${encodeURIComponent(rec.id)}`);
      removeItem(li, 'purge');
      ctx.forgetPlayback(rec.id);
      ctx.refreshUsage();
    } catch (e) {
      li.classList.remove('busy');
      if (e.status === 404) removeItem(li, 'purge');
      reportError(e);
    } finally {
      settled();
    }
  }

  // ---------- bulk actions ----------

  async function restoreMany(ids) {
    await many('restore', ids, {
      did: (n) => `Restored ${n}.`,
      failedWhy: 'These were no longer in the Trash:',
      toastText: (n) => `Restored ${n}`,
    });
    ctx.listChanged();
  }

  async function purgeMany(ids) {
    const ok = await confirmDialog({
      title: `Delete ${plural(ids.length, 'recording', 'recordings')} forever?`,
      message: 'They will be deleted permanently. This cannot be undone.',
      ok: 'Delete Forever',
    });
    if (!ok) return;
    await many('purge', ids, {
      did: (n) => `Deleted ${n} forever.`,
      failedWhy: 'These were already gone:',
      toastText: (n) => `Deleted ${n} forever`,
    });
    for (const id of ids) ctx.forgetPlayback(id);
  }

  async function many(action, ids, { did, failedWhy, toastText }) {
    notice.hide();
    const names = new Map(ids.map((id) => [id, items.get(id)?.rec.name ?? id]));
    for (const id of ids) items.get(id)?.li.classList.add('busy');
    const settled = ctx.markLocal(ids);
    const { done, failed, error, unknown } = await runBatch(action, ids);
    settled();
    for (const id of ids) items.get(id)?.li.classList.remove('busy');
    for (const id of [...done, ...failed]) dropRow(id);
    selection.done();
    ctx.refreshUsage();
    if (error) {
      reportError(error);
      if (unknown.length) pager.reload();
    }
    const n = plural(done.length, 'recording', 'recordings');
    if (failed.length) {
      notice.show(`${done.length ? did(n) : 'Nothing was done.'} ${failedWhy}`, failed.map((id) => `“${names.get(id)}”`));
    } else if (done.length) {
      toast(toastText(n));
    }
  }

  // ---------- live changes ----------

  /** A change from the live stream, while the Trash is shown (it loads afresh when shown). */
  function applyChange({ type, id, recording: rec }, local) {
    if (view.hidden || local) return;
    if (type === 'restored' || type === 'deleted') {
      dropRow(id);
    } else if (type === 'trashed' && rec?.deleted_at && !items.has(id)) {
      // Newest in the Trash: at the top.
      const li = renderItem(rec);
      ul.prepend(li);
      li.classList.add('flash');
      renderState();
    } else if (type === 'updated' && rec && items.has(id)) {
      if (!rec.deleted_at) {
        dropRow(id);
        return;
      }
      const old = items.get(id).li;
      const focused = old.contains(document.activeElement) ? document.activeElement.dataset.test : null;
      const li = renderItem(rec);
      old.replaceWith(li);
      if (focused) li.querySelector(`[data-test=${focused}]`)?.focus();
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
    const settled = ctx.markLocal([...items.keys()]);
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
    } finally {
      settled();
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
    applyChange,
    /** Changes may have been missed (a new stream): list again if shown. */
    resync() {
      if (!view.hidden) pager.reload();
    },
  };
}
