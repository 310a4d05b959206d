// Choosing several rows of a list for a bulk action: a "Select" button turns on a checkbox per
// row (in place of its play button), a bar with "Select all on this page", the count, and the
// view's actions. Also the calm report of what a bulk action could not do.
import { api } from './api.js';
import { h, icon } from './dom.js';
import { plural } from './format.js';

/**
 * - `ul`, `items` (id → { rec, li }): the list and what it shows.
 * - `label`: the bar's accessible name.
 * - `actions`: `[{ label, test, className, icon, run(ids) }]`, the buttons of the bar; a
 *   button is disabled while nothing is selected, and while its action runs.
 */
export function createSelection({ ul, items, actions, label }) {
  const selected = new Set();
  let on = false;
  let busy = false;

  const toggle = h('button', { type: 'button', class: 'btn small select-toggle', 'data-test': 'select-mode' }, 'Select');
  const all = h('input', { type: 'checkbox', 'data-test': 'select-all' });
  const count = h('span', { class: 'bulk-count', 'data-test': 'selected-count', role: 'status' }, 'None selected');
  const buttons = actions.map((a) => {
    const b = h('button', { type: 'button', class: `btn small ${a.className || ''}`, 'data-test': a.test, disabled: true },
      a.icon ? icon(a.icon) : null, h('span', {}, a.label));
    b.addEventListener('click', async () => {
      if (!selected.size || busy) return;
      busy = true;
      sync();
      try {
        await a.run([...selected]);
      } finally {
        busy = false;
        sync();
      }
    });
    return b;
  });
  const bar = h('div', { class: 'bulk-bar', 'data-test': 'bulk-bar', role: 'group', 'aria-label': label, hidden: true },
    h('label', { class: 'check select-all' }, all, h('span', {}, 'Select all on this page')),
    count,
    h('div', { class: 'bulk-actions' }, buttons));

  function setMode(value) {
    on = value;
    if (!on) selected.clear();
    ul.classList.toggle('selecting', on);
    bar.hidden = !on;
    toggle.textContent = on ? 'Done' : 'Select';
    sync();
  }

  /** Brings the checkboxes, the count and the buttons in line with `selected`. */
  function sync() {
    for (const id of [...selected]) {
      if (!items.has(id)) selected.delete(id);
    }
    for (const [id, { li }] of items) {
      const box = li.querySelector('input[data-test=select]');
      if (box) box.checked = selected.has(id);
    }
    const n = selected.size;
    const text = n ? `${n} selected` : 'None selected';
    if (count.textContent !== text) count.textContent = text;
    all.checked = n > 0 && n === items.size;
    all.indeterminate = n > 0 && n < items.size;
    all.disabled = items.size === 0;
    for (const b of buttons) b.disabled = n === 0 || busy;
  }

  toggle.addEventListener('click', () => {
    setMode(!on);
    if (on) all.focus();
  });
  all.addEventListener('change', () => {
    if (all.checked) for (const id of items.keys()) selected.add(id);
    else selected.clear();
    sync();
  });
  ul.addEventListener('change', (e) => {
    const box = e.target.closest('input[data-test=select]');
    const id = box?.closest('li')?.dataset.id;
    if (!id || !items.has(id)) return;
    if (box.checked) selected.add(id);
    else selected.delete(id);
    sync();
  });
  // Escape leaves selecting.
  bar.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && on) {
      setMode(false);
      toggle.focus();
    }
  });

  return {
    toggle,
    bar,
    /** The checkbox of a row, labelled with its name. */
    rowCheck(rec) {
      return h('label', { class: 'rec-check' },
        h('input', { type: 'checkbox', 'data-test': 'select', checked: selected.has(rec.id) }),
        h('span', { class: 'visually-hidden', 'data-test': 'select-label' }, `Select ${rec.name}`));
    },
    /** A row's name changed. */
    renamed(li, name) {
      const text = li.querySelector('[data-test=select-label]');
      if (text) text.textContent = `Select ${name}`;
    },
    sync,
    /** Leaves selecting (after an action that is done with the selection). */
    done() {
      const hadFocus = bar.contains(document.activeElement) || !document.activeElement || document.activeElement === document.body;
      setMode(false);
      if (hadFocus) toggle.focus();
    },
    get active() {
      return on;
    },
  };
}

/**
 * A calm note of what a bulk action did and could not do, with a Dismiss button:
 * `notice.show(text, details)` (details: lines, e.g. the names that failed), `notice.hide()`.
 */
export function createNotice() {
  const text = h('p', { class: 'notice-text' });
  const list = h('ul', { class: 'notice-list' });
  const el = h('div', { class: 'notice', 'data-test': 'bulk-notice', role: 'status', hidden: true },
    h('div', { class: 'notice-body' }, text, list),
    h('button', { type: 'button', class: 'icon-btn small', 'aria-label': 'Dismiss', onclick: () => hide() }, icon('close')));
  function hide() {
    el.hidden = true;
    text.textContent = '';
    list.replaceChildren();
  }
  return {
    element: el,
    show(message, details = []) {
      text.textContent = message;
      const shown = details.slice(0, 5);
      list.replaceChildren(...shown.map((d) => h('li', {}, d)));
      if (details.length > shown.length) list.append(h('li', {}, `and ${plural(details.length - shown.length, 'more', 'more')}`));
      el.hidden = false;
    },
    hide,
  };
}

/** The ids of a batch in requests of at most this many (the server's limit). */
export const BATCH_MAX = 500;

/**
 * Runs a bulk action in requests of at most `BATCH_MAX` ids: `{ done, failed }` (ids answered
 * 204 and 404). A request that fails altogether stops there: `error` is its error and
 * `unknown` the ids whose fate is not known.
 */
export async function runBatch(action, ids) {
  const done = [];
  const failed = [];
  for (let i = 0; i < ids.length; i += BATCH_MAX) {
    const chunk = ids.slice(i, i + BATCH_MAX);
    try {
      const { results } = await api('POST', '/recordings/batch', { action, ids: chunk });
      for (const r of results) (r.status === 204 ? done : failed).push(r.id);
    } catch (error) {
      return { done, failed, error, unknown: ids.slice(i) };
    }
  }
  return { done, failed, error: null, unknown: [] };
}
