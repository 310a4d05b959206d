// Upload queue: raw-body XHR uploads (for progress), at most two at a time, one row each.
import { errorFrom } from './api.js';
import { h, icon } from './dom.js';
import { formatSize, uuid } from './format.js';

const PARALLEL = 2;

export function createUploads(ctx) {
  const list = h('ul', { class: 'upload-list' });
  const panel = h('section', { class: 'uploads card', 'aria-label': 'Uploads', hidden: true },
    h('h2', { class: 'uploads-title' }, 'Uploads'), list);
  const queue = [];
  let active = 0;

  function render(item) {
    const { row, progress, status } = item;
    row.dataset.state = item.state;
    if (item.state === 'queued') {
      status.textContent = `Waiting · ${formatSize(item.blob.size)}`;
    } else if (item.state === 'uploading') {
      progress.max = item.blob.size || 1;
      progress.value = item.sent;
      status.textContent = `${formatSize(item.sent)} of ${formatSize(item.blob.size)}`;
    } else if (item.state === 'processing') {
      progress.removeAttribute('value'); // indeterminate while the server checks the file
      status.textContent = 'Processing…';
    } else if (item.state === 'done') {
      progress.max = 1;
      progress.value = 1;
      status.textContent = 'Uploaded';
    }
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
    item.cancel.setAttribute('aria-label', `Dismiss ${item.name || 'upload'}`);
    item.cancel.title = 'Dismiss';
  }

  function removeRow(item) {
    const i = queue.indexOf(item);
    if (i >= 0) queue.splice(i, 1);
    item.row.remove();
    panel.hidden = list.children.length === 0;
  }

  function add({ blob, name, recordedAt }) {
    const label = name || 'New recording';
    const progress = h('progress', { max: '1', value: '0', 'aria-label': `Upload progress of ${label}` });
    const status = h('span', { class: 'upload-status' });
    const errorEl = h('p', { class: 'upload-error', 'data-test': 'upload-error', role: 'alert', hidden: true });
    const cancel = h('button', { type: 'button', class: 'icon-btn small', 'data-test': 'upload-cancel', 'aria-label': `Cancel upload of ${label}`, title: 'Cancel' }, icon('close'));
    const retry = h('button', { type: 'button', class: 'icon-btn small', 'aria-label': `Retry upload of ${label}`, title: 'Retry', hidden: true }, icon('retry'));
    const row = h('li', { class: 'upload-item', 'data-test': 'upload-item' },
      h('div', { class: 'upload-head' },
        h('span', { class: 'upload-name', title: label }, label),
        status, retry, cancel),
      progress, errorEl);
    // One key per file: a retry of the same file can never store it twice.
    const item = { blob, name, recordedAt, key: uuid(), state: 'queued', sent: 0, xhr: null, row, progress, status, errorEl, cancel, retry };

    cancel.addEventListener('click', () => {
      if (item.state === 'uploading' || item.state === 'processing') {
        item.state = 'canceled';
        item.xhr.abort();
      }
      removeRow(item);
    });
    retry.addEventListener('click', () => {
      item.errorEl.hidden = true;
      item.retry.hidden = true;
      item.cancel.setAttribute('aria-label', `Cancel upload of ${label}`);
      item.cancel.title = 'Cancel';
      item.state = 'queued';
      item.sent = 0;
      render(item);
      pump();
    });

    queue.push(item);
    list.append(row);
    panel.hidden = false;

    const max = ctx.server.max_upload_size;
    if (max && blob.size > max) {
      fail(item, `“${label}” is ${formatSize(blob.size)}; this server accepts files up to ${formatSize(max)}.`, false);
      return;
    }
    render(item);
    pump();
  }

  function pump() {
    while (active < PARALLEL) {
      const next = queue.find((i) => i.state === 'queued');
      if (!next) return;
      start(next);
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
        if (rec) ctx.uploaded(rec);
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

  return {
    element: panel,
    /** Files from the picker or a drop. */
    addFiles(files) {
      for (const file of files) {
        const recordedAt = file.lastModified ? new Date(file.lastModified).toISOString() : null;
        add({ blob: file, name: file.name, recordedAt });
      }
    },
    /** A recording made in the browser. */
    addBlob: add,
    busy: () => queue.some((i) => i.state === 'queued' || i.state === 'uploading' || i.state === 'processing'),
  };
}
