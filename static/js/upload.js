// Upload queue, one row each, at most two at a time. Small files go in one raw-body XHR (for its
// progress); larger ones through a resumable upload that survives a dropped connection and a
// reload. After a reload, uploads that stopped are listed. (Takes recorded here go through the
// outbox, outbox.js.)
import { api, errorFrom } from './api.js';
import { h, icon } from './dom.js';
import { formatSize, uuid } from './format.js';
import { FileUpload, RESUMABLE_MIN, deleteUpload, fileLock, holdLock, lockHeld, rememberedUploads, uploadId } from './resumable.js';
import { confirmDialog, reportError } from './ui.js';

const PARALLEL = 2;
const RETRYING = 'Connection lost, retrying…';

const percent = (part, whole) => (whole ? Math.floor((part / whole) * 100) : 0);
const urlOf = (id) => `/api/v1/uploads/${encodeURIComponent(id)}`;

export function createUploads(ctx) {
  const list = h('ul', { class: 'upload-list' });
  // Changes worth hearing (connection lost, resumed, done), not every byte.
  const announcer = h('p', { class: 'visually-hidden', 'data-test': 'upload-announcer', 'aria-live': 'polite' });
  const panel = h('section', { class: 'uploads card', 'aria-label': 'Uploads', hidden: true },
    h('h2', { class: 'uploads-title' }, 'Uploads'), list, announcer);
  const store = rememberedUploads(ctx.me.user.id);
  const queue = [];
  /** Uploads that stopped on an earlier visit, by upload id: `{upload, row}`. */
  const stopped = new Map();
  let active = 0;

  function announce(text) {
    announcer.textContent = text;
  }

  function render(item) {
    const { row, progress, status } = item;
    row.dataset.state = item.state;
    const size = item.size ?? item.blob.size;
    if (item.state === 'queued') {
      status.textContent = `Waiting · ${formatSize(size)}`;
    } else if (item.state === 'uploading') {
      progress.max = size || 1;
      progress.value = item.sent;
      status.textContent = `${formatSize(item.sent)} of ${formatSize(size)}`;
    } else if (item.state === 'retrying') {
      progress.max = size || 1;
      progress.value = item.sent;
      status.textContent = RETRYING;
    } else if (item.state === 'processing') {
      progress.removeAttribute('value'); // indeterminate while the server checks the file
      status.textContent = 'Processing…';
    } else if (item.state === 'done') {
      progress.max = 1;
      progress.value = 1;
      status.textContent = 'Uploaded';
    }
  }

  /** Progress of a resumable upload: what the server acknowledged. */
  function acknowledged(item, offset) {
    if (item.state === 'canceled') return;
    const was = item.state;
    item.sent = offset;
    item.state = 'uploading';
    render(item);
    if (was === 'retrying') announce(`Upload of ${item.label} resumed at ${percent(offset, item.size ?? item.blob.size)}%.`);
  }

  function retrying(item) {
    if (item.state === 'canceled' || item.state === 'retrying') return;
    item.state = 'retrying';
    render(item);
    announce(`Upload of ${item.label}: ${RETRYING}`);
  }

  function fail(item, message, retryable) {
    item.state = 'error';
    item.row.dataset.state = 'error';
    item.progress.max = 1;
    item.progress.value = 0;
    item.status.textContent = '';
    item.errorEl.textContent = message;
    item.errorEl.hidden = false;
    item.retry.hidden = !retryable;
    item.cancel.setAttribute('aria-label', `Dismiss ${item.label}`);
    item.cancel.title = 'Dismiss';
  }

  function removeRow(item) {
    const i = queue.indexOf(item);
    if (i >= 0) queue.splice(i, 1);
    item.row.remove();
    panel.hidden = list.children.length === 0;
  }

  function makeItem({ blob, name, recordedAt, size }) {
    const label = name || 'New recording';
    const progress = h('progress', { max: '1', value: '0', 'aria-label': `Upload progress of ${label}` });
    const status = h('span', { class: 'upload-status', 'data-test': 'upload-status' });
    const errorEl = h('p', { class: 'upload-error', 'data-test': 'upload-error', role: 'alert', hidden: true });
    const cancel = h('button', { type: 'button', class: 'icon-btn small', 'data-test': 'upload-cancel', 'aria-label': `Cancel upload of ${label}`, title: 'Cancel' }, icon('close'));
    const retry = h('button', { type: 'button', class: 'icon-btn small', 'data-test': 'upload-retry', 'aria-label': `Retry upload of ${label}`, title: 'Retry', hidden: true }, icon('retry'));
    const row = h('li', { class: 'upload-item', 'data-test': 'upload-item' },
      h('div', { class: 'upload-head' },
        h('span', { class: 'upload-name', title: label }, label),
        status, retry, cancel),
      progress, errorEl);
    // One key per file: a retry of the same file can never store it twice.
    const item = { blob, name, label, recordedAt, size, key: uuid(), state: 'queued', sent: 0, xhr: null, row, progress, status, errorEl, cancel, retry };
    queue.push(item);
    list.append(row);
    panel.hidden = false;
    return item;
  }

  function add({ blob, name, recordedAt }) {
    const item = makeItem({ blob, name, recordedAt });
    item.resumable = blob instanceof File && blob.size > RESUMABLE_MIN;
    if (item.resumable) {
      // The same file again (same name, size and time; or one the server has of that name and
      // size): continue where it stopped.
      item.resumeUrl = store.fileUrl(blob);
      const match = [...stopped.values()].find((s) => (item.resumeUrl
        ? s.url === item.resumeUrl
        : s.upload.name === blob.name && s.upload.length === blob.size));
      if (match) {
        item.resumeUrl = match.url;
        dropStopped(match.upload.id);
      }
    }

    item.cancel.addEventListener('click', () => {
      const running = ['uploading', 'retrying', 'processing'].includes(item.state);
      if (item.resumable) {
        const url = item.tus?.url || item.resumeUrl;
        item.tus?.abort();
        // A canceled upload is not resumed later: its bytes go too.
        if (url && item.state !== 'done') {
          deleteUpload(url).catch(() => {});
          store.forgetFile(item.blob);
        }
      } else if (running) {
        item.xhr.abort();
      }
      if (running) item.state = 'canceled';
      removeRow(item);
    });
    onRetry(item);

    const max = ctx.server.max_upload_size;
    if (max && blob.size > max) {
      fail(item, `“${item.label}” is ${formatSize(blob.size)}; this server accepts files up to ${formatSize(max)}.`, false);
      return;
    }
    render(item);
    pump();
  }

  /** Retry puts a failed upload back in the queue, as it was before its first try. */
  function onRetry(item) {
    item.retry.addEventListener('click', () => {
      item.errorEl.hidden = true;
      item.retry.hidden = true;
      item.cancel.setAttribute('aria-label', `Cancel upload of ${item.label}`);
      item.cancel.title = 'Cancel';
      item.state = 'queued';
      item.sent = 0;
      render(item);
      pump();
    });
  }

  function pump() {
    while (active < PARALLEL) {
      const next = queue.find((i) => i.state === 'queued');
      if (!next) return;
      if (next.resumable) startResumable(next);
      else start(next);
    }
  }

  /** The recording a finished upload made, shown at the top of the list. */
  async function landed(item, recordingId) {
    item.state = 'done';
    render(item);
    announce(`${item.label} uploaded.`);
    try {
      ctx.uploaded(await api('GET', `/recordings/${encodeURIComponent(recordingId)}`));
    } catch {
      ctx.listChanged();
    }
    setTimeout(() => removeRow(item), 2500);
  }

  async function startResumable(item) {
    active++;
    item.state = 'uploading';
    render(item);
    let release = null;
    const lock = async (url) => {
      release?.();
      release = await holdLock(fileLock(url));
    };
    const file = item.blob;
    const upload = new FileUpload(file, {
      url: item.tus?.url || item.resumeUrl,
      metadata: { filename: item.name, recorded_at: item.recordedAt },
      onCreated: (url) => {
        store.rememberFile(file, url);
        lock(url);
      },
      onProgress: (offset) => acknowledged(item, offset),
      onRetrying: () => retrying(item),
    });
    item.tus = upload;
    if (upload.url) lock(upload.url);
    try {
      const { recordingId } = await upload.run();
      store.forgetFile(file);
      if (item.state !== 'canceled') await landed(item, recordingId);
    } catch (e) {
      if (item.state === 'canceled' || e.name === 'AbortError') return;
      if (e.status === 401) ctx.sessionLost?.();
      // Refused for good (not audio, too large): the server dropped it; nothing to resume.
      if (e.status >= 400 && e.status < 500) store.forgetFile(file);
      fail(item, e.message, e.status === 0 || e.status >= 500);
    } finally {
      release?.();
      active--;
      pump();
    }
  }

  function start(item) {
    active++;
    item.state = 'uploading';
    render(item);
    const params = [];
    if (item.name) params.push(`name=${encodeURIComponent(item.name)}`);
    if (item.recordedAt) params.push(`recorded_at=${encodeURIComponent(item.recordedAt)}`);
    const xhr = new XMLHttpRequest();
    item.xhr = xhr;
    xhr.open('POST', `/api/v1/recordings${params.length ? `?${params.join('&')}` : ''}`);
    xhr.withCredentials = true;
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.setRequestHeader('Idempotency-Key', item.key);
    xhr.setRequestHeader('Content-Type', item.blob.type || 'application/octet-stream');
    xhr.upload.addEventListener('progress', (e) => {
      if (item.state !== 'uploading') return;
      item.sent = e.loaded;
      render(item);
    });
    xhr.upload.addEventListener('load', () => {
      if (item.state !== 'uploading') return;
      item.state = 'processing';
      render(item);
    });
    const settle = () => {
      active--;
      pump();
    };
    xhr.addEventListener('load', () => {
      settle();
      if (item.state === 'canceled') return;
      if (xhr.status === 200 || xhr.status === 201) {
        let rec = null;
        try {
          rec = JSON.parse(xhr.responseText);
        } catch {
          // fall through to a refresh
        }
        item.state = 'done';
        render(item);
        announce(`${item.label} uploaded.`);
        if (rec) ctx.uploaded(rec);
        else ctx.listChanged();
        setTimeout(() => removeRow(item), 2500);
      } else {
        const error = errorFrom(xhr.status, xhr.responseText, xhr.getResponseHeader('Retry-After'));
        if (xhr.status === 401) ctx.sessionLost?.();
        fail(item, error.message, xhr.status >= 500 && xhr.status !== 507);
      }
    });
    xhr.addEventListener('error', () => {
      settle();
      if (item.state !== 'canceled') fail(item, 'The upload was interrupted: the server could not be reached.', true);
    });
    xhr.addEventListener('abort', () => {
      settle();
    });
    xhr.send(item.blob);
  }

  // ---------- after a reload ----------

  function dropStopped(id) {
    const entry = stopped.get(id);
    if (!entry) return;
    stopped.delete(id);
    entry.row.remove();
    panel.hidden = list.children.length === 0;
  }

  /** An upload that stopped on an earlier visit: how far it got, resume by choosing the file. */
  function addStopped(upload) {
    const name = upload.name || 'a file';
    const pct = percent(upload.offset, upload.length);
    const url = urlOf(upload.id);
    const progress = h('progress', { max: String(upload.length || 1), value: String(upload.offset), 'aria-label': `Upload progress of ${name}` });
    const choose = h('button', { type: 'button', class: 'btn small', 'data-test': 'upload-choose', 'aria-label': `Choose ${name} again to resume its upload` }, 'Choose File…');
    const discard = h('button', { type: 'button', class: 'btn small ghost', 'data-test': 'upload-discard', 'aria-label': `Discard the upload of ${name}` }, 'Discard');
    const row = h('li', { class: 'upload-item', 'data-test': 'upload-stopped', 'data-state': 'stopped', 'data-id': upload.id },
      h('div', { class: 'upload-head' },
        h('span', { class: 'upload-name', title: name }, name),
        h('span', { class: 'upload-status' }, `${formatSize(upload.offset)} of ${formatSize(upload.length)}`)),
      progress,
      h('p', { class: 'upload-note', 'data-test': 'upload-note' }, `Upload of ${name} stopped at ${pct}% — choose the file again to resume.`),
      h('div', { class: 'upload-actions' }, choose, discard));
    choose.addEventListener('click', () => ctx.pickFiles());
    discard.addEventListener('click', async () => {
      const ok = await confirmDialog({
        title: 'Discard this upload?',
        message: `The ${formatSize(upload.offset)} of “${name}” already uploaded will be deleted.`,
        ok: 'Discard',
      });
      if (!ok) return;
      try {
        await deleteUpload(url);
      } catch (e) {
        if (e.status !== 404) {
          reportError(e);
          return;
        }
      }
      for (const f of store.files()) if (f.url === url) store.forgetKey(f.key);
      dropStopped(upload.id);
      ctx.refreshUsage();
    });
    stopped.set(upload.id, { upload, url, row });
    list.append(row);
    panel.hidden = false;
  }

  /** A take being recorded elsewhere (another browser or device), or one that died there. */
  function addElsewhere(upload) {
    const name = upload.name || 'A recording';
    const dismiss = h('button', { type: 'button', class: 'icon-btn small', 'aria-label': `Dismiss the note about ${name}`, title: 'Dismiss' }, icon('close'));
    const row = h('li', { class: 'upload-item', 'data-test': 'upload-elsewhere', 'data-state': 'elsewhere', 'data-id': upload.id },
      h('div', { class: 'upload-head' },
        h('span', { class: 'upload-name', title: name }, name),
        h('span', { class: 'upload-status' }, `${formatSize(upload.offset)} so far`), dismiss),
      h('p', { class: 'upload-note' },
        'Being recorded on another device, or interrupted there. It is saved when that recording ends, or within a day.'));
    dismiss.addEventListener('click', () => {
      row.remove();
      panel.hidden = list.children.length === 0;
    });
    list.append(row);
    panel.hidden = false;
  }

  /** On load: list uploads that stopped, forget finished ones. */
  async function restore() {
    try {
      await restoreNow();
    } finally {
      panel.dataset.restored = '1';
    }
  }

  async function restoreNow() {
    let open;
    try {
      open = (await api('GET', '/uploads')).uploads;
    } catch (e) {
      if (e.status !== 401) console.warn('could not list incomplete uploads', e);
      return;
    }
    const byId = new Map(open.map((u) => [u.id, u]));
    for (const f of store.files()) {
      if (!byId.has(uploadId(f.url))) store.forgetKey(f.key);
    }
    for (const upload of byId.values()) {
      const url = urlOf(upload.id);
      // Another tab of this browser is on it: not stopped.
      if (await lockHeld(fileLock(url))) continue;
      if (queue.some((i) => i.tus?.url === url)) continue;
      if (upload.length != null) addStopped(upload);
      else if (upload.offset > 0) addElsewhere(upload);
    }
  }

  return {
    element: panel,
    /** Files from the picker or a drop. */
    addFiles(files) {
      for (const file of files) {
        const recordedAt = file.lastModified ? new Date(file.lastModified).toISOString() : null;
        add({ blob: file, name: file.name, recordedAt });
      }
    },
    /** A recording made in the browser, in one request. */
    addBlob: add,
    restore,
    busy: () => queue.some((i) => ['queued', 'uploading', 'retrying', 'processing'].includes(i.state)),
  };
}
