// The transcript of the recording in the player, in a panel above the bar: its segments with
// the one being played highlighted (a click plays from there), corrections made in place, the
// states of a transcript that is not there (off, being made, failed), and downloads as text or
// subtitles. Text is always text: segments are shown and edited as plain text, never as HTML.
import { api } from './api.js';
import { h, icon, clear } from './dom.js';
import { formatDuration } from './format.js';

/** Whether the panel is open, remembered by this browser. */
const OPEN_KEY = 'recorder.transcript-open';
/** After the user scrolls the transcript themselves, it follows playback again this much later. */
const HANDS_OFF_MS = 4000;
/** A segment holds at most this many characters (as the server checks). */
const MAX_CHARS = 2000;

const FORMATS = [
  { ext: 'txt', what: 'plain text' },
  { ext: 'srt', what: 'SubRip subtitles' },
  { ext: 'vtt', what: 'WebVTT subtitles' },
];

const reducedMotion = matchMedia('(prefers-reduced-motion: reduce)');
// Chromium sizes a text area to its text by CSS; elsewhere the script does.
const cssSizing = typeof CSS !== 'undefined' && CSS.supports?.('field-sizing', 'content');

/**
 * The index of the segment being played at `ms`: the last one that starts at or before it, as
 * long as it lasts (-1 in a gap, before the first and after the last).
 */
export function segmentAt(segments, ms) {
  let lo = 0;
  let hi = segments.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (segments[mid].start_ms <= ms) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found >= 0 && ms < segments[found].end_ms ? found : -1;
}

/** A message from the server as a sentence. */
function sentence(message) {
  const text = String(message || '').trim();
  return text ? text.charAt(0).toUpperCase() + text.slice(1) : '';
}

/** What a text area holds, as the server takes it: no control characters but line breaks. */
function cleanText(text) {
  return text.replace(/\r\n?/g, '\n').replace(/\p{Cc}/gu, (c) => (c === '\n' ? c : ' '));
}

const at = (ms) => formatDuration(ms / 1000);

// The server answered 409 `transcription_off` to a retry: no "Try again" for this page's life.
let retryOff = false;

/**
 * - `seek(seconds)`: plays the recording in the player from there.
 * - `duration()`: its length in seconds (0 when unknown).
 * - `changed(recording)`: a fresher copy of the recording, from an answer of the server.
 * - `resized()`: the panel opened, closed or changed its height.
 */
export function createTranscript({ seek, duration, changed, resized }) {
  let open = false;
  try {
    open = localStorage.getItem(OPEN_KEY) === '1';
  } catch {
    // storage blocked: closed
  }

  let rec = null;
  // loading | ready | off | pending | failed | error (anything else went wrong)
  let state = 'loading';
  let loadedFor = null; // the recording whose transcript is loaded, or loading
  let known = null; // its `transcript` state when it was loaded
  let data = null; // the transcript, once loaded
  let reason = ''; // why there is none, from the server
  let loading = null; // AbortController of the request under way
  let editing = null; // { draft, fields, saving, stale }
  let rows = []; // per segment shown: { li, btn }
  let current = -1; // the segment being played
  let tabStop = 0; // the segment the Tab key lands on
  let lastTime = 0;
  let handsOffUntil = 0;

  // ---------- the elements ----------

  const toggle = h('button', {
    type: 'button', class: 'icon-btn transcript-toggle', 'data-test': 'transcript-toggle',
    'aria-label': 'Transcript', title: 'Transcript', 'aria-expanded': String(open), 'aria-controls': 'player-transcript',
  }, icon('transcript'));
  const title = h('h2', { class: 'transcript-title', id: 'transcript-title' }, 'Transcript');
  const editedMark = h('span', { class: 'transcript-mark', 'data-test': 'transcript-edited', title: 'Corrected by hand', hidden: true }, 'Edited');
  const downloads = h('div', {
    class: 'transcript-downloads', 'data-test': 'transcript-downloads', role: 'group', 'aria-label': 'Download the transcript', hidden: true,
  },
    icon('download'),
    FORMATS.map((f) => h('a', {
      class: 'btn small ghost', 'data-test': `transcript-download-${f.ext}`, download: true,
      'aria-label': `Download transcript as .${f.ext}`, title: `Download as ${f.what}`,
    }, `.${f.ext}`)));
  const editBtn = h('button', { type: 'button', class: 'btn small', 'data-test': 'transcript-edit', 'aria-label': 'Edit transcript', hidden: true },
    icon('rename'), 'Edit');
  const saveBtn = h('button', { type: 'button', class: 'btn small primary', 'data-test': 'transcript-save', hidden: true }, 'Save');
  const cancelBtn = h('button', { type: 'button', class: 'btn small', 'data-test': 'transcript-cancel', hidden: true }, 'Cancel');
  const errorBox = h('div', { class: 'transcript-error', role: 'alert', 'data-test': 'transcript-error' });
  const body = h('div', { class: 'transcript-body', 'data-test': 'transcript-body' });
  // What happened (saved, queued), for screen readers.
  const said = h('p', { class: 'visually-hidden', role: 'status', 'data-test': 'transcript-said' });
  const panel = h('section', {
    class: 'transcript', id: 'player-transcript', 'data-test': 'transcript', 'data-state': 'loading',
    'aria-labelledby': 'transcript-title', hidden: !open,
  },
  h('div', { class: 'transcript-inner' },
    h('div', { class: 'transcript-head' },
      title, editedMark,
      h('div', { class: 'transcript-actions' }, downloads, editBtn, cancelBtn, saveBtn)),
    errorBox, body, said));

  const segments = () => data?.segments || [];
  const path = (id) => `/recordings/${encodeURIComponent(id)}/transcript`;

  function say(text) {
    said.textContent = '';
    // A fresh text node after a beat, so the same words are announced again.
    setTimeout(() => { said.textContent = text; }, 50);
  }

  function showError(message) {
    clear(errorBox).append(h('p', {}, sentence(message)));
  }

  function hideError() {
    clear(errorBox);
  }

  // ---------- loading ----------

  function abort() {
    loading?.abort();
    loading = null;
  }

  async function load() {
    abort();
    const id = rec.id;
    const ctl = new AbortController();
    loading = ctl;
    loadedFor = id;
    known = rec.transcript;
    state = 'loading';
    data = null;
    render();
    try {
      data = await api('GET', path(id), undefined, { signal: ctl.signal });
      state = 'ready';
      reason = '';
    } catch (e) {
      if (e.name === 'AbortError') return;
      data = null;
      reason = e.message;
      // 404: there is none, for the reason the recording's state gives (the message says more).
      state = e.status === 404 && ['off', 'pending', 'failed'].includes(rec.transcript) ? rec.transcript : 'error';
    } finally {
      if (loading === ctl) loading = null;
    }
    if (ctl.signal.aborted) return;
    tabStop = 0;
    render();
  }

  /**
   * Loads a ready transcript again (it changed elsewhere, maybe): shown anew only when it did
   * change, with the keyboard focus kept on the same segment.
   */
  async function refresh() {
    if (loading || editing || state !== 'ready' || !rec) return;
    const id = rec.id;
    const ctl = new AbortController();
    loading = ctl;
    let fresh;
    try {
      fresh = await api('GET', path(id), undefined, { signal: ctl.signal });
    } catch (e) {
      if (e.name === 'AbortError') return;
      if (loading === ctl) loading = null;
      if (e.status === 404 && rec?.id === id && !editing) load(); // gone: say why
      return;
    } finally {
      if (loading === ctl) loading = null;
    }
    if (rec?.id !== id || editing || state !== 'ready') return;
    const same = data && fresh.edited === data.edited && JSON.stringify(fresh.segments) === JSON.stringify(data.segments);
    data = fresh;
    if (same) return;
    const focused = body.contains(document.activeElement) ? document.activeElement.dataset.index : undefined;
    render();
    if (focused !== undefined && rows[Number(focused)]?.btn) {
      setTabStop(Number(focused));
      rows[Number(focused)].btn.focus({ preventScroll: true });
    }
  }

  // ---------- showing it ----------

  function render() {
    panel.dataset.state = editing ? 'editing' : state;
    const ready = state === 'ready' && !editing;
    editedMark.hidden = !(state === 'ready' && data?.edited);
    downloads.hidden = !ready;
    editBtn.hidden = !ready;
    saveBtn.hidden = !editing;
    cancelBtn.hidden = !editing;
    saveBtn.disabled = !!editing?.saving;
    cancelBtn.disabled = !!editing?.saving;
    saveBtn.textContent = editing?.saving ? 'Saving…' : 'Save';
    if (ready && rec) {
      for (const a of downloads.querySelectorAll('a')) {
        a.href = `/api/v1${path(rec.id)}?format=${a.dataset.test.split('-').pop()}`;
      }
    }
    clear(body);
    rows = [];
    current = -1;
    if (editing) renderEditor();
    else renderState();
    resized();
    follow(lastTime, true);
  }

  function note(text, test) {
    return h('p', { class: 'transcript-note', 'data-test': test || 'transcript-message', tabindex: '-1' }, text);
  }

  function renderState() {
    switch (state) {
      case 'loading':
        body.append(note('Loading the transcript…'));
        break;
      case 'off':
        body.append(
          note('Transcription is off on this server.'),
          h('p', { class: 'transcript-hint' }, 'You can write a transcript yourself: it follows the playback and search finds its words.'),
          h('div', { class: 'transcript-buttons' },
            h('button', { type: 'button', class: 'btn small', 'data-test': 'transcript-write', onclick: writeByHand }, icon('rename'), 'Write a transcript')));
        break;
      case 'pending':
        body.append(note('Transcribing…'), h('p', { class: 'transcript-hint' }, 'The transcript shows here as soon as it is ready.'));
        break;
      case 'failed':
        body.append(
          note(sentence(reason) || 'Transcribing this recording failed.'),
          h('div', { class: 'transcript-buttons' },
            !retryOff && h('button', { type: 'button', class: 'btn small', 'data-test': 'transcript-retry', onclick: retry }, icon('retry'), 'Try again'),
            h('button', { type: 'button', class: 'btn small ghost', 'data-test': 'transcript-write', onclick: writeByHand }, icon('rename'), 'Write it yourself')));
        break;
      case 'error':
        body.append(
          note(sentence(reason) || 'Could not load the transcript.'),
          h('div', { class: 'transcript-buttons' },
            h('button', { type: 'button', class: 'btn small', 'data-test': 'transcript-reload', onclick: () => load() }, icon('retry'), 'Try again')));
        break;
      case 'ready':
        renderSegments();
        break;
    }
  }

  function renderSegments() {
    if (rec?.transcript === 'pending') body.append(note('Transcribing again… This one shows until the new one is ready.'));
    const list = segments();
    if (!list.length) {
      body.append(note('The transcript is empty.'));
      return;
    }
    const ol = h('ol', { class: 'segments', 'data-test': 'transcript-segments', 'aria-label': 'Segments' });
    list.forEach((s, i) => {
      const text = s.text.trim();
      const btn = h('button', {
        type: 'button', class: 'segment', 'data-test': 'transcript-segment', 'data-index': i,
        'data-start-ms': s.start_ms, tabindex: i === tabStop ? '0' : '-1',
      },
      h('span', { class: 'segment-time' }, h('span', { class: 'visually-hidden' }, 'Play from '), at(s.start_ms)),
      h('span', { class: text ? 'segment-text' : 'segment-text empty' }, text || 'No words'));
      const li = h('li', {}, btn);
      rows.push({ li, btn });
      ol.append(li);
    });
    body.append(ol);
  }

  // ---------- following the playback ----------

  /** The playback is at `seconds`: highlights the segment there, and keeps it in sight. */
  function follow(seconds, instant = false) {
    lastTime = seconds;
    if ((state !== 'ready' && !editing) || !rows.length) return;
    const list = editing ? editing.draft : segments();
    const i = segmentAt(list, seconds * 1000);
    if (i === current) return;
    const old = rows[current];
    if (old) {
      old.li.classList.remove('current');
      old.btn?.removeAttribute('aria-current');
    }
    current = i;
    const row = rows[i];
    if (!row) return;
    row.li.classList.add('current');
    if (!row.btn) return; // editing: highlighted, never scrolled
    row.btn.setAttribute('aria-current', 'true');
    // The Tab key lands on the segment being played, unless the user is moving among them.
    if (!body.contains(document.activeElement)) setTabStop(i);
    reveal(row.li, instant);
  }

  /** Scrolls the panel (never the page) so `li` is in sight, unless the user scrolls it. */
  function reveal(li, instant) {
    if (panel.hidden || !li.isConnected || performance.now() < handsOffUntil) return;
    const box = body.getBoundingClientRect();
    const r = li.getBoundingClientRect();
    if (!box.height || (r.top >= box.top && r.bottom <= box.bottom)) return;
    // A third of the way down: what comes next is in sight too.
    const top = body.scrollTop + (r.top - box.top) - box.height / 3;
    body.scrollTo({ top: Math.max(0, top), behavior: instant || reducedMotion.matches ? 'auto' : 'smooth' });
  }

  for (const ev of ['wheel', 'touchmove']) {
    body.addEventListener(ev, () => { handsOffUntil = performance.now() + HANDS_OFF_MS; }, { passive: true });
  }

  function setTabStop(i) {
    if (!rows[i]?.btn || i === tabStop) return;
    rows[tabStop]?.btn?.setAttribute('tabindex', '-1');
    rows[i].btn.setAttribute('tabindex', '0');
    tabStop = i;
  }

  body.addEventListener('click', (e) => {
    const btn = e.target.closest('button.segment, button.segment-play');
    if (!btn) return;
    const i = Number(btn.closest('li').dataset.index ?? btn.dataset.index);
    const s = (editing ? editing.draft : segments())[i];
    if (!s) return;
    if (!editing) setTabStop(i);
    seek(s.start_ms / 1000);
  });

  // Arrow keys, Page Up and Down, Home and End move among the segments; Enter or Space plays.
  body.addEventListener('keydown', (e) => {
    const btn = e.target.closest?.('button.segment');
    if (!btn || e.altKey || e.ctrlKey || e.metaKey) return;
    const i = Number(btn.dataset.index);
    const last = rows.length - 1;
    const to = {
      ArrowDown: i + 1, ArrowUp: i - 1, ArrowRight: i + 1, ArrowLeft: i - 1,
      PageDown: i + 10, PageUp: i - 10, Home: 0, End: last,
    }[e.key];
    if (to === undefined) return;
    e.preventDefault();
    const next = Math.max(0, Math.min(last, to));
    setTabStop(next);
    rows[next].btn.focus({ preventScroll: true });
    rows[next].li.scrollIntoView({ block: 'nearest' });
    handsOffUntil = performance.now() + HANDS_OFF_MS;
  });

  // ---------- editing ----------

  function startEditing(draft) {
    hideError();
    editing = { draft: draft.map((s) => ({ ...s })), fields: [], saving: false, stale: false };
    render();
    const first = editing.fields[Math.max(0, segmentAt(editing.draft, lastTime * 1000))];
    first?.focus();
  }

  function writeByHand() {
    startEditing([{ start_ms: 0, end_ms: Math.max(0, Math.round(duration() * 1000)), text: '' }]);
  }

  function renderEditor() {
    const ol = h('ol', { class: 'segments editing', 'data-test': 'transcript-segments', 'aria-label': 'Segments' });
    editing.fields = editing.draft.map((s, i) => {
      const from = at(s.start_ms);
      const field = h('textarea', {
        class: 'segment-input', 'data-test': 'transcript-input', rows: '1', maxlength: String(MAX_CHARS),
        'aria-label': `Text from ${from} to ${at(s.end_ms)}`, spellcheck: 'true', value: s.text.trim(),
      });
      if (!cssSizing) field.addEventListener('input', () => fit(field));
      const li = h('li', { 'data-index': i },
        h('button', {
          type: 'button', class: 'segment-play', 'data-test': 'transcript-play-from', 'aria-label': `Play from ${from}`, title: `Play from ${from}`,
        }, from),
        field);
      rows.push({ li, btn: null });
      ol.append(li);
      return field;
    });
    body.append(ol, h('p', { class: 'transcript-hint' }, 'The times stay as they are. Ctrl+Enter saves.'));
    if (!cssSizing) requestAnimationFrame(() => editing?.fields.forEach(fit));
  }

  function fit(field) {
    field.style.height = 'auto';
    field.style.height = `${field.scrollHeight + 2}px`;
  }

  /** The draft as the user has it now: a field left alone keeps its text exactly. */
  function edited() {
    return editing.draft.map((s, i) => {
      const value = editing.fields[i]?.value ?? s.text;
      return { start_ms: s.start_ms, end_ms: s.end_ms, text: value === s.text.trim() ? s.text : cleanText(value) };
    });
  }

  function unsaved() {
    if (!editing) return false;
    return edited().some((s, i) => s.text !== editing.draft[i].text);
  }

  async function save() {
    if (!editing || editing.saving) return;
    const id = rec.id;
    const segs = edited();
    editing.saving = true;
    saveBtn.disabled = true;
    cancelBtn.disabled = true;
    saveBtn.textContent = 'Saving…';
    for (const f of editing.fields) f.readOnly = true;
    let saved;
    try {
      saved = await api('PUT', path(id), { segments: segs });
    } catch (e) {
      if (rec?.id !== id || !editing) return;
      editing.saving = false;
      saveBtn.disabled = false;
      cancelBtn.disabled = false;
      saveBtn.textContent = 'Save';
      for (const f of editing.fields) f.readOnly = false;
      showError(e.message);
      return;
    }
    if (rec?.id !== id) return;
    editing = null;
    hideError();
    data = saved;
    state = 'ready';
    loadedFor = id;
    known = 'ready';
    render();
    editBtn.focus();
    say('Transcript saved.');
    if (rec.transcript !== 'ready') {
      rec = { ...rec, transcript: 'ready' };
      changed(rec);
    }
  }

  function cancel() {
    if (!editing || editing.saving) return;
    const stale = editing.stale;
    editing = null;
    hideError();
    if (stale) load();
    else render();
    (editBtn.hidden ? body.querySelector('[data-test=transcript-write]') || body.querySelector('.transcript-note') : editBtn)?.focus();
  }

  editBtn.addEventListener('click', () => startEditing(segments()));
  saveBtn.addEventListener('click', save);
  cancelBtn.addEventListener('click', cancel);
  body.addEventListener('keydown', (e) => {
    if (!editing || !e.target.matches?.('textarea')) return;
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      save();
    } else if (e.key === 'Escape' && !unsaved()) {
      // Only when nothing would be lost; otherwise Cancel says so plainly.
      e.preventDefault();
      cancel();
    }
  });

  // ---------- transcribing again ----------

  async function retry(e) {
    const btn = e.currentTarget;
    const id = rec.id;
    btn.disabled = true;
    hideError();
    let fresh;
    try {
      fresh = await api('POST', `${path(id)}/retry`);
    } catch (err) {
      btn.disabled = false;
      if (rec?.id !== id) return;
      if (err.status === 409) {
        retryOff = true;
        btn.remove();
      }
      showError(err.message);
      return;
    }
    if (rec?.id !== id) return;
    rec = fresh;
    known = fresh.transcript;
    state = fresh.transcript === 'pending' ? 'pending' : state;
    render();
    body.querySelector('.transcript-note')?.focus();
    say('Queued for transcription.');
    changed(fresh);
  }

  // ---------- opening and closing ----------

  function setOpen(on, remember = true) {
    open = on;
    panel.hidden = !on;
    toggle.setAttribute('aria-expanded', String(on));
    if (remember) {
      try {
        localStorage.setItem(OPEN_KEY, on ? '1' : '0');
      } catch {
        // not remembered
      }
    }
    if (on && rec && loadedFor !== rec.id) load();
    resized();
    if (on) {
      const row = rows[current];
      if (row) requestAnimationFrame(() => reveal(row.li, true));
    }
  }

  toggle.addEventListener('click', () => setOpen(!open));

  return {
    element: panel,
    toggle,
    isOpen: () => open,
    /** Opens the panel (not remembered: a jump from a search result). */
    open: () => {
      if (!open) setOpen(true, false);
    },
    /** Another recording is in the player. */
    show(recording) {
      abort();
      rec = recording;
      data = null;
      editing = null;
      loadedFor = null;
      known = null;
      state = 'loading';
      lastTime = 0;
      current = -1;
      tabStop = 0;
      handsOffUntil = 0;
      hideError();
      body.scrollTop = 0;
      if (open) load();
      else render();
    },
    /** A fresher copy of the recording in the player: a transcript that became ready reloads. */
    update(recording) {
      if (!rec || rec.id !== recording.id) return;
      rec = recording;
      if (loadedFor !== rec.id || rec.transcript === known) return;
      if (editing) {
        editing.stale = true; // looked at again once the user is done
        return;
      }
      load();
    },
    clear() {
      abort();
      rec = null;
      data = null;
      editing = null;
      loadedFor = null;
      state = 'loading';
      hideError();
      clear(body);
      rows = [];
    },
    /** The recording changed (a live change): its transcript may have been corrected elsewhere. */
    changed: () => refresh(),
    /** The playback moved. */
    time: (seconds) => follow(seconds),
    /** Corrections not saved yet. */
    unsaved,
  };
}
