// The recordings view: search, infinite scroll, play, download, rename, share, delete with
// undo, bulk actions on a selection, and the live changes of the account.
import { api } from './api.js';
import { h, icon, setIcon, clear, metaPart } from './dom.js';
import { formatDate, formatDurationMs, formatLongDate, formatSize, plural, problemText } from './format.js';
import { createPager, pageParams, PAGE_SIZE } from './pager.js';
import { BATCH_MAX, createNotice, createSelection, runBatch } from './select.js';
import { confirmDialog, reportError, hideError, showError, toast } from './ui.js';
import { cachedWaveform, drawWaveform, onLookChange, restyle, wantWaveform, watchAnalysis } from './waveform.js';

/** Folds case and accents, as the server's search does. */
function fold(text) {
  return text.normalize('NFD').replace(/\p{M}/gu, '').toLocaleLowerCase();
}

/**
 * The snippet as text, with the words that the search's words start marked (<mark>, made
 * here: the snippet itself is never parsed as HTML).
 */
function highlight(snippet, query) {
  const wanted = fold(query).split(/[^\p{L}\p{N}]+/u).filter(Boolean);
  if (!wanted.length) return snippet;
  return snippet.split(/([\p{L}\p{N}]+)/u).map((part, i) => {
    if (i % 2 === 0 || !wanted.some((w) => fold(part).startsWith(w))) return part;
    return h('mark', {}, part);
  });
}

export function createList(ctx) {
  const { player } = ctx;
  const ul = h('ul', { class: 'rec-list', 'data-test': 'recordings', 'data-loaded': '0', 'aria-label': 'Recordings' });
  const sentinel = h('div', { class: 'sentinel', 'aria-hidden': 'true' });
  const stateBox = h('div', { class: 'list-state' });
  const summary = h('p', { class: 'view-subtitle', 'data-test': 'summary' });
  const title = h('h1', { class: 'view-title' }, 'All Recordings');
  const items = new Map(); // id → { rec, li }
  const selection = createSelection({
    ul, items, label: 'Selected recordings',
    actions: [
      { label: 'Download as ZIP', test: 'bulk-download', icon: 'download', run: downloadArchive },
      { label: 'Move to Trash', test: 'bulk-trash', className: 'danger-outline', icon: 'trash', run: trashMany },
    ],
  });
  const notice = createNotice();
  const view = h('section', { class: 'view', 'data-test': 'list-view', 'aria-labelledby': 'recordings-title' },
    h('div', { class: 'view-head' }, h('div', {}, title, summary), selection.toggle),
    selection.bar, notice.element,
    ul, stateBox, sentinel);
  title.id = 'recordings-title';

  let query = '';
  let dirty = true;
  let failed = false;
  // The first live stream opened while a load was under way or done: look again once it is over.
  let catchUpAfterLoad = false;

  // ---------- loading ----------

  const pager = createPager({
    ctx, ul, sentinel, view, items, skeletons: 6, abortable: true,
    path: (cursor) => `/recordings?${pageParams(cursor, { q: query })}`,
    render: renderItem,
    offline: { key: `recorder.list.${ctx.me.user.id}`, use: () => !query },
    onOffline() {
      failed = false;
      ctx.setOffline?.(true);
    },
    renderState,
    onStart(reset) {
      if (reset) ul.classList.add('refreshing');
      else stateBox.replaceChildren(h('div', { class: 'loading-more' }, h('span', { class: 'spinner' }), 'Loading…'));
    },
    onLoaded() {
      failed = false;
      ctx.setOffline?.(false);
      dirty = false;
      sweepWaves();
    },
    onFailed() {
      failed = items.size === 0;
    },
    onSettled() {
      ul.classList.remove('refreshing');
      if (catchUpAfterLoad) {
        catchUpAfterLoad = false;
        requestAnimationFrame(catchUp);
      }
    },
  });

  // ---------- empty / no results ----------

  function renderState() {
    renderSummary();
    clear(stateBox);
    selection.sync();
    selection.toggle.disabled = items.size === 0 && !selection.active;
    if (items.size > 0 || pager.loading) return;
    if (failed) {
      stateBox.append(h('div', { class: 'empty small' },
        h('p', { class: 'empty-title' }, 'Could not load your recordings'),
        h('button', { type: 'button', class: 'btn', onclick: () => pager.reload() }, 'Try again')));
      return;
    }
    if (query) {
      stateBox.append(h('div', { class: 'empty small', 'data-test': 'no-results' },
        h('p', { class: 'empty-title' }, 'No results'),
        h('p', {}, `No recording has “${query}” in its name or in what was said.`)));
    } else {
      stateBox.append(emptyState());
    }
  }

  /** A new account's list: the two things a person does next. */
  function emptyState() {
    const secure = window.isSecureContext;
    const httpsUrl = ctx.server?.https?.url;
    const recordHere = secure
      ? h('p', {}, 'Press ', h('strong', {}, 'Record'), ' to record on this device. It works without a connection too: the recording waits here until the server has it.')
      : h('p', {}, 'To record on this phone or computer, open the secure address',
        httpsUrl ? [' ', h('a', { href: `${httpsUrl}/`, 'data-test': 'empty-secure-link' }, httpsUrl)] : '',
        '. The ', h('a', { href: '/setup' }, 'setup page'), ' shows how to make this device trust it, once.');
    return h('div', { class: 'empty', 'data-test': 'empty' },
      h('div', { class: 'empty-icon' }, icon('wave')),
      h('p', { class: 'empty-title' }, 'No recordings yet'),
      h('ol', { class: 'first-steps' },
        h('li', {}, h('strong', {}, 'Record here. '), recordHere),
        h('li', {}, h('strong', {}, 'Or pair a phone’s recorder app. '),
          'Make an app token on the ', h('a', { href: '#/account', 'data-test': 'empty-pair-link' }, 'Account page'),
          ' and scan its QR code with the app. You can also drop audio files on this page.')));
  }

  function renderSummary() {
    // While searching, the header counts what the search found (so far, while pages remain),
    // not every recording.
    if (query) {
      summary.textContent = pager.loading && items.size === 0
        ? 'Searching…'
        : `${pager.hasMore ? `${items.size}+` : items.size} ${items.size === 1 && !pager.hasMore ? 'match' : 'matches'}`;
      return;
    }
    const usage = ctx.me?.usage;
    summary.textContent = usage ? `${plural(usage.recordings, 'recording', 'recordings')} · ${formatSize(usage.bytes)}` : '';
  }

  // ---------- small waveforms ----------

  // Each row draws its recording's waveform once it comes near the screen: requests go a few at
  // a time (waveform.js), and a row scrolled past before its turn costs none. A pending row
  // watches its analysis while it is on screen. Rows far from the screen give their canvas's
  // pixels back, so a list scrolled through thousands of recordings holds a screenful of them.
  const waves = new Set(); // entries of rows with a waveform, to let go of once their row is gone
  const nearScreen = new IntersectionObserver((seen) => {
    for (const e of seen) {
      const entry = items.get(e.target.closest('li')?.dataset.id);
      if (!entry || entry.waveEl !== e.target) continue;
      entry.visible = e.isIntersecting && e.target.isConnected;
      if (entry.visible) {
        drawRowWave(entry);
        followWave(entry);
      } else {
        leaveWave(entry);
        entry.canvas.width = 0;
        entry.canvas.height = 0;
      }
    }
  }, { rootMargin: '200px 0px' });
  const resized = new ResizeObserver((seen) => {
    for (const e of seen) {
      const entry = items.get(e.target.closest('li')?.dataset.id);
      if (entry && entry.waveEl === e.target) drawRowWave(entry);
    }
  });
  onLookChange((scheme) => {
    for (const entry of waves) {
      if (scheme) restyle(entry.canvas);
      drawRowWave(entry);
    }
  });

  function waveStateOf(rec, wave) {
    if (rec.waveform === 'ready') return wave ? 'ready' : 'loading';
    return rec.waveform === 'pending' ? 'pending' : 'failed';
  }

  function renderWave(entry) {
    const state = waveStateOf(entry.rec, entry.wave);
    const el = entry.waveEl;
    el.dataset.state = state;
    entry.waveStatus.textContent = state === 'pending' ? 'Analysing…' : '';
    if (state === 'failed') el.title = 'No waveform for this recording';
    else el.removeAttribute('title');
    drawRowWave(entry);
  }

  function drawRowWave(entry) {
    if (!entry.visible) return;
    const state = entry.waveEl.dataset.state;
    drawWaveform(entry.canvas, {
      wave: state === 'ready' ? entry.wave : null,
      seconds: entry.rec.duration_ms > 0 ? entry.rec.duration_ms / 1000 : 0,
      flat: state === 'failed',
    });
  }

  function followWave(entry) {
    if (entry.stop) return;
    const { rec } = entry;
    let answered = false;
    let stop = null;
    if (rec.waveform === 'ready' && !entry.wave) {
      stop = wantWaveform(rec.id, (wave) => {
        answered = true;
        entry.stop = null;
        if (entry.rec.waveform !== 'ready') return;
        entry.wave = wave;
        if (!wave) entry.rec = { ...entry.rec, waveform: 'failed' }; // could not be had: say nothing
        renderWave(entry);
      });
    } else if (rec.waveform === 'pending') {
      stop = watchAnalysis(rec.id, (fresh) => {
        answered = true;
        entry.stop = null;
        analysed(fresh);
      });
    }
    if (!answered) entry.stop = stop;
  }

  function leaveWave(entry) {
    entry.stop?.();
    entry.stop = null;
  }

  /** Lets go of the rows that are no longer in the list. */
  function sweepWaves() {
    for (const entry of waves) {
      if (entry.li.isConnected) continue;
      leaveWave(entry);
      nearScreen.unobserve(entry.waveEl);
      resized.unobserve(entry.waveEl);
      waves.delete(entry);
    }
  }

  /** A pending analysis ended: the row (and the player, if it has it) show the news. */
  function analysed(rec) {
    if (items.get(rec.id)?.li.isConnected) updateItem(rec);
    player.update(rec);
  }

  // ---------- one item ----------

  function renderItem(rec) {
    const date = rec.recorded_at || rec.created_at;
    const playBtn = h('button', { type: 'button', class: 'play-btn', 'data-test': 'play', 'aria-label': `Play ${rec.name}` }, icon('play'));
    const nameEl = h('span', { class: 'rec-name', 'data-test': 'name', title: rec.name }, rec.name);
    const canvas = h('canvas', { 'aria-hidden': 'true' });
    const waveStatus = h('span', { class: 'visually-hidden' });
    const waveEl = h('div', { class: 'rec-wave', 'data-test': 'row-waveform' }, canvas, waveStatus);
    const spoken = rec.match?.field === 'transcript' ? rec.match : null;
    const li = h('li', { class: spoken ? 'rec with-wave with-match' : 'rec with-wave', 'data-test': 'recording', 'data-id': rec.id },
      selection.rowCheck(rec),
      playBtn,
      h('div', { class: 'rec-main' }, nameEl),
      h('div', { class: 'rec-meta' },
        h('time', { 'data-test': 'date', datetime: date, title: formatLongDate(date) }, formatDate(date)),
        metaPart(h('span', { 'data-test': 'size' }, formatSize(rec.size))),
        problemText(rec.problem) && metaPart(h('span', { class: 'problem', 'data-test': 'problem' }, problemText(rec.problem)))),
      waveEl,
      spoken && renderMatch(rec, spoken),
      h('span', { class: 'rec-duration', 'data-test': 'duration' }, formatDurationMs(rec.duration_ms)),
      h('div', { class: 'rec-actions' },
        h('a', {
          class: 'icon-btn', 'data-test': 'download', href: `/api/v1/recordings/${encodeURIComponent(rec.id)}/audio?download=1`,
          download: rec.name, 'aria-label': `Download ${rec.name}`, title: 'Download',
        }, icon('download')),
        h('button', { type: 'button', class: 'icon-btn', 'data-test': 'share', 'aria-label': `Share ${rec.name}`, title: 'Share…' }, icon('share')),
        h('button', { type: 'button', class: 'icon-btn', 'data-test': 'rename', 'aria-label': `Rename ${rec.name}`, title: 'Rename' }, icon('rename')),
        h('button', { type: 'button', class: 'icon-btn danger', 'data-test': 'delete', 'aria-label': `Delete ${rec.name}`, title: 'Delete' }, icon('trash'))));
    const entry = { rec, li, canvas, waveEl, waveStatus, wave: rec.waveform === 'ready' ? cachedWaveform(rec.id) : null, stop: null, visible: false };
    items.set(rec.id, entry);
    waves.add(entry);
    renderWave(entry);
    nearScreen.observe(waveEl);
    resized.observe(waveEl);
    syncPlaying(li, rec.id);
    // A fresh page may bring news of the recording in the player (its analysis ended).
    if (player.currentId() === rec.id) player.update(rec);
    return li;
  }

  /** Where a search found the words: the words around them, and a button to hear them. */
  function renderMatch(rec, match) {
    const at = formatDurationMs(match.start_ms ?? 0);
    return h('div', { class: 'rec-match', 'data-test': 'match' },
      h('p', { class: 'rec-snippet', 'data-test': 'snippet' },
        h('span', { class: 'visually-hidden' }, 'Said: '), highlight(match.snippet, query)),
      h('button', {
        type: 'button', class: 'jump-btn', 'data-test': 'jump', 'data-start-ms': match.start_ms ?? 0,
        'aria-label': `Jump to ${at} in ${rec.name}`,
      }, icon('play'), `Jump to ${at}`));
  }

  function updateItem(rec) {
    const entry = items.get(rec.id);
    if (!entry) return;
    // A live change has no `match`: the row keeps where the search found it.
    if (!rec.match && entry.rec.match) rec = { ...rec, match: entry.rec.match };
    const waveChanged = entry.rec.waveform !== rec.waveform;
    entry.rec = rec;
    const { li } = entry;
    li.querySelector('[data-test=duration]').textContent = formatDurationMs(rec.duration_ms);
    if (waveChanged) {
      leaveWave(entry);
      entry.wave = rec.waveform === 'ready' ? cachedWaveform(rec.id) : null;
      renderWave(entry);
      if (entry.visible) followWave(entry);
    }
    const name = li.querySelector('[data-test=name]');
    name.textContent = rec.name;
    name.title = rec.name;
    li.querySelector('[data-test=play]').setAttribute('aria-label', `${isPlaying(rec.id) ? 'Pause' : 'Play'} ${rec.name}`);
    li.querySelector('[data-test=download]').setAttribute('download', rec.name);
    li.querySelector('[data-test=download]').setAttribute('aria-label', `Download ${rec.name}`);
    li.querySelector('[data-test=share]').setAttribute('aria-label', `Share ${rec.name}`);
    li.querySelector('[data-test=rename]').setAttribute('aria-label', `Rename ${rec.name}`);
    li.querySelector('[data-test=delete]').setAttribute('aria-label', `Delete ${rec.name}`);
    selection.renamed(li, rec.name);
    ctx.shareDialog.update(rec);
  }

  const isPlaying = (id) => player.currentId() === id && player.isPlaying();

  function syncPlaying(li, id) {
    const entry = items.get(id);
    const playing = isPlaying(id);
    li.classList.toggle('current', player.currentId() === id);
    li.classList.toggle('playing', playing);
    const btn = li.querySelector('[data-test=play]');
    setIcon(btn, playing ? 'pause' : 'play');
    btn.setAttribute('aria-label', `${playing ? 'Pause' : 'Play'} ${entry.rec.name}`);
    btn.setAttribute('aria-pressed', String(playing));
  }

  player.onChange(() => {
    for (const [id, { li }] of items) syncPlaying(li, id);
  });

  /** Inserts in id order (ids are time-ordered): newest first, as the server lists them. */
  function insertSorted(rec) {
    if (items.has(rec.id)) return items.get(rec.id).li;
    for (const li of ul.querySelectorAll(':scope > li[data-test=recording]')) {
      if (li.dataset.id < rec.id) {
        const fresh = renderItem(rec);
        ul.insertBefore(fresh, li);
        return fresh;
      }
    }
    if (pager.hasMore) return null; // older than everything loaded: it comes with a later page
    const fresh = renderItem(rec);
    ul.append(fresh);
    return fresh;
  }

  function removeItem(id) {
    const entry = items.get(id);
    if (!entry) return;
    // Focus inside a row that goes away moves to the same control of a neighbour.
    if (entry.li.contains(document.activeElement)) {
      const test = document.activeElement.dataset.test;
      focusNeighbour(entry.li, test && test !== 'rename-input' ? test : 'play');
    }
    items.delete(id);
    entry.li.remove();
    ctx.shareDialog.forget(id);
    sweepWaves();
    renderState();
  }

  /** Where focus goes when an item disappears: the same action on a neighbour. */
  function focusNeighbour(li, testName) {
    const next = li.nextElementSibling || li.previousElementSibling;
    const target = next?.querySelector(`[data-test=${testName}]`) || ctx.searchInput;
    target?.focus();
  }

  // ---------- rename ----------

  function startRename(li) {
    if (li.classList.contains('renaming')) return;
    const entry = items.get(li.dataset.id);
    const nameEl = li.querySelector('[data-test=name]');
    const input = h('input', {
      type: 'text', class: 'rename-input', 'data-test': 'rename-input', value: entry.rec.name,
      'aria-label': 'New name', maxlength: '255', autocomplete: 'off', spellcheck: 'false', enterkeyhint: 'done',
    });
    li.classList.add('renaming');
    nameEl.hidden = true;
    nameEl.after(input);
    input.focus();
    // Select the name without its extension, as file managers do.
    const dot = entry.rec.name.lastIndexOf('.');
    input.setSelectionRange(0, dot > 0 ? dot : entry.rec.name.length);

    let busy = false;
    let done = false;
    const finish = (focusButton) => {
      done = true;
      input.remove();
      nameEl.hidden = false;
      li.classList.remove('renaming');
      if (focusButton) li.querySelector('[data-test=rename]').focus();
    };
    const commit = async (fromBlur) => {
      if (busy || done) return;
      const current = items.get(li.dataset.id)?.rec;
      if (!current) return finish(false);
      if (input.value === current.name) return finish(!fromBlur);
      busy = true;
      input.setAttribute('aria-busy', 'true');
      try {
        const rec = await api('PATCH', `/recordings/${encodeURIComponent(current.id)}`, { name: input.value });
        hideError();
        updateItem(rec);
        player.update(rec);
        finish(!fromBlur);
      } catch (e) {
        reportError(e);
        if (fromBlur) {
          finish(false);
        } else {
          input.setAttribute('aria-invalid', 'true');
          input.focus();
        }
      } finally {
        busy = false;
        input.removeAttribute('aria-busy');
      }
    };
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        commit(false);
      } else if (e.key === 'Escape') {
        e.preventDefault();
        e.stopPropagation();
        if (!busy) {
          if (input.getAttribute('aria-invalid')) hideError();
          finish(true);
        }
      }
    });
    input.addEventListener('input', () => input.removeAttribute('aria-invalid'));
    input.addEventListener('blur', () => {
      if (!busy && !done) commit(true);
    });
  }

  // ---------- delete / undo ----------

  async function remove(li) {
    const entry = items.get(li.dataset.id);
    if (!entry) return;
    const { rec } = entry;
    const permanent = ctx.server.trash_retention_days === 0;
    if (permanent) {
      const ok = await confirmDialog({
        title: 'Delete permanently?',
        message: `“${rec.name}” will be deleted permanently. This server keeps no trash, so this cannot be undone.`,
        ok: 'Delete',
      });
      if (!ok) return;
    }
    li.classList.add('busy');
    const settled = ctx.markLocal([rec.id]);
    try {
      await api('DELETE', `/recordings/${encodeURIComponent(rec.id)}`);
    } catch (e) {
      li.classList.remove('busy');
      if (e.status === 404) removeItem(rec.id);
      reportError(e);
      return;
    } finally {
      settled();
    }
    focusNeighbour(li, 'delete');
    removeItem(rec.id);
    if (permanent && player.currentId() === rec.id) player.clear();
    ctx.refreshUsage();
    if (permanent) {
      toast(`Deleted permanently: “${rec.name}”`);
    } else {
      toast(`“${rec.name}” moved to Trash`, { action: 'Undo', onAction: () => undo(rec) });
    }
  }

  async function undo(rec) {
    const settled = ctx.markLocal([rec.id]);
    try {
      const restored = await api('POST', `/trash/${encodeURIComponent(rec.id)}/restore`);
      const li = matches(restored) ? insertSorted(restored) : null;
      renderState();
      li?.querySelector('[data-test=play]')?.focus();
      li?.classList.add('flash');
      ctx.refreshUsage();
    } catch (e) {
      reportError(e);
    } finally {
      settled();
    }
  }

  // ---------- bulk actions ----------

  const nameOf = (id) => items.get(id)?.rec.name ?? id;

  /** Moves the selected recordings to the Trash (deleted for good on a server without one). */
  async function trashMany(ids) {
    const permanent = ctx.server.trash_retention_days === 0;
    if (permanent) {
      const ok = await confirmDialog({
        title: `Delete ${plural(ids.length, 'recording', 'recordings')} permanently?`,
        message: 'This server keeps no trash, so this cannot be undone.',
        ok: 'Delete',
      });
      if (!ok) return;
    }
    notice.hide();
    const names = new Map(ids.map((id) => [id, nameOf(id)]));
    for (const id of ids) items.get(id)?.li.classList.add('busy');
    const settled = ctx.markLocal(ids);
    const result = await runBatch('trash', ids);
    settled();
    for (const id of ids) items.get(id)?.li.classList.remove('busy');
    // Gone from the list either way: done, or no longer one of this account's recordings.
    for (const id of [...result.done, ...result.failed]) removeItem(id);
    if (permanent) for (const id of result.done) ctx.forgetPlayback(id);
    selection.done();
    ctx.refreshUsage();
    reportBatch(result, names, {
      did: (n) => (permanent ? `Deleted ${n} permanently.` : `Moved ${n} to the Trash.`),
      failedWhy: 'These were no longer in your list, so nothing was done to them:',
    });
    if (result.done.length && !permanent && !result.failed.length && !result.error) {
      const done = result.done;
      toast(`${plural(done.length, 'recording', 'recordings')} moved to Trash`, {
        action: 'Undo', onAction: () => restoreMany(done, names),
      });
    }
  }

  async function restoreMany(ids, names) {
    const settled = ctx.markLocal(ids);
    const result = await runBatch('restore', ids);
    settled();
    if (result.done.length) {
      dirty = true;
      pager.reload();
      ctx.refreshUsage();
    }
    reportBatch(result, names, {
      did: (n) => `Restored ${n}.`,
      failedWhy: 'These were no longer in the Trash:',
    });
  }

  /**
   * Reports what a bulk action could not do, calmly: a notice naming the recordings that were
   * not there any more, and the error of a request that failed (the list is then loaded again).
   */
  function reportBatch(result, names, { did, failedWhy }) {
    const { done, failed, error, unknown } = result;
    if (error) {
      reportError(error);
      if (unknown.length) {
        dirty = true;
        pager.reload();
      }
    }
    if (!failed.length) return;
    const n = plural(done.length, 'recording', 'recordings');
    notice.show(`${done.length ? did(n) : 'Nothing was done.'} ${failedWhy}`,
      failed.map((id) => `“${names.get(id) ?? id}”`));
  }

  /** Downloads the selected recordings as one ZIP (streamed by the server). */
  function downloadArchive(ids) {
    if (ids.length > BATCH_MAX) {
      showError(`A ZIP can hold up to ${BATCH_MAX} recordings at once; ${ids.length} are selected.`);
      return;
    }
    // Newest first, as listed.
    const ordered = [...items.keys()].filter((id) => ids.includes(id));
    const url = `/api/v1/recordings/archive?ids=${ordered.map(encodeURIComponent).join(',')}`;
    // A link with `download`: the browser saves the answer, and an error never replaces the page.
    const a = h('a', { href: url, download: 'recordings.zip', hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    toast(`Downloading ${plural(ordered.length, 'recording', 'recordings')} as a ZIP`);
  }

  // ---------- live changes ----------

  /** A change from the live stream. `local`: this page made it, and its own code shows it. */
  function applyChange({ type, id, recording: rec }, local) {
    if (type === 'trashed' || type === 'deleted') {
      if (!local) removeItem(id);
      return;
    }
    if (!rec) return;
    const live = !rec.deleted_at;
    if (items.has(id)) {
      // A row stays when a rename leaves it outside the search, as when renamed here.
      if (live) updateItem(rec);
      else removeItem(id);
      return;
    }
    // New here: an upload (from anywhere), a restore, or a rename that now matches the search.
    if (local || !live || !matches(rec)) return;
    const li = insertSorted(rec);
    if (li && type !== 'updated') li.classList.add('flash');
    renderState();
  }

  /**
   * Looks at the first page again and brings the rows in step with it (new ones in, gone ones
   * out, the rest refreshed), without a reload: what changed before the live stream opened.
   */
  async function catchUp() {
    if (pager.loading) {
      catchUpAfterLoad = true;
      return;
    }
    const q = query;
    let page;
    try {
      page = await api('GET', `/recordings?${pageParams(null, { q })}`);
    } catch {
      return; // the next change or reload will do
    }
    if (q !== query || pager.loading) return;
    const fresh = new Map(page.recordings.map((r) => [r.id, r]));
    const oldest = page.next_cursor ? page.recordings.at(-1)?.id : '';
    for (const id of [...items.keys()]) {
      if (id >= oldest && !fresh.has(id)) removeItem(id);
    }
    for (const rec of page.recordings) {
      if (items.has(rec.id)) updateItem(rec);
      else insertSorted(rec);
    }
    renderState();
  }

  // ---------- events ----------

  ul.addEventListener('click', (e) => {
    const button = e.target.closest('button');
    const li = e.target.closest('li[data-test=recording]');
    if (!button || !li || li.classList.contains('busy')) return;
    const entry = items.get(li.dataset.id);
    if (!entry) return;
    switch (button.dataset.test) {
      case 'play': player.play(entry.rec); break;
      case 'jump': player.playAt(entry.rec, (entry.rec.match?.start_ms ?? 0) / 1000, { showTranscript: true }); break;
      case 'share': ctx.shareDialog.open(entry.rec); break;
      case 'rename': startRename(li); break;
      case 'delete': remove(li); break;
    }
  });
  // Double-click on a name renames (the rename button does the same for keyboards and touch).
  ul.addEventListener('dblclick', (e) => {
    const name = e.target.closest('[data-test=name]');
    if (name) startRename(name.closest('li'));
  });

  const matches = (rec) => !query || rec.name.toLocaleLowerCase().includes(query.toLocaleLowerCase());

  return {
    element: view,
    show() {
      renderSummary();
      if (dirty) pager.reload();
      else requestAnimationFrame(pager.more);
    },
    /** The search box changed: flag the list as loading now, fetch after the debounce. */
    searchPending() {
      ul.dataset.loaded = '0';
    },
    search(q) {
      query = q;
      pager.reload();
    },
    /** A recording was uploaded: show it at the top if it matches the search. */
    added(rec) {
      if (!matches(rec)) return;
      insertSorted(rec)?.classList.add('flash');
      renderState();
    },
    /** Something outside this view changed the list (a restore from the trash). */
    invalidate() {
      dirty = true;
    },
    applyChange,
    /** The live stream opened for the first time: anything missed before it, looked up. */
    catchUp() {
      if (pager.loading || !dirty) catchUp();
    },
    /**
     * Changes may have been missed (a new stream): a list of one page catches up in place;
     * a longer one loads again, now or when next shown.
     */
    resync() {
      if (view.hidden) {
        dirty = true;
        return;
      }
      if (items.size <= PAGE_SIZE) catchUp();
      else pager.reload();
    },
    usageChanged: renderSummary,
  };
}
