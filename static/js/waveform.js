// Waveforms from the server's analysis: fetched a few at a time and cached in memory, the
// analysis of pending recordings watched with a gentle backoff, and the drawing on a canvas.
import { api } from './api.js';

// ---------- a small queue: at most this many waveform or status requests at once ----------

const PARALLEL = 2;
const tasks = [];
let active = 0;

/** Runs `run()` when a slot is free, unless `wanted()` has become false by then. */
function enqueue(task, urgent) {
  if (urgent) tasks.unshift(task);
  else tasks.push(task);
  pump();
}

function pump() {
  while (active < PARALLEL && tasks.length) {
    const task = tasks.shift();
    if (!task.wanted()) continue;
    active++;
    Promise.resolve()
      .then(task.run)
      .catch(() => {})
      .finally(() => {
        active--;
        pump();
      });
  }
}

// Requests under way, aborted when the user signs out (see forgetAll).
let session = new AbortController();

// ---------- waveforms, cached per recording ----------

// id → { bucketMs, peaks: Uint8Array }. A recording's audio never changes, so neither does its
// waveform; the Map's order makes it least recently used first. The browser's HTTP cache
// revalidates with the ETag (a 304) when one is fetched again after a reload.
const CACHE_LIMIT = 400;
const cache = new Map();
const loading = new Map(); // id → { callbacks: Set, task }

function remember(id, wave) {
  cache.delete(id);
  cache.set(id, wave);
  while (cache.size > CACHE_LIMIT) cache.delete(cache.keys().next().value);
}

/** The cached waveform of a recording, if any (no request). */
export function cachedWaveform(id) {
  const wave = cache.get(id);
  if (wave) remember(id, wave);
  return wave || null;
}

/**
 * Calls `callback(wave)` with a `ready` recording's waveform, or `callback(null)` when it
 * cannot be had. Cached: at once; else queued behind the other requests (`urgent`: in front).
 * Returns a function that withdraws the interest: a row scrolled past before its turn costs no
 * request.
 */
export function wantWaveform(id, callback, { urgent = false } = {}) {
  const hit = cachedWaveform(id);
  if (hit) {
    callback(hit);
    return () => {};
  }
  let entry = loading.get(id);
  if (!entry) {
    entry = { callbacks: new Set(), started: false };
    entry.task = {
      wanted: () => {
        if (entry.callbacks.size) return true;
        loading.delete(id);
        return false;
      },
      run: async () => {
        entry.started = true;
        let wave = null;
        try {
          const body = await api('GET', `/recordings/${encodeURIComponent(id)}/waveform`, undefined, { signal: session.signal });
          if (Array.isArray(body?.peaks) && body.bucket_ms > 0) {
            wave = { bucketMs: body.bucket_ms, peaks: Uint8Array.from(body.peaks) };
            remember(id, wave);
          }
        } finally {
          loading.delete(id);
          for (const fn of entry.callbacks) fn(wave);
        }
      },
    };
    loading.set(id, entry);
    entry.callbacks.add(callback);
    enqueue(entry.task, urgent);
  } else {
    entry.callbacks.add(callback);
    if (urgent && !entry.started) {
      const at = tasks.indexOf(entry.task);
      if (at > 0) tasks.unshift(...tasks.splice(at, 1));
    }
  }
  return () => entry.callbacks.delete(callback);
}

// ---------- pending analyses, watched until they end ----------

// Polls a pending recording's JSON: first after 2 s, each wait half as long again as the last,
// at most a minute apart, 20 times (about 13 minutes) at most. Only while something on the
// page shows it (a visible row, the player) and the page itself is visible. Past the limit the
// next refresh of the list brings the news instead.
const FIRST_WAIT = 2000;
const MAX_WAIT = 60000;
const MAX_POLLS = 20;
const watched = new Map(); // id → { listeners: Set, polls, timer, busy }

function waitFor(polls) {
  return Math.min(MAX_WAIT, FIRST_WAIT * 1.5 ** polls);
}

function schedule(id, entry) {
  if (entry.timer || entry.busy || entry.polls >= MAX_POLLS || !entry.listeners.size) return;
  entry.timer = setTimeout(() => {
    entry.timer = 0;
    if (document.hidden) {
      document.addEventListener('visibilitychange', () => schedule(id, entry), { once: true });
      return;
    }
    entry.busy = true;
    enqueue({
      wanted: () => {
        if (entry.listeners.size) return true;
        entry.busy = false;
        return false;
      },
      run: async () => {
        entry.polls++;
        let rec = null;
        try {
          rec = await api('GET', `/recordings/${encodeURIComponent(id)}`, undefined, { signal: session.signal });
        } catch (e) {
          // Deleted meanwhile, or signed out: nothing more to wait for.
          if (e.status === 404 || e.status === 401 || e.name === 'AbortError') {
            watched.delete(id);
            return;
          }
        } finally {
          entry.busy = false;
        }
        if (rec && rec.waveform !== 'pending') {
          watched.delete(id);
          for (const fn of entry.listeners) fn(rec);
        } else {
          schedule(id, entry);
        }
      },
    }, false);
  }, waitFor(entry.polls));
}

/**
 * Calls `listener(recording)` once a pending recording's analysis has ended (`ready` or
 * `failed`). Returns a function that stops listening; the backoff is kept per recording, so a
 * row scrolled away and back does not start it over.
 */
export function watchAnalysis(id, listener) {
  let entry = watched.get(id);
  if (!entry) {
    entry = { listeners: new Set(), polls: 0, timer: 0, busy: false };
    watched.set(id, entry);
  }
  entry.listeners.add(listener);
  schedule(id, entry);
  return () => {
    entry.listeners.delete(listener);
    if (!entry.listeners.size && entry.timer) {
      clearTimeout(entry.timer);
      entry.timer = 0;
    }
  };
}

/**
 * Forgets every waveform and stops every request and watch: the user signed out, and whoever
 * signs in next sees nothing of theirs (and no late answer brings a "session ended").
 */
export function forgetAll() {
  session.abort();
  session = new AbortController();
  tasks.length = 0;
  cache.clear();
  for (const entry of loading.values()) entry.callbacks.clear();
  loading.clear();
  for (const entry of watched.values()) {
    clearTimeout(entry.timer);
    entry.timer = 0;
    entry.listeners.clear();
  }
  watched.clear();
}

// ---------- drawing ----------

/**
 * The height of each of `count` bars, 0 to 1, over `seconds` of the recording (the waveform's
 * own length when unknown): the loudest bucket under each bar.
 *
 * Peaks are linear amplitude; drawn linearly, speech recorded at a sensible level is a thin
 * line with a few spikes. The square root lifts quiet parts (a peak of 1/16 of full scale is a
 * quarter of the height) and still keeps loud and quiet apart, without the flattening of a
 * full decibel scale.
 */
export function barHeights(wave, seconds, count) {
  const out = new Float32Array(count);
  if (!wave || count <= 0) return out;
  const { peaks, bucketMs } = wave;
  const total = seconds > 0 ? seconds * 1000 : peaks.length * bucketMs;
  for (let j = 0; j < count; j++) {
    const from = Math.floor((j * total) / count / bucketMs);
    const to = Math.max(from + 1, Math.floor(((j + 1) * total) / count / bucketMs));
    let max = 0;
    for (let i = from; i < to && i < peaks.length; i++) if (peaks[i] > max) max = peaks[i];
    out[j] = Math.sqrt(max / 255);
  }
  return out;
}

// Colours come from the stylesheet (custom properties on the canvas), so they follow the
// colour scheme; read again when it changes.
const colourCache = new WeakMap();
const darkQuery = matchMedia('(prefers-color-scheme: dark)');
const redrawers = new Set();

function colours(canvas) {
  let c = colourCache.get(canvas);
  if (!c) {
    const style = getComputedStyle(canvas);
    const prop = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
    c = {
      played: prop('--wave-played', '#0064d2'),
      rest: prop('--wave-rest', '#8e8e93'),
      head: prop('--wave-head', '#1c1c1e'),
      none: prop('--wave-none', '#aeaeb2'),
    };
    colourCache.set(canvas, c);
  }
  return c;
}

darkQuery.addEventListener('change', () => {
  for (const redraw of redrawers) redraw(true);
});

/** Redraws whenever the colour scheme or the screen's pixel density changes; returns an undo. */
export function onLookChange(redraw) {
  redrawers.add(redraw);
  return () => redrawers.delete(redraw);
}

// A zoom or a move to another screen changes devicePixelRatio: listen for the current one.
(function watchDensity() {
  const query = matchMedia(`(resolution: ${window.devicePixelRatio || 1}dppx)`);
  query.addEventListener('change', () => {
    for (const redraw of redrawers) redraw(false);
    watchDensity();
  }, { once: true });
})();

/** Forgets a canvas's colours (its class changed, or the scheme did). */
export function restyle(canvas) {
  colourCache.delete(canvas);
}

/**
 * Draws on `canvas` at its laid-out size and the screen's density:
 * - `wave` (from wantWaveform): mirrored bars, `bar` CSS px wide every `pitch` px;
 * - `wave` null: a row of dots (analysis pending, or the waveform still loading), or a faint
 *   plain line when `flat` is set (no waveform for this recording);
 * - `progress` (0 to 1, or null for none): the played part in another colour, and a playhead
 *   when `playhead` is set.
 * Returns false when the canvas has no size yet (hidden, not laid out).
 */
export function drawWaveform(canvas, { wave, seconds = 0, progress = null, playhead = false, pitch = 3, bar = 2, flat = false }) {
  const rect = canvas.getBoundingClientRect();
  if (!rect.width || !rect.height) return false;
  const dpr = window.devicePixelRatio || 1;
  const w = Math.round(rect.width * dpr);
  const h = Math.round(rect.height * dpr);
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== h) canvas.height = h;
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, w, h);
  const c = colours(canvas);
  const played = progress == null ? -1 : Math.max(0, Math.min(1, progress)) * w;
  const mid = h / 2;
  const thin = Math.max(1, Math.round(dpr));

  if (wave) {
    const step = Math.max(2, Math.round(pitch * dpr));
    const width = Math.max(1, Math.min(step - 1, Math.round(bar * dpr)));
    const count = Math.floor((w + step - width) / step);
    const heights = barHeights(wave, seconds, count);
    const room = h - 2 * thin;
    for (let j = 0; j < count; j++) {
      const x = j * step;
      // At least a hairline: silence still shows where the recording runs.
      const bh = Math.max(thin, Math.round(heights[j] * room / 2) * 2);
      ctx.fillStyle = x + width / 2 <= played ? c.played : c.rest;
      ctx.fillRect(x, Math.round(mid - bh / 2), width, bh);
    }
  } else if (flat) {
    ctx.fillStyle = c.none;
    ctx.fillRect(0, Math.round(mid - thin / 2), w, thin);
  } else {
    // A calm placeholder: round dots along the midline, well apart (silence in a waveform is a
    // row of hairlines, close together), and nothing moving.
    const r = 1.5 * dpr;
    const step = 8 * dpr;
    for (let x = r; x + r <= w; x += step) {
      ctx.fillStyle = x <= played ? c.played : c.rest;
      ctx.beginPath();
      ctx.arc(x, mid, r, 0, 2 * Math.PI);
      ctx.fill();
    }
  }

  if (playhead && played >= 0) {
    const lw = Math.max(2, Math.round(2 * dpr));
    ctx.fillStyle = c.head;
    ctx.fillRect(Math.round(Math.min(w - lw, Math.max(0, played - lw / 2))), 0, lw, h);
  }
  return true;
}
