// Recording in the browser: MediaRecorder, a timer, a live level meter. The take streams to the
// server while it is recorded (a resumable upload fed every second), so a tab that dies keeps
// everything up to its last second; stopping sends the rest and makes it a recording.
import { h, icon } from './dom.js';
import { fileStamp, formatDuration } from './format.js';
import { StreamUpload, deleteUpload, holdLock, takeLock } from './resumable.js';
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

/** Why recording cannot work here, or null. */
export function recordingUnavailable() {
  // navigator.mediaDevices only exists in secure contexts: https:// pages and http://localhost.
  if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
    return 'The browser gives this page no access to a microphone. Browsers allow recording only on https:// pages ' +
      `or on http://localhost${window.isSecureContext ? '' : `, and this page was opened at ${location.origin}`}. ` +
      'Open it through an HTTPS address (for example behind a reverse proxy), or record with your phone’s app.';
  }
  if (typeof MediaRecorder === 'undefined') return 'This browser cannot record audio. Try a current Firefox, Chrome or Safari.';
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
  const bars = Array.from({ length: BARS }, () => h('span', { class: 'bar' }));
  const level = h('div', {
    class: 'record-level', 'data-test': 'record-level', role: 'meter', 'aria-label': 'Input level',
    'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': '0',
  }, bars);
  const stopBtn = h('button', { type: 'button', class: 'stop-btn', 'data-test': 'record-stop', 'aria-label': 'Stop and save recording' }, icon('stop'));
  const discardBtn = h('button', { type: 'button', class: 'btn small ghost', 'aria-label': 'Discard recording' }, 'Discard');
  // Whether the take reaches the server as it is recorded; said only when that changes.
  const saving = h('p', { class: 'recorder-saving', 'data-test': 'record-saving', 'aria-live': 'polite' });
  const panel = h('section', { class: 'recorder card', 'aria-label': 'Recording', hidden: true },
    h('div', { class: 'recorder-status' }, h('span', { class: 'rec-dot', 'aria-hidden': 'true' }), h('span', {}, 'Recording'), timer),
    level,
    h('div', { class: 'recorder-actions' }, discardBtn, stopBtn),
    saving);

  let session = null; // { recorder, stream, audioCtx, analyser, chunks, startedAt, t0, raf, discard, upload }

  function setSaving(s, text) {
    if (session === s && saving.textContent !== text) saving.textContent = text;
  }

  /**
   * The take's resumable upload, created as recording starts. Once the server has it, this tab
   * holds the take's lock for as long as the take needs its upload, and the browser remembers
   * it: if the tab dies, the next page load (in any tab) finishes it.
   */
  function streamTake(s) {
    const upload = new StreamUpload({
      metadata: { filename: s.name, recorded_at: s.startedAt.toISOString(), keep_partial: true },
      onCreated: async (url) => {
        s.release = await holdLock(takeLock(url));
        if (s.settled) {
          s.release?.();
          return;
        }
        ctx.uploads.store.rememberTake(url, s.name);
      },
      onProgress: () => setSaving(s, 'Saved to the server as you record.'),
      onRetrying: () => setSaving(s, 'Connection lost, retrying… Recording continues; it is sent when the connection is back.'),
    });
    s.upload = upload;
    upload.pump().catch((e) => {
      if (e.name === 'AbortError') return;
      setSaving(s, `Not saved while recording (${e.message}). It is uploaded when you stop.`);
    });
  }

  /** The take no longer needs its resumable upload: let other tabs see that. */
  function settleTake(s) {
    s.settled = true;
    if (s.upload?.url) ctx.uploads.store.forgetTake(s.upload.url);
    s.release?.();
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
    const type = mimeType || recorder.mimeType || 'audio/webm';
    const s = {
      recorder, stream, chunks: [], startedAt, t0: performance.now(), raf: 0, discard: false, history: new Array(BARS).fill(0), lastBar: 0,
      name: `Recording ${fileStamp(startedAt)}.${extensionFor(type)}`, upload: null, release: null, settled: false,
    };
    session = s;
    saving.textContent = '';
    streamTake(s);
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
      s.chunks.push(e.data);
      if (!s.discard) s.upload.append(e.data);
    });
    recorder.addEventListener('stop', () => finish(s));
    recorder.addEventListener('error', (e) => {
      showError(`Recording failed: ${e.error?.message || 'the recorder stopped'}`);
    });
    // The stream can end on its own (microphone unplugged, permission revoked).
    stream.getAudioTracks()[0]?.addEventListener('ended', () => stop());

    recorder.start(TIMESLICE);
    panel.hidden = false;
    ctx.recordButton.setAttribute('aria-pressed', 'true');
    document.body.classList.add('is-recording');
    timer.textContent = '0:00';
    stopBtn.focus();
    tick();
  }

  function tick() {
    const s = session;
    if (!s) return;
    const now = performance.now();
    timer.textContent = formatDuration((now - s.t0) / 1000);
    if (s.analyser && now - s.lastBar > 60) {
      s.lastBar = now;
      s.analyser.getFloatTimeDomainData(s.samples);
      let sum = 0;
      for (const v of s.samples) sum += v * v;
      const rms = Math.sqrt(sum / s.samples.length);
      // -60 dBFS .. 0 dBFS → 0 .. 1
      const db = 20 * Math.log10(rms || 1e-8);
      const value = Math.max(0, Math.min(1, (db + 60) / 60));
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

  function finish(s) {
    if (session !== s) return;
    session = null;
    cancelAnimationFrame(s.raf);
    s.stream.getTracks().forEach((t) => t.stop());
    s.audioCtx?.close().catch(() => {});
    panel.hidden = true;
    bars.forEach((bar) => { bar.style.transform = ''; });
    ctx.recordButton.disabled = false;
    ctx.recordButton.setAttribute('aria-pressed', 'false');
    document.body.classList.remove('is-recording');
    ctx.recordButton.focus();
    const { upload } = s;
    const type = s.recorder.mimeType || s.chunks[0]?.type || 'audio/webm';
    const blob = new Blob(s.chunks, { type });
    if (s.discard || blob.size === 0) {
      upload.abort();
      if (upload.url) deleteUpload(upload.url).catch(() => {});
      settleTake(s);
      if (!s.discard) showError('Nothing was recorded: the microphone sent no sound data.');
      return;
    }
    const take = { blob, name: s.name, recordedAt: s.startedAt.toISOString() };
    if (upload.failed) {
      // The server refused the streamed take for good: one plain upload of the whole of it.
      if (upload.url) deleteUpload(upload.url).catch(() => {});
      settleTake(s);
      ctx.uploads.addBlob(take);
      return;
    }
    ctx.uploads.addTake({ ...take, upload, settled: () => settleTake(s) });
  }

  stopBtn.addEventListener('click', () => stop(false));
  discardBtn.addEventListener('click', () => stop(true));

  return {
    element: panel,
    start,
    stop,
    active: () => session !== null,
  };
}
