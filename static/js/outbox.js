// The outbox: takes recorded on this device, kept in the browser's own storage (IndexedDB)
// until the server has them. While recording, each second of audio is written here before
// anything is sent, so a crash, a closed tab, a dead battery or no network loses at most the
// last second. Finished takes are uploaded with tus (resumable) whenever the server can be
// reached: at once, on the `online` event, at the next start, and on a Background Sync. A take
// leaves the device only when the server named its recording and that recording's SHA-256 is
// the SHA-256 of the bytes kept here.
import { api } from './api.js';
import { FileUpload, ifLockFree, isTransient } from './resumable.js';

const DB_NAME = 'recorder-outbox';
const DB_VERSION = 1;
/** Only one tab uploads the outbox at a time. */
const SENDER_LOCK = 'recorder-outbox-sender';

export const takeLock = (id) => `recorder-take-${id}`;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error || new DOMException('Aborted', 'AbortError'));
    tx.onerror = () => reject(tx.error);
  });
}

let opening = null;
function database() {
  if (!opening) {
    opening = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, DB_VERSION);
      req.onupgradeneeded = () => {
        const db = req.result;
        if (!db.objectStoreNames.contains('takes')) db.createObjectStore('takes', { keyPath: 'id' });
        if (!db.objectStoreNames.contains('chunks')) db.createObjectStore('chunks', { keyPath: ['take', 'seq'] });
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
      req.onblocked = () => reject(new Error('The browser’s storage is busy in another tab.'));
    });
    opening.catch(() => { opening = null; });
  }
  return opening;
}

async function sha256Hex(blob) {
  const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** Whether this browser can keep takes (IndexedDB and a secure context for hashing). */
export function outboxAvailable() {
  return typeof indexedDB !== 'undefined' && !!globalThis.crypto?.subtle;
}

/**
 * The outbox of one user on this device. `onChange()` is called whenever what it shows
 * changes; `onUploaded(recording, take)` when a take is on the server and left the device.
 */
export function createOutbox({ userId, onChange = () => {}, onUploaded = () => {} }) {
  /** Progress and errors of the takes this tab is sending, by take id (not stored). */
  const live = new Map();
  let sending = null;
  let again = false;
  let stopped = false;
  let current = null; // the FileUpload in flight

  async function all() {
    const db = await database();
    const takes = await request(db.transaction('takes').objectStore('takes').getAll());
    return takes.filter((t) => t.user === userId).sort((a, b) => a.created - b.created);
  }

  async function put(take) {
    const db = await database();
    const tx = db.transaction('takes', 'readwrite');
    tx.objectStore('takes').put(take);
    await done(tx);
  }

  async function get(id) {
    const db = await database();
    return request(db.transaction('takes').objectStore('takes').get(id));
  }

  /** The take's bytes, its pieces in order. */
  async function blobOf(take) {
    const db = await database();
    const range = IDBKeyRange.bound([take.id, 0], [take.id, Number.MAX_SAFE_INTEGER]);
    const chunks = await request(db.transaction('chunks').objectStore('chunks').getAll(range));
    return new Blob(chunks.map((c) => c.blob), { type: take.mime });
  }

  async function remove(id) {
    const db = await database();
    const tx = db.transaction(['takes', 'chunks'], 'readwrite');
    tx.objectStore('takes').delete(id);
    tx.objectStore('chunks').delete(IDBKeyRange.bound([id, 0], [id, Number.MAX_SAFE_INTEGER]));
    await done(tx);
    live.delete(id);
  }

  /** A new take, being recorded: `{id, name, mime, recordedAt}`. */
  async function begin({ id, name, mime, recordedAt }) {
    const take = {
      id, user: userId, name, mime, recordedAt, created: Date.now(), state: 'recording',
      seq: 0, size: 0, marks: [], url: null, error: null,
    };
    await put(take);
    onChange();
    return take;
  }

  /**
   * One piece of a take, and its marks so far, written in one transaction: what is here is
   * all that a crash can keep.
   */
  async function append(take, blob, marks) {
    const db = await database();
    const tx = db.transaction(['takes', 'chunks'], 'readwrite');
    tx.objectStore('chunks').put({ take: take.id, seq: take.seq, blob });
    take.seq += 1;
    take.size += blob.size;
    take.marks = [...marks];
    tx.objectStore('takes').put(take);
    await done(tx);
    onChange(); // its size on the outbox's row grows as it is recorded
  }

  /** The take is complete (stopped, or found cut short): it joins the queue. */
  async function finish(take, marks) {
    const fresh = (await get(take.id)) || take;
    fresh.marks = [...marks];
    fresh.state = 'ready';
    await put(fresh);
    onChange();
    send();
    // Where the browser has Background Sync, it wakes the page to send when the network is back.
    navigator.serviceWorker?.ready.then((reg) => reg.sync?.register('recorder-outbox')).catch(() => {});
  }

  async function discard(take) {
    await remove(take.id);
    onChange();
  }

  /**
   * Takes a dead tab was recording (nobody holds their lock): finished with what was kept.
   * Returns how many.
   */
  async function recover() {
    let recovered = 0;
    for (const take of await all()) {
      if (take.state !== 'recording') continue;
      const finished = await ifLockFree(takeLock(take.id), async () => {
        take.state = 'ready';
        take.recovered = true;
        await put(take);
        return true;
      }, false);
      if (finished) recovered += 1;
    }
    if (recovered) onChange();
    return recovered;
  }

  /** Uploads one ready take; resolves with the stored recording, or throws. */
  async function upload(take) {
    const blob = await blobOf(take);
    if (blob.size === 0) {
      await remove(take.id);
      return null;
    }
    if (!take.sha256 || take.hashedSize !== blob.size) {
      take.sha256 = await sha256Hex(blob);
      take.hashedSize = blob.size;
      await put(take);
    }
    const metadata = { filename: take.name, recorded_at: take.recordedAt };
    if (take.marks.length) metadata.marks = take.marks.map((m) => Math.max(0, Math.round(m))).join(',');
    const status = { sent: 0, size: blob.size, error: null, uploading: true };
    live.set(take.id, status);
    onChange();
    current = new FileUpload(blob, {
      url: take.url,
      metadata,
      onCreated: (url) => {
        take.url = url;
        put(take).catch(() => {});
      },
      onProgress: (offset) => {
        status.sent = offset;
        status.error = null;
        onChange();
      },
      onRetrying: (e) => {
        status.error = e.status === 0 ? 'No connection to the server: it is sent when the connection is back.' : e.message;
        onChange();
      },
    });
    const { recordingId } = await current.run();
    current = null;
    const recording = await api('GET', `/recordings/${encodeURIComponent(recordingId)}`);
    if (recording.sha256 !== take.sha256) {
      throw Object.assign(new Error('The server’s copy differs from the one on this device, so it is kept here. Try again to send it anew.'), { mismatch: true });
    }
    await remove(take.id);
    return recording;
  }

  async function drain() {
    const tried = new Set();
    for (;;) {
      const ready = (await all()).filter((t) => t.state === 'ready' && !t.failed && !tried.has(t.id));
      if (!ready.length || stopped) return;
      const take = ready[0];
      tried.add(take.id);
      try {
        const recording = await upload(take);
        if (recording) onUploaded(recording, take);
        onChange();
      } catch (e) {
        current = null;
        if (e.name === 'AbortError') return;
        const status = live.get(take.id) || {};
        status.uploading = false;
        status.error = e.message || String(e);
        live.set(take.id, status);
        const stored = await get(take.id);
        if (stored) {
          stored.error = status.error;
          // A refusal that waiting cannot fix (not audio, too large, a different copy) waits
          // for the person; a lost connection is tried again on the next occasion.
          if (!isTransient(e) && e.status !== 401 && e.status !== 0) stored.failed = true;
          if (e.mismatch) stored.url = null;
          await put(stored);
        }
        onChange();
        if (e.status === 0 || isTransient(e) || e.status === 401) return;
      }
    }
  }

  /** Sends what is ready, unless another tab is sending (one sender per device). */
  function send() {
    if (stopped) return Promise.resolve();
    if (sending) {
      again = true;
      return sending;
    }
    sending = (async () => {
      do {
        again = false;
        if (navigator.locks) {
          // Another tab holding the lock is sending: it sees these takes too.
          await navigator.locks.request(SENDER_LOCK, { ifAvailable: true }, (lock) => (lock ? drain() : null));
        } else {
          await drain();
        }
      } while (again && !stopped);
    })().finally(() => { sending = null; });
    sending.catch((e) => console.warn('outbox', e));
    return sending;
  }

  /** Tries a take that was refused again, from the start. */
  async function retry(id) {
    const take = await get(id);
    if (!take) return;
    take.failed = false;
    take.error = null;
    await put(take);
    live.delete(id);
    onChange();
    send();
  }

  const online = () => send();
  window.addEventListener('online', online);
  const fromWorker = (e) => { if (e.data?.type === 'outbox-sync') send(); };
  navigator.serviceWorker?.addEventListener('message', fromWorker);

  return {
    begin,
    append,
    finish,
    discard,
    recover,
    send,
    retry,
    /** `[{take, status}]`: what the outbox shows. */
    async items() {
      return (await all()).map((take) => ({ take, status: live.get(take.id) || null }));
    },
    close() {
      stopped = true;
      current?.abort();
      window.removeEventListener('online', online);
      navigator.serviceWorker?.removeEventListener('message', fromWorker);
    },
  };
}

/** Asks the browser to keep this site's storage (takes waiting to upload) under pressure. */
export function askPersistentStorage() {
  navigator.storage?.persisted?.().then((yes) => yes || navigator.storage.persist()).catch(() => {});
}
