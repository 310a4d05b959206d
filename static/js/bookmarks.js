// Bookmarks in the player: ticks on the waveform (a press on one seeks there), and a panel that
// lists them with their notes: add one at the playhead, name it, jump to it, delete it. Marks
// made while recording arrive as bookmarks.
import { api } from './api.js';
import { h, icon } from './dom.js';
import { formatDuration } from './format.js';
import { reportError } from './ui.js';

const at = (b) => formatDuration(b.at_ms / 1000);

export function createBookmarks({ seek, position, duration }) {
  const ticks = h('div', { class: 'bookmark-ticks', 'aria-hidden': 'true' });
  const count = h('span', { class: 'bookmark-count' });
  const toggle = h('button', {
    type: 'button', class: 'icon-btn bookmarks-toggle', 'data-test': 'bookmarks-toggle', 'aria-expanded': 'false',
    'aria-controls': 'player-bookmarks', 'aria-label': 'Bookmarks', title: 'Bookmarks',
  }, icon('bookmark'), count);
  const add = h('button', { type: 'button', class: 'btn small', 'data-test': 'bookmark-add' }, 'Add Bookmark');
  const list = h('ol', { class: 'bookmark-list', 'data-test': 'bookmark-list' });
  const empty = h('p', { class: 'muted bookmark-empty' }, 'No bookmarks yet. Add one at the playhead, or press Mark while recording.');
  const panel = h('section', { class: 'bookmarks', id: 'player-bookmarks', 'data-test': 'bookmarks', 'aria-label': 'Bookmarks', hidden: true },
    h('div', { class: 'bookmarks-inner' },
      h('div', { class: 'bookmarks-head' }, h('h2', { class: 'bookmarks-title' }, 'Bookmarks'), add),
      list, empty));

  let rec = null;
  let items = [];
  let loadedFor = null;
  let controller = null;

  const base = () => `/recordings/${encodeURIComponent(rec.id)}/bookmarks`;

  function drawTicks() {
    const d = duration();
    ticks.replaceChildren(...(d ? items : []).map((b) => {
      const tick = h('span', { class: 'bookmark-tick', 'data-test': 'bookmark-tick', title: b.note ? `${at(b)} · ${b.note}` : at(b) });
      tick.style.left = `${Math.min(100, (b.at_ms / 1000 / d) * 100)}%`;
      tick.addEventListener('pointerdown', (e) => {
        e.stopPropagation();
        e.preventDefault();
        seek(b.at_ms / 1000);
      });
      return tick;
    }));
  }

  function render() {
    count.textContent = items.length ? String(items.length) : '';
    toggle.setAttribute('aria-label', items.length ? `Bookmarks (${items.length})` : 'Bookmarks');
    empty.hidden = items.length > 0;
    list.replaceChildren(...items.map((b) => {
      const jump = h('button', { type: 'button', class: 'bookmark-time', 'data-test': 'bookmark-seek', 'aria-label': `Play from ${at(b)}` }, at(b));
      const note = h('input', {
        type: 'text', class: 'bookmark-note', 'data-test': 'bookmark-note', value: b.note, maxlength: '500',
        placeholder: 'Note', 'aria-label': `Note of the bookmark at ${at(b)}`,
      });
      const remove = h('button', { type: 'button', class: 'icon-btn small', 'data-test': 'bookmark-delete', 'aria-label': `Delete the bookmark at ${at(b)}` }, icon('close'));
      jump.addEventListener('click', () => seek(b.at_ms / 1000));
      const save = async () => {
        const text = note.value.trim();
        if (text === b.note) return;
        try {
          Object.assign(b, await api('PATCH', `${base()}/${encodeURIComponent(b.id)}`, { note: text }));
          note.value = b.note;
          drawTicks();
        } catch (e) {
          note.value = b.note;
          reportError(e);
        }
      };
      note.addEventListener('change', save);
      note.addEventListener('keydown', (e) => {
        if (e.key === 'Enter') note.blur();
        if (e.key === 'Escape') {
          note.value = b.note;
          note.blur();
        }
      });
      remove.addEventListener('click', async () => {
        try {
          await api('DELETE', `${base()}/${encodeURIComponent(b.id)}`);
          items = items.filter((x) => x.id !== b.id);
          loadedFor = { id: rec.id, count: items.length };
          render();
        } catch (e) {
          reportError(e);
        }
      });
      return h('li', { class: 'bookmark', 'data-test': 'bookmark', 'data-at': String(b.at_ms) }, jump, note, remove);
    }));
    drawTicks();
  }

  async function load() {
    if (!rec) return;
    controller?.abort();
    controller = new AbortController();
    const id = rec.id;
    try {
      const found = await api('GET', base(), undefined, { signal: controller.signal });
      if (rec?.id !== id) return;
      items = found.bookmarks;
      loadedFor = { id, count: items.length };
      render();
    } catch (e) {
      if (e.name !== 'AbortError' && e.status !== 404) reportError(e);
    }
  }

  add.addEventListener('click', async () => {
    if (!rec) return;
    const d = duration();
    const ms = Math.round(Math.min(position(), d || position()) * 1000);
    try {
      const made = await api('POST', base(), { at_ms: Math.max(0, ms) });
      items = [...items, made].sort((a, b) => a.at_ms - b.at_ms || a.id.localeCompare(b.id));
      loadedFor = { id: rec.id, count: items.length };
      render();
      list.querySelector(`li[data-at="${made.at_ms}"] input`)?.focus();
    } catch (e) {
      reportError(e);
    }
  });

  toggle.addEventListener('click', () => {
    const open = panel.hidden;
    panel.hidden = !open;
    toggle.setAttribute('aria-expanded', String(open));
    if (open) load();
  });

  return {
    ticks,
    toggle,
    panel,
    /** A recording came into the player. */
    show(recording) {
      rec = recording;
      items = [];
      loadedFor = null;
      render();
      if (rec.bookmarks > 0 || !panel.hidden) load();
    },
    /** A fresher copy of it: its bookmarks are looked at again when their count changed. */
    update(recording) {
      rec = recording;
      if (loadedFor?.id === rec.id && loadedFor.count === rec.bookmarks) return;
      if (rec.bookmarks > 0 || items.length) load();
    },
    clear() {
      controller?.abort();
      rec = null;
      items = [];
      loadedFor = null;
      render();
    },
    /** The duration is known or changed: the ticks move. */
    redraw: drawTicks,
  };
}
