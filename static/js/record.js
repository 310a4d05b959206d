// Recording in the browser: MediaRecorder, the elapsed time, a live level meter, Pause/Resume
// and Mark. Each second of the take is written to this device's outbox (outbox.js) before
// anything is sent, so a crash, a closed tab or no network loses at most the last second;
// stopping hands the take to the outbox, which uploads it whenever the server is reachable.
import { h, icon } from './dom.js';
import { fileStamp, formatDuration, uuid } from './format.js';
import { askPersistentStorage, outboxAvailable, takeLock } from './outbox.js';
import { holdLock } from './resumable.js';
import { showError } from './ui.js';

/** MediaRecorder hands over what it recorded this often (milliseconds). */
const TIMESLICE = 1000;

const BARS = 64;
const TYPES = ['audio/webm;codecs=opus', 'audio/ogg;codecs=opus', 'audio/webm', 'audio/mp4;codecs=mp4a.40.2', 'audio/mp4', 'audio/ogg'];

function extensionFor(mime) {
  if (mime.includes('webm')) return 'webm';
  if (mime.includes('ogg')) return 'ogg';
  if (mime.includes('mp4') || mime.includes('aac')) return 'm4a';
  if (mime.includes('wav')) return 'wav';
  return 'webm';
}

/** Whether this page may use the microphone: a secure context (https:// or localhost). */
export function secureEnough() {
  return window.isSecureContext && !!navigator.mediaDevices?.getUserMedia;
}

/** Why recording cannot work here, or null. */
export function recordingUnavailable() {
  if (!secureEnough()) {
    return 'To record on this device, use the secure address: browsers allow the microphone only on https:// pages ' +
      '(and on http://localhost). The setup page (/setup) shows the address and how to trust it.';
  }
  if (typeof MediaRecorder === 'undefined') return 'This browser cannot record audio. Try a current Firefox, Chrome or Safari.';
  if (!outboxAvailable()) return 'This browser gives the page no storage to keep a recording in (private mode?), so it cannot record safely.';
  return null;
}

function permissionMessage(e) {
  switch (e?.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'Microphone access was denied. Allow the microphone for this site in your browser’s settings (the icon in the address bar), then press Record again.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No microphone was found. Connect one and press Record again.';
    case 'NotReadableError':
    case 'AbortError':
      return 'The microphone could not be opened; another app may be using it.';
    default:
      return `Could not start recording: ${e?.message || e}`;
  }
}

export function createRecorder(ctx) {
  const timer = h('span', { class: 'record-timer', 'data-test': 'record-timer', role: 'timer', 'aria-label': 'Recording time' }, '0:00');
  const stateLabel = h('span', { 'data-test': 'record-state' }, 'Recording');
  const bars = Array.from({ length: BARS }, () => h('span', { class: 'bar' }));
  const level = h('div', {
    class: 'record-level', 'data-test': 'record-level', role: 'meter', 'aria-label': 'Input level',
    'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': '0',
  }, bars);
  const stopBtn = h('button', { type: 'button', class: 'stop-btn', 'data-test': 'record-stop', 'aria-label': 'Stop', title: 'Stop and keep the recording' }, icon('stop'));
  const pauseBtn = h('button', { type: 'button', class: 'btn small', 'data-test': 'record-pause', 'aria-label': 'Pause' }, 'Pause');
  const markBtn = h('button', { type: 'button', class: 'btn small', 'data-test': 'record-mark', 'aria-label': 'Mark', title: 'Mark this moment (M)' }, 'Mark');
  const discardBtn = h('button', { type: 'button', class: 'btn small ghost', 'data-test': 'record-discard', 'aria-label': 'Discard recording' }, 'Discard');
  const marksNote = h('span', { class: 'record-marks', 'data-test': 'record-marks', 'aria-live': 'polite' });
  // Whether the take is being kept on this device; said only when that changes.
  const saving = h('p', { class: 'recorder-saving', 'data-test': 'record-saving', 'aria-live': 'polite' });
  const panel = h('section', { class: 'recorder card', 'aria-label': 'Recording', hidden: true },
    h('div', { class: 'recorder-status' }, h('span', { class: 'rec-dot', 'aria-hidden': 'true' }), stateLabel, timer, marksNote),
    level,
    h('div', { class: 'recorder-actions' }, discardBtn, markBtn, pauseBtn, stopBtn),
    saving);

  let session = null;

  function setSaving(s, text) {
    if (session === s && saving.textContent !== text) saving.textContent = text;
  }

  /** Milliseconds of audio recorded so far (pauses left out). */
  function elapsed(s) {
    return s.recordedMs + (s.runningSince == null ? 0 : performance.now() - s.runningSince);
  }

  async function wakeLock(s) {
    if (!navigator.wakeLock || document.visibilityState !== 'visible' || session !== s) return;
    try {
      s.wake = await navigator.wakeLock.request('screen');
      // The browser lets go of it when the page is hidden; it is asked for again on return.
      s.wake.addEventListener('release', () => { s.wake = null; });
    } catch {
      s.wake = null; // refused (battery saver): recording goes on
    }
  }

  async function start() {
    if (session) return;
    const reason = recordingUnavailable();
    if (reason) {
      showError(reason);
      return;
    }
    ctx.recordButton.disabled = true;
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: true } });
    } catch (e) {
      ctx.recordButton.disabled = false;
      showError(permissionMessage(e));
      return;
    }
    const mimeType = TYPES.find((t) => MediaRecorder.isTypeSupported?.(t));
    let recorder;
    try {
      recorder = new MediaRecorder(stream, mimeType ? { mimeType } : undefined);
    } catch (e) {
      stream.getTracks().forEach((t) => t.stop());
      ctx.recordButton.disabled = false;
      showError(`This browser cannot record audio: ${e.message}`);
      return;
    }
    const startedAt = new Date();
    const type = (mimeType || recorder.mimeType || 'audio/webm').split(';')[0];
    const id = uuid();
    let take;
    let release = null;
    try {
      release = await holdLock(takeLock(id));
      take = await ctx.outbox.begin({ id, name: `Recording ${fileStamp(startedAt)}.${extensionFor(type)}`, mime: type, recordedAt: startedAt.toISOString() });
    } catch (e) {
      release?.();
      stream.getTracks().forEach((t) => t.stop());
      ctx.recordButton.disabled = false;
      showError(`Cannot keep a recording in this browser’s storage: ${e.message || e}`);
      return;
    }
    askPersistentStorage();
    const s = {
      recorder, stream, take, release, startedAt, raf: 0, discard: false, history: new Array(BARS).fill(0), lastBar: 0,
      marks: [], recordedMs: 0, runningSince: performance.now(), writes: Promise.resolve(), wake: null, failed: false,
    };
    session = s;
    saving.textContent = 'Kept on this device as you record.';
    marksNote.textContent = '';
    try {
      const AC = window.AudioContext || window.webkitAudioContext;
      s.audioCtx = new AC();
      const source = s.audioCtx.createMediaStreamSource(stream);
      s.analyser = s.audioCtx.createAnalyser();
      s.analyser.fftSize = 1024;
      source.connect(s.analyser);
      s.samples = new Float32Array(s.analyser.fftSize);
      s.audioCtx.resume?.().catch(() => {});
    } catch {
      s.analyser = null; // the meter stays flat; recording still works
    }

    recorder.addEventListener('dataavailable', (e) => {
      if (!e.data || e.data.size === 0) return;
      // In order, one at a time: each piece is on the device before the next is written.
      s.writes = s.writes.then(() => ctx.outbox.append(s.take, e.data, s.marks)).catch((err) => {
        s.failed = true;
        setSaving(s, `Could not keep the recording on this device: ${err.message || err}. Stop to keep what was saved.`);
      });
    });
    recorder.addEventListener('stop', () => finish(s));
    recorder.addEventListener('error', (e) => {
      showError(`Recording failed: ${e.error?.message || 'the recorder stopped'}`);
    });
    // The stream can end on its own (microphone unplugged, permission revoked).
    stream.getAudioTracks()[0]?.addEventListener('ended', () => stop());

    recorder.start(TIMESLICE);
    wakeLock(s);
    panel.hidden = false;
    setPaused(s, false);
    ctx.recordButton.setAttribute('aria-pressed', 'true');
    document.body.classList.add('is-recording');
    timer.textContent = '0:00';
    stopBtn.focus();
    tick();
  }

  function setPaused(s, paused) {
    pauseBtn.textContent = paused ? 'Resume' : 'Pause';
    pauseBtn.setAttribute('aria-label', paused ? 'Resume' : 'Pause');
    stateLabel.textContent = paused ? 'Paused' : 'Recording';
    panel.classList.toggle('paused', paused);
    markBtn.disabled = paused;
  }

  function togglePause() {
    const s = session;
    if (!s) return;
    if (s.recorder.state === 'recording') {
      s.recorder.pause();
      s.recordedMs = elapsed(s);
      s.runningSince = null;
      // What was recorded up to the pause goes to the device now, not a second later.
      s.recorder.requestData?.();
      setPaused(s, true);
    } else if (s.recorder.state === 'paused') {
      s.recorder.resume();
      s.runningSince = performance.now();
      setPaused(s, false);
    }
  }

  function mark() {
    const s = session;
    if (!s || s.recorder.state !== 'recording') return;
    const at = Math.round(elapsed(s));
    if (s.marks.length >= 1000) return;
    s.marks.push(at);
    marksNote.textContent = s.marks.length === 1 ? `1 mark (${formatDuration(at / 1000)})` : `${s.marks.length} marks (last ${formatDuration(at / 1000)})`;
  }

  function tick() {
    const s = session;
    if (!s) return;
    const now = performance.now();
    timer.textContent = formatDuration(elapsed(s) / 1000);
    if (s.analyser && now - s.lastBar > 60) {
      s.lastBar = now;
      s.analyser.getFloatTimeDomainData(s.samples);
      let sum = 0;
      for (const v of s.samples) sum += v * v;
      const rms = Math.sqrt(sum / s.samples.length);
      // -60 dBFS .. 0 dBFS → 0 .. 1; flat while paused
      const db = 20 * Math.log10(rms || 1e-8);
      const value = s.runningSince == null ? 0 : Math.max(0, Math.min(1, (db + 60) / 60));
      s.history.shift();
      s.history.push(value);
      bars.forEach((bar, i) => { bar.style.transform = `scaleY(${Math.max(0.06, s.history[i])})`; });
      level.setAttribute('aria-valuenow', String(Math.round(value * 100)));
    }
    s.raf = requestAnimationFrame(tick);
  }

  function stop(discard = false) {
    const s = session;
    if (!s) return;
    s.discard = discard;
    if (s.recorder.state !== 'inactive') s.recorder.stop();
    else finish(s);
  }

  async function finish(s) {
    if (session !== s) return;
    session = null;
    cancelAnimationFrame(s.raf);
    s.stream.getTracks().forEach((t) => t.stop());
    s.audioCtx?.close().catch(() => {});
    s.wake?.release().catch(() => {});
    panel.hidden = true;
    panel.classList.remove('paused');
    bars.forEach((bar) => { bar.style.transform = ''; });
    ctx.recordButton.disabled = false;
    ctx.recordButton.setAttribute('aria-pressed', 'false');
    document.body.classList.remove('is-recording');
    ctx.recordButton.focus();
    // Every piece is on the device before the take is handed over.
    await s.writes;
    try {
      if (s.discard) await ctx.outbox.discard(s.take);
      else if (s.take.size === 0) {
        await ctx.outbox.discard(s.take);
        showError('Nothing was recorded: the microphone sent no sound data.');
      } else await ctx.outbox.finish(s.take, s.marks);
    } catch (e) {
      showError(`The recording is kept on this device but could not be queued: ${e.message || e}. It is sent on the next start.`);
    } finally {
      s.release?.();
    }
  }

  stopBtn.addEventListener('click', () => stop(false));
  discardBtn.addEventListener('click', () => stop(true));
  pauseBtn.addEventListener('click', togglePause);
  markBtn.addEventListener('click', mark);
  const onKey = (e) => {
    if (!session || e.ctrlKey || e.metaKey || e.altKey || (e.key !== 'm' && e.key !== 'M')) return;
    const t = e.target;
    if (t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t?.isContentEditable) return;
    e.preventDefault();
    mark();
  };
  document.addEventListener('keydown', onKey);
  const onVisible = () => {
    if (session && document.visibilityState === 'visible' && !session.wake) wakeLock(session);
  };
  document.addEventListener('visibilitychange', onVisible);

  return {
    element: panel,
    start,
    stop,
    active: () => session !== null,
    destroy() {
      document.removeEventListener('keydown', onKey);
      document.removeEventListener('visibilitychange', onVisible);
    },
  };
}
