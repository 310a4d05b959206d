// One shared <audio> element driven by a custom bar at the bottom of the page.
import { h, icon, setIcon } from './dom.js';
import { formatDuration } from './format.js';
import { showError } from './ui.js';

export function createPlayer() {
  const audio = h('audio', { 'data-test': 'player', preload: 'metadata', hidden: true });
  const nameEl = h('div', { class: 'player-name', 'data-test': 'player-name' });
  const current = h('span', { class: 'player-time' }, '0:00');
  const total = h('span', { class: 'player-time' }, '0:00');
  const seek = h('input', {
    type: 'range', class: 'seek', 'data-test': 'seek', min: '0', max: '0', step: 'any', value: '0',
    'aria-label': 'Seek',
  });
  const toggle = h('button', {
    type: 'button', class: 'player-toggle', 'data-test': 'player-toggle', 'aria-label': 'Play',
  }, icon('play'));
  const back = h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Back 15 seconds' }, icon('back'));
  const forward = h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Forward 15 seconds' }, icon('forward'));
  const closeBtn = h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Close player' }, icon('close'));

  const bar = h('section', { class: 'player', 'aria-label': 'Player', hidden: true },
    audio,
    h('div', { class: 'player-inner' },
      h('div', { class: 'player-controls' }, back, toggle, forward),
      h('div', { class: 'player-main' },
        nameEl,
        h('div', { class: 'player-seek' }, current, seek, total)),
      closeBtn));

  let rec = null;
  let dragging = false;
  const listeners = new Set();

  const duration = () => {
    if (Number.isFinite(audio.duration) && audio.duration > 0) return audio.duration;
    return rec?.duration_ms != null ? rec.duration_ms / 1000 : 0;
  };

  function emit() {
    for (const fn of listeners) fn(rec?.id ?? null, !audio.paused);
  }

  function renderTime() {
    const d = duration();
    const t = dragging ? Number(seek.value) : audio.currentTime;
    seek.max = String(d || 0);
    if (!dragging) seek.value = String(Math.min(t, d || t));
    current.textContent = formatDuration(t);
    total.textContent = d ? formatDuration(d) : (rec?.duration_ms == null ? '—' : '0:00');
    seek.setAttribute('aria-valuetext', `${formatDuration(t)} of ${d ? formatDuration(d) : 'unknown'}`);
    seek.style.setProperty('--pct', d ? `${Math.min(100, (t / d) * 100)}%` : '0%');
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
      rec = recording;
      nameEl.textContent = rec.name;
      if (audio.paused) startPlayback();
      else audio.pause();
      return;
    }
    rec = recording;
    nameEl.textContent = rec.name;
    nameEl.title = rec.name;
    audio.src = `/api/v1/recordings/${encodeURIComponent(rec.id)}/audio`;
    bar.hidden = false;
    document.body.classList.add('has-player');
    renderTime();
    startPlayback();
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
    bar.hidden = true;
    document.body.classList.remove('has-player');
    renderState();
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
  back.addEventListener('click', () => skip(-15));
  forward.addEventListener('click', () => skip(15));
  closeBtn.addEventListener('click', clear);

  // Seeks live while dragging; timeupdate does not move the thumb under the pointer.
  seek.addEventListener('pointerdown', () => { dragging = true; });
  seek.addEventListener('input', () => {
    if (rec) audio.currentTime = Number(seek.value);
    renderTime();
  });
  for (const ev of ['change', 'pointerup', 'pointercancel']) {
    seek.addEventListener(ev, () => {
      dragging = false;
      renderTime();
    });
  }

  for (const ev of ['timeupdate', 'durationchange', 'loadedmetadata', 'seeked']) audio.addEventListener(ev, renderTime);
  for (const ev of ['play', 'pause', 'ended']) audio.addEventListener(ev, renderState);
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
    clear,
    /** Keeps the name in the bar in step with a rename. */
    update(recording) {
      if (rec && rec.id === recording.id) {
        rec = recording;
        nameEl.textContent = rec.name;
        nameEl.title = rec.name;
      }
    },
    currentId: () => rec?.id ?? null,
    isPlaying: () => !audio.paused,
    onChange(fn) {
      listeners.add(fn);
    },
  };
}
