// One shared <audio> element driven by a custom bar at the bottom of the page. Its seek bar is
// the recording's waveform once the server has analysed it; the transcript opens above it.
import { createBookmarks } from './bookmarks.js';
import { h, icon, setIcon } from './dom.js';
import { formatDuration } from './format.js';
import { createTranscript } from './transcript.js';
import { showError } from './ui.js';
import { drawWaveform, onLookChange, restyle, wantWaveform, watchAnalysis } from './waveform.js';

/** Arrow keys move this many seconds; Page Up and Page Down ten times as far. */
const KEY_STEP = 5;
/** The speeds offered, and where this device's choice is kept. */
const SPEEDS = [0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.5, 3];
const SPEED_KEY = 'recorder.speed';

function savedSpeed() {
  try {
    const speed = Number(localStorage.getItem(SPEED_KEY));
    return SPEEDS.includes(speed) ? speed : 1;
  } catch {
    return 1;
  }
}

export function createPlayer() {
  const audio = h('audio', { 'data-test': 'player', preload: 'metadata', hidden: true });
  const nameEl = h('div', { class: 'player-name', 'data-test': 'player-name' });
  const current = h('span', { class: 'player-time' }, '0:00');
  const total = h('span', { class: 'player-time' }, '0:00');
  // The slider itself is a native range input (keyboard, screen readers, the accessibility
  // tree's min/max/now/valuetext), laid over the canvas that draws the waveform; the pointer
  // (mouse, pen, touch) is handled by the wrapper so a tap anywhere seeks there.
  const waveStatus = h('span', { class: 'visually-hidden', id: 'player-wave-status', 'data-test': 'waveform-status' });
  const seek = h('input', {
    type: 'range', class: 'seek', 'data-test': 'seek', min: '0', max: '0', step: 'any', value: '0',
    'aria-label': 'Seek', 'aria-describedby': 'player-wave-status',
  });
  const canvas = h('canvas', { class: 'wave-canvas', 'data-test': 'waveform-canvas', 'aria-hidden': 'true' });
  const waveBox = h('div', { class: 'wave-seek', 'data-test': 'waveform', 'data-state': 'none' }, canvas, seek, waveStatus);
  const toggle = h('button', {
    type: 'button', class: 'player-toggle', 'data-test': 'player-toggle', 'aria-label': 'Play',
  }, icon('play'));
  const back = h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Back 15 seconds' }, icon('back'));
  const forward = h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Forward 15 seconds' }, icon('forward'));
  // Speed, with the pitch kept (the browser's default, set anyway), remembered on this device.
  const speed = h('select', { class: 'player-speed', 'data-test': 'player-speed', 'aria-label': 'Playback speed', title: 'Playback speed' },
    SPEEDS.map((v) => h('option', { value: String(v) }, `${v}×`)));
  speed.value = String(savedSpeed());
  const shareBtn = h('button', { type: 'button', class: 'icon-btn', 'data-test': 'player-share', 'aria-label': 'Share', title: 'Share…', hidden: true }, icon('share'));
  const closeBtn = h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Close player' }, icon('close'));
  const transcript = createTranscript({
    seek: (t) => {
      seekTo(t);
      if (audio.paused) startPlayback();
    },
    duration: () => duration(),
    changed: (fresh) => update(fresh),
    resized: () => syncSpace(),
  });

  const bookmarks = createBookmarks({
    seek: (t) => seekTo(t),
    position: () => position(),
    duration: () => duration(),
  });
  waveBox.append(bookmarks.ticks);

  const bar = h('section', { class: 'player', 'aria-label': 'Player', hidden: true },
    audio,
    transcript.element,
    bookmarks.panel,
    h('div', { class: 'player-inner' },
      h('div', { class: 'player-controls' }, back, toggle, forward),
      h('div', { class: 'player-main' },
        nameEl,
        h('div', { class: 'player-seek' }, current, waveBox, total)),
      speed, bookmarks.toggle, transcript.toggle, shareBtn, closeBtn));

  let rec = null;
  let dragging = false;
  let dragTime = 0;
  const listeners = new Set();
  let onShare = null;
  // The waveform of the recording in the player: its state as the server says, the peaks once
  // fetched, and the requests to withdraw when another recording takes its place.
  let wave = null;
  let waveState = 'none';
  let waveId = null;
  let stopWave = () => {};
  let stopWatch = () => {};

  const duration = () => {
    if (Number.isFinite(audio.duration) && audio.duration > 0) return audio.duration;
    return rec?.duration_ms != null ? rec.duration_ms / 1000 : 0;
  };

  function emit() {
    for (const fn of listeners) fn(rec?.id ?? null, !audio.paused);
  }

  const position = () => (dragging ? dragTime : audio.currentTime);

  function renderTime() {
    const d = duration();
    const t = position();
    seek.max = String(d || 0);
    seek.value = String(Math.min(t, d || t));
    current.textContent = formatDuration(t);
    total.textContent = d ? formatDuration(d) : (rec?.duration_ms == null ? '—' : '0:00');
    seek.setAttribute('aria-valuetext', `${formatDuration(t)} of ${d ? formatDuration(d) : 'unknown'}`);
    seek.style.setProperty('--pct', d ? `${Math.min(100, (t / d) * 100)}%` : '0%');
    renderWave();
    transcript.time(t);
  }

  // With the transcript open the bar is taller: the page keeps its end (and focused controls)
  // clear of it.
  function syncSpace() {
    for (const el of [document.documentElement, document.body]) {
      if (bar.hidden || !transcript.isOpen()) el.style.removeProperty('--player-space');
      else el.style.setProperty('--player-space', `${Math.ceil(bar.getBoundingClientRect().height) + 12}px`);
    }
  }
  new ResizeObserver(syncSpace).observe(bar);

  // ---------- the waveform ----------

  function renderWave() {
    if (bar.hidden || waveState === 'failed' || waveState === 'none') return;
    const d = duration();
    drawWaveform(canvas, {
      wave: waveState === 'ready' ? wave : null,
      seconds: d,
      progress: d ? position() / d : 0,
      playhead: true,
    });
  }

  /** Shows the waveform state of `rec`: ready (fetch and draw), pending (watch), failed. */
  function setWaveState() {
    const state = rec?.waveform === 'ready' || rec?.waveform === 'pending' ? rec.waveform : rec ? 'failed' : 'none';
    if (rec?.id === waveId && state === waveState && (state !== 'ready' || wave)) return;
    stopWave();
    stopWatch();
    stopWave = () => {};
    stopWatch = () => {};
    wave = null;
    waveState = state;
    waveId = rec?.id ?? null;
    // `loading`: ready, peaks on their way (drawn as the placeholder, without its words).
    waveBox.dataset.state = state === 'ready' ? 'loading' : state;
    waveStatus.textContent = state === 'pending' ? 'Analysing…' : '';
    if (state === 'failed') waveBox.title = 'No waveform for this recording';
    else waveBox.removeAttribute('title');
    const id = rec?.id;
    if (state === 'ready') {
      stopWave = wantWaveform(id, (w) => {
        if (rec?.id !== id || waveState !== 'ready') return;
        if (!w) {
          // Could not be had (a network error): the plain bar, quietly.
          waveState = 'failed';
          waveBox.dataset.state = 'failed';
          waveBox.title = 'No waveform for this recording';
          return;
        }
        wave = w;
        waveBox.dataset.state = 'ready';
        renderWave();
      }, { urgent: true });
    } else if (state === 'pending') {
      stopWatch = watchAnalysis(id, (fresh) => {
        if (rec?.id === id) update(fresh);
      });
    }
    renderWave();
  }

  // Redraws while playing, once a frame, so the playhead moves smoothly.
  let frame = 0;
  function animate() {
    frame = 0;
    if (audio.paused || bar.hidden) return;
    renderWave(); // the times and the slider's value follow timeupdate
    frame = requestAnimationFrame(animate);
  }

  new ResizeObserver(() => renderWave()).observe(canvas);
  onLookChange((scheme) => {
    if (scheme) restyle(canvas);
    renderWave();
  });

  /** The time under a pointer at `clientX`. */
  function timeAt(clientX) {
    const r = waveBox.getBoundingClientRect();
    const d = duration();
    if (!r.width || !d) return 0;
    return Math.max(0, Math.min(1, (clientX - r.left) / r.width)) * d;
  }

  function seekTo(t) {
    const d = duration();
    if (!rec || !d) return;
    audio.currentTime = Math.max(0, Math.min(d, t));
    renderTime();
  }

  function renderState() {
    const playing = !audio.paused;
    setIcon(toggle, playing ? 'pause' : 'play');
    toggle.setAttribute('aria-label', playing ? 'Pause' : 'Play');
    bar.classList.toggle('is-playing', playing);
    emit();
  }

  function startPlayback() {
    audio.play().catch((e) => {
      if (e.name === 'AbortError') return; // replaced by another src
      if (e.name === 'NotAllowedError') showError('The browser blocked playback. Press play again.');
      else if (e.name === 'NotSupportedError') showError(unsupportedMessage());
      else showError(`Could not play “${rec?.name}”: ${e.message}`);
    });
  }

  function unsupportedMessage() {
    return `This browser cannot play “${rec?.name}” (${rec?.content_type}). Download it to play it in another app.`;
  }

  /** Plays a recording, or toggles it if it is already loaded. */
  function play(recording) {
    if (rec && rec.id === recording.id) {
      update(recording);
      if (audio.paused) startPlayback();
      else audio.pause();
      return;
    }
    load(recording);
    startPlayback();
  }

  /**
   * Plays a recording from `seconds` (a search result's words), with its transcript open when
   * `showTranscript`.
   */
  function playAt(recording, seconds, { showTranscript = false } = {}) {
    if (rec && rec.id === recording.id) update(recording);
    else load(recording);
    if (showTranscript) transcript.open();
    const id = recording.id;
    const to = Math.max(0, seconds);
    if (audio.readyState >= HTMLMediaElement.HAVE_METADATA) {
      seekTo(to);
    } else {
      // Asked for before the audio is there (the start position); once it is, where it lands.
      audio.currentTime = to;
      audio.addEventListener('loadedmetadata', () => {
        if (rec?.id === id && Math.abs(audio.currentTime - to) > 0.25) seekTo(to);
      }, { once: true });
    }
    if (audio.paused) startPlayback();
  }

  function applySpeed() {
    const rate = Number(speed.value) || 1;
    audio.defaultPlaybackRate = rate;
    audio.playbackRate = rate;
    audio.preservesPitch = true;
  }

  /** Puts a recording in the player, paused. */
  function load(recording) {
    rec = recording;
    nameEl.textContent = rec.name;
    nameEl.title = rec.name;
    shareBtn.setAttribute('aria-label', `Share ${rec.name}`);
    audio.src = `/api/v1/recordings/${encodeURIComponent(rec.id)}/audio`;
    applySpeed();
    bar.hidden = false;
    document.body.classList.add('has-player');
    transcript.show(rec);
    bookmarks.show(rec);
    setWaveState();
    renderTime();
    if ('mediaSession' in navigator) {
      try {
        navigator.mediaSession.metadata = new MediaMetadata({ title: rec.name, artist: 'Recorder' });
      } catch {
        // MediaMetadata missing in some browsers
      }
    }
  }

  function clear() {
    audio.pause();
    audio.removeAttribute('src');
    audio.load();
    rec = null;
    transcript.clear();
    bookmarks.clear();
    setWaveState();
    bar.hidden = true;
    document.body.classList.remove('has-player');
    syncSpace();
    renderState();
  }

  /** A fresher copy of the recording (renamed, or its analysis ended). */
  function update(recording) {
    if (!rec || rec.id !== recording.id) return;
    rec = recording;
    nameEl.textContent = rec.name;
    nameEl.title = rec.name;
    shareBtn.setAttribute('aria-label', `Share ${rec.name}`);
    transcript.update(rec);
    bookmarks.update(rec);
    setWaveState();
    renderTime();
  }

  function skip(seconds) {
    const d = duration();
    audio.currentTime = Math.max(0, Math.min(d || Infinity, audio.currentTime + seconds));
  }

  toggle.addEventListener('click', () => {
    if (!rec) return;
    if (audio.paused) startPlayback();
    else audio.pause();
  });
  speed.addEventListener('change', () => {
    applySpeed();
    try {
      localStorage.setItem(SPEED_KEY, speed.value);
    } catch {
      // no storage: the speed holds until the page is left
    }
  });
  back.addEventListener('click', () => skip(-15));
  forward.addEventListener('click', () => skip(15));
  closeBtn.addEventListener('click', clear);
  shareBtn.addEventListener('click', () => {
    if (rec && onShare) onShare(rec);
  });

  // A press (mouse, pen or finger) anywhere on the bar seeks there, and a drag scrubs: the
  // audio follows live, and the playhead stays under the pointer whatever timeupdate says.
  waveBox.addEventListener('pointerdown', (e) => {
    if (!rec || !duration() || (e.pointerType === 'mouse' && e.button !== 0)) return;
    e.preventDefault(); // no text selection, no focus moving elsewhere
    seek.focus({ preventScroll: true });
    waveBox.setPointerCapture(e.pointerId);
    dragging = true;
    dragTime = timeAt(e.clientX);
    seekTo(dragTime);
  });
  waveBox.addEventListener('pointermove', (e) => {
    if (!dragging || !waveBox.hasPointerCapture(e.pointerId)) return;
    dragTime = timeAt(e.clientX);
    seekTo(dragTime);
  });
  const endDrag = (e) => {
    if (!dragging) return;
    if (e.type === 'pointerup') seekTo(timeAt(e.clientX));
    dragging = false;
    renderTime();
  };
  for (const ev of ['pointerup', 'pointercancel', 'lostpointercapture']) waveBox.addEventListener(ev, endDrag);

  // Keys: arrows ±5 s, Page Up/Down ±50 s, Home and End.
  seek.addEventListener('keydown', (e) => {
    const d = duration();
    if (!rec || !d || e.altKey || e.ctrlKey || e.metaKey) return;
    const t = audio.currentTime;
    const to = {
      ArrowLeft: t - KEY_STEP, ArrowDown: t - KEY_STEP, ArrowRight: t + KEY_STEP, ArrowUp: t + KEY_STEP,
      PageDown: t - KEY_STEP * 10, PageUp: t + KEY_STEP * 10, Home: 0, End: d,
    }[e.key];
    if (to === undefined) return;
    e.preventDefault();
    seekTo(to);
  });
  // Anything else that sets the slider's value (assistive technology) seeks too.
  seek.addEventListener('input', () => {
    if (rec) audio.currentTime = Number(seek.value);
    renderTime();
  });

  for (const ev of ['timeupdate', 'durationchange', 'loadedmetadata', 'seeked']) audio.addEventListener(ev, renderTime);
  for (const ev of ['durationchange', 'loadedmetadata']) audio.addEventListener(ev, () => bookmarks.redraw());
  for (const ev of ['play', 'pause', 'ended']) audio.addEventListener(ev, renderState);
  audio.addEventListener('play', () => {
    if (!frame) frame = requestAnimationFrame(animate);
  });
  audio.addEventListener('error', () => {
    if (!rec || !audio.error) return;
    if (audio.error.code === MediaError.MEDIA_ERR_SRC_NOT_SUPPORTED || audio.error.code === MediaError.MEDIA_ERR_DECODE) {
      showError(unsupportedMessage());
    } else {
      showError(`Could not load “${rec.name}”.`);
    }
    renderState();
  });

  if ('mediaSession' in navigator) {
    const handlers = {
      play: () => startPlayback(),
      pause: () => audio.pause(),
      seekbackward: () => skip(-15),
      seekforward: () => skip(15),
    };
    for (const [action, fn] of Object.entries(handlers)) {
      try {
        navigator.mediaSession.setActionHandler(action, fn);
      } catch {
        // unsupported action
      }
    }
  }

  return {
    element: bar,
    play,
    playAt,
    clear,
    /** Keeps the bar in step with a fresher copy of the recording (a rename, its analysis). */
    update,
    currentId: () => rec?.id ?? null,
    /** The recording in the player, if any. */
    current: () => rec,
    isPlaying: () => !audio.paused,
    /** A live change of a recording: the transcript of the one in the player looks again. */
    changedElsewhere(id) {
      if (rec?.id === id) transcript.changed();
    },
    /** Corrections of the transcript not saved yet. */
    unsavedTranscript: () => transcript.unsaved(),
    onChange(fn) {
      listeners.add(fn);
    },
    /** Offers "Share…" for the recording in the player. */
    setShare(fn) {
      onShare = fn;
      shareBtn.hidden = !fn;
    },
  };
}
