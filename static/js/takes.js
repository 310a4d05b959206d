// What the outbox holds, shown: the takes on this device that the server does not have yet,
// each "waiting to upload" or "uploading" with its progress and last error, and a way to try
// a refused one again or delete it from the device.
import { h } from './dom.js';
import { formatSize } from './format.js';
import { createOutbox } from './outbox.js';
import { confirmDialog, toast } from './ui.js';

export function createTakes(ctx) {
  const list = h('ul', { class: 'upload-list' });
  const summary = h('span', { class: 'outbox-summary', 'data-test': 'outbox-summary' });
  const panel = h('section', { class: 'uploads outbox card', 'data-test': 'outbox', 'aria-label': 'On this device', hidden: true },
    h('h2', { class: 'uploads-title' }, 'On this device ', summary), list);
  let rendering = false;
  let pending = false;

  const outbox = createOutbox({
    userId: ctx.me.user.id,
    onChange: () => schedule(),
    onUploaded: (recording, take) => {
      ctx.uploaded(recording);
      if (take.recovered) toast(`Recovered an interrupted recording: “${recording.name}”`);
    },
  });

  function schedule() {
    if (rendering) {
      pending = true;
      return;
    }
    rendering = true;
    requestAnimationFrame(async () => {
      try {
        await render();
      } catch (e) {
        console.warn('outbox view', e);
      } finally {
        rendering = false;
        if (pending) {
          pending = false;
          schedule();
        }
      }
    });
  }

  function row({ take, status }) {
    const uploading = status?.uploading && !take.failed;
    const state = take.state === 'recording' ? 'recording' : take.failed ? 'error' : uploading ? 'uploading' : 'waiting';
    const words = {
      recording: 'recording',
      waiting: 'waiting to upload',
      uploading: status && status.size ? `uploading, ${formatSize(status.sent)} of ${formatSize(status.size)}` : 'uploading',
      error: 'not uploaded',
    }[state];
    const progress = h('progress', { max: String(status?.size || take.size || 1), value: String(status?.sent || 0), 'aria-label': `Upload progress of ${take.name}` });
    const error = status?.error || take.error;
    const actions = [];
    if (take.failed) {
      const retry = h('button', { type: 'button', class: 'btn small', 'data-test': 'outbox-retry', 'aria-label': `Try sending ${take.name} again` }, 'Try Again');
      retry.addEventListener('click', () => outbox.retry(take.id));
      const remove = h('button', { type: 'button', class: 'btn small ghost', 'data-test': 'outbox-delete', 'aria-label': `Delete ${take.name} from this device` }, 'Delete');
      remove.addEventListener('click', async () => {
        const ok = await confirmDialog({
          title: 'Delete this recording from the device?',
          message: `“${take.name}” is not on the server. Deleted here, it is gone.`,
          ok: 'Delete',
        });
        if (ok) await outbox.discard(take);
      });
      actions.push(retry, remove);
    }
    return h('li', { class: 'upload-item', 'data-test': 'outbox-take', 'data-state': state, 'data-id': take.id },
      h('div', { class: 'upload-head' },
        h('span', { class: 'upload-name', title: take.name }, take.name),
        h('span', { class: 'upload-status', 'data-test': 'outbox-status' }, `${words} · ${formatSize(take.size)}`)),
      state === 'uploading' ? progress : null,
      error ? h('p', { class: 'upload-note', 'data-test': 'outbox-error' }, error) : null,
      actions.length ? h('div', { class: 'upload-actions' }, ...actions) : null);
  }

  async function render() {
    const items = await outbox.items();
    list.replaceChildren(...items.map(row));
    const waiting = items.filter((i) => i.take.state !== 'recording').length;
    summary.textContent = waiting ? `(${waiting === 1 ? '1 take' : `${waiting} takes`} not on the server yet)` : '';
    panel.hidden = items.length === 0;
    panel.dataset.rendered = '1';
  }

  async function start() {
    try {
      await outbox.recover();
    } catch (e) {
      console.warn('could not look at the outbox', e);
    }
    schedule();
    outbox.send();
  }

  return {
    element: panel,
    outbox,
    start,
    destroy: () => outbox.close(),
  };
}
