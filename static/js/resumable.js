// Resumable uploads over tus 1.0.0 (/api/v1/uploads): create, PATCH in pieces, and after a
// network error or a 5xx ask the server where it stands (HEAD) and continue from there. The
// offset the server answers is durable, so progress is what the server acknowledged.
import { ApiError, errorFrom } from './api.js';

const TUS_VERSION = '1.0.0';
const ENDPOINT = '/api/v1/uploads';
/** Bytes per PATCH. */
export const CHUNK_SIZE = 8 << 20;
/** Files larger than this go through a resumable upload; smaller ones in one request. */
export const RESUMABLE_MIN = 4 << 20;
/** Waits between attempts after a failure (the last one repeats). */
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000];

/** UTF-8 text as base64 (tus metadata values). */
function base64(text) {
  let binary = '';
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** tus `Upload-Metadata`: `key base64,flag` (true is a bare key; null and false are left out). */
export function metadataHeader(meta) {
  return Object.entries(meta)
    .filter(([, value]) => value != null && value !== false)
    .map(([key, value]) => (value === true ? key : `${key} ${base64(String(value))}`))
    .join(',');
}

/** The upload's id from its URL (`/api/v1/uploads/{id}`). */
export function uploadId(url) {
  return new URL(url, location.href).pathname.split('/').pop();
}

/**
 * Whether trying again later can help: no answer at all, a timeout, or a server error (but not
 * a full disk, nor 429, which here means too many incomplete uploads: waiting does not help).
 */
export function isTransient(error) {
  if (!(error instanceof ApiError)) return false;
  return error.status === 0 || error.status === 408 ||
    (error.status >= 500 && error.status !== 501 && error.status !== 507);
}

function offsetHeader(res) {
  const text = res.headers.get('Upload-Offset');
  if (text == null || !/^\d+$/.test(text)) return null;
  return Number(text);
}

/** One tus request; resolves with the response, rejects with an ApiError (status 0: no answer). */
async function tus(method, url, { headers = {}, body, signal } = {}) {
  let res;
  try {
    res = await fetch(url, {
      method,
      headers: { 'Tus-Resumable': TUS_VERSION, ...headers },
      body,
      credentials: 'same-origin',
      cache: 'no-store',
      signal,
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'Could not reach the server.');
  }
  if (!res.ok) {
    const text = method === 'HEAD' ? '' : await res.text().catch(() => '');
    const error = errorFrom(res.status, text, res.headers.get('Retry-After'));
    error.offset = offsetHeader(res); // a 409 says where to continue
    throw error;
  }
  return res;
}

/** Creates an upload; returns its URL. */
export async function createUpload({ length = null, metadata = {}, signal } = {}) {
  const headers = { 'Upload-Metadata': metadataHeader(metadata) };
  if (length == null) headers['Upload-Defer-Length'] = '1';
  else headers['Upload-Length'] = String(length);
  const res = await tus('POST', ENDPOINT, { headers, signal });
  const location = res.headers.get('Location');
  if (!location) throw new ApiError(res.status, 'bad_response', 'The server did not say where the upload is.');
  return new URL(location, window.location.href).pathname;
}

/** Where an upload stands: `{offset, length, recordingId}` (length null while deferred). */
export async function uploadStatus(url, { signal } = {}) {
  const res = await tus('HEAD', url, { signal });
  const length = res.headers.get('Upload-Length');
  return { offset: offsetHeader(res) ?? 0, length: length == null ? null : Number(length), recordingId: res.headers.get('Recording-Id') };
}

/** Appends bytes at `offset` (and fixes the length when given); returns `{offset, recordingId}`. */
export async function appendBytes(url, offset, body, { length = null, signal } = {}) {
  const headers = { 'Content-Type': 'application/offset+octet-stream', 'Upload-Offset': String(offset) };
  if (length != null) headers['Upload-Length'] = String(length);
  const res = await tus('PATCH', url, { headers, body, signal });
  const next = offsetHeader(res);
  if (next == null) throw new ApiError(res.status, 'bad_response', 'The server did not say how much it has.');
  return { offset: next, recordingId: res.headers.get('Recording-Id') };
}

export async function deleteUpload(url) {
  await tus('DELETE', url);
}

/**
 * What one pass of a resumable upload shares: retrying with backoff, waiting that an abort or
 * the browser coming back online cuts short, and the callbacks the page shows progress with.
 */
class Resumable {
  constructor({ onProgress, onRetrying, onCreated } = {}) {
    this.onProgress = onProgress || (() => {});
    this.onRetrying = onRetrying || (() => {});
    this.onCreated = onCreated || (() => {});
    this.controller = new AbortController();
    this.url = null;
    this.offset = 0;
    this.failures = 0;
  }

  get aborted() {
    return this.controller.signal.aborted;
  }

  /** Stops at once: the request in flight is aborted and the run rejects with an AbortError. */
  abort() {
    this.controller.abort();
  }

  /** Waits before the next attempt; a browser that comes back online ends the wait early. */
  pause() {
    const ms = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)];
    this.failures++;
    const signal = this.controller.signal;
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        window.removeEventListener('online', early);
        signal.removeEventListener('abort', stop);
      };
      const early = () => { done(); setTimeout(resolve, 250); };
      const stop = () => { done(); reject(new DOMException('Aborted', 'AbortError')); };
      const timer = setTimeout(() => { done(); resolve(); }, ms);
      window.addEventListener('online', early);
      signal.addEventListener('abort', stop);
    });
  }

  /** Runs `attempt` until it succeeds or fails for good; transient failures wait and retry. */
  async retrying(attempt) {
    for (;;) {
      if (this.aborted) throw new DOMException('Aborted', 'AbortError');
      try {
        const result = await attempt();
        return result;
      } catch (e) {
        if (!isTransient(e) || this.aborted) throw e;
        this.onRetrying(e);
        await this.pause();
      }
    }
  }

  /** After a failure: asks the server where the upload stands (HEAD, retried until it answers). */
  async resync() {
    const status = await this.retrying(() => uploadStatus(this.url, { signal: this.controller.signal }));
    this.offset = status.offset;
    return status;
  }

  /**
   * Sends `body` (the bytes from `this.offset`). Returns the recording's id once the upload is
   * complete, else null. A transient failure is answered with a HEAD and null: the caller's loop
   * continues from the offset the server has.
   */
  async send(body, length) {
    try {
      const result = await appendBytes(this.url, this.offset, body, { length, signal: this.controller.signal });
      this.failures = 0;
      this.offset = result.offset;
      this.onProgress(this.offset);
      return result.recordingId;
    } catch (e) {
      if (e.status === 409 && e.offset != null) {
        if (e.offset === this.offset) {
          // Complete already (an earlier request did get through), or something is amiss.
          const status = await this.resync();
          if (status.recordingId) return status.recordingId;
          throw e;
        }
        // An earlier request got further than its answer said: continue from there.
        this.offset = e.offset;
        this.onProgress(this.offset);
        return null;
      }
      if (!isTransient(e) || this.aborted) throw e;
      this.onRetrying(e);
      await this.pause();
      const status = await this.resync();
      this.onProgress(this.offset);
      return status.recordingId;
    }
  }
}

/**
 * A file's resumable upload. `url`, when given, is an earlier upload of the same file: it is
 * continued from the server's offset (or started afresh when the server no longer has it).
 * `run()` resolves with `{recordingId, url}`.
 */
export class FileUpload extends Resumable {
  constructor(file, { url = null, metadata = {}, chunkSize = CHUNK_SIZE, ...callbacks } = {}) {
    super(callbacks);
    this.file = file;
    this.url = url;
    this.metadata = metadata;
    this.chunkSize = chunkSize;
    /** The offset the upload was continued from (0 for a fresh one). */
    this.resumedAt = 0;
  }

  async run() {
    const size = this.file.size;
    if (this.url) {
      try {
        const status = await this.resync();
        if (status.recordingId) return { recordingId: status.recordingId, url: this.url };
        if (status.length !== size) throw new ApiError(404, 'not_found', 'another file');
        this.resumedAt = status.offset;
        this.onProgress(this.offset);
      } catch (e) {
        if (e.status !== 404) throw e;
        this.url = null; // expired, deleted, or not this file: start afresh
      }
    }
    if (!this.url) {
      this.url = await this.retrying(() => createUpload({ length: size, metadata: this.metadata, signal: this.controller.signal }));
      this.offset = 0;
      this.onCreated(this.url);
      this.onProgress(0);
    }
    for (;;) {
      const end = Math.min(size, this.offset + this.chunkSize);
      const recordingId = await this.send(this.file.slice(this.offset, end));
      if (recordingId) return { recordingId, url: this.url };
      if (this.offset >= size) {
        // Every byte is there, yet no recording was named (the answer was lost): ask.
        const status = await this.resync();
        if (status.recordingId) return { recordingId: status.recordingId, url: this.url };
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// What this browser remembers (localStorage, per user): the upload URL of each file by name, size
// and modification time, to resume it after a reload.

function prefix(userId) {
  return `recorder.uploads.${userId}.`;
}

function fileKey(userId, file) {
  return `${prefix(userId)}file.${file.name}|${file.size}|${file.lastModified}`;
}

function read(key) {
  try {
    return JSON.parse(localStorage.getItem(key));
  } catch {
    return null;
  }
}

function write(key, value) {
  try {
    if (value == null) localStorage.removeItem(key);
    else localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // storage full or disabled: resuming after a reload will not work, uploading still does
  }
}

function entries(userId, kind) {
  const start = `${prefix(userId)}${kind}.`;
  const out = [];
  try {
    for (let i = 0; i < localStorage.length; i++) {
      const key = localStorage.key(i);
      if (key?.startsWith(start)) out.push([key, read(key)]);
    }
  } catch {
    // no storage
  }
  return out.filter(([, value]) => value && typeof value.url === 'string');
}

export function rememberedUploads(userId) {
  return {
    fileUrl: (file) => read(fileKey(userId, file))?.url || null,
    rememberFile: (file, url) => write(fileKey(userId, file), { url, name: file.name, size: file.size }),
    forgetFile: (file) => write(fileKey(userId, file), null),
    /** `[{key, url, name, size}]` */
    files: () => entries(userId, 'file').map(([key, v]) => ({ key, ...v })),
    forgetKey: (key) => write(key, null),
  };
}

// ---------------------------------------------------------------------------------------------
// Web Locks: a tab holds `recorder-upload-<id>` while it uploads a file (and `recorder-take-<id>`
// while it records a take, outbox.js); other tabs look before they touch one.
export const fileLock = (url) => `recorder-upload-${uploadId(url)}`;

/** Takes a lock and holds it until the returned release() is called (null without Web Locks). */
export async function holdLock(name) {
  if (!navigator.locks) return null;
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  await new Promise((granted) => {
    navigator.locks.request(name, () => {
      granted();
      return held;
    }).catch(() => {});
  });
  return release;
}

/**
 * Runs `fn` holding the lock if nobody holds it; resolves with its result, or with `busy` when
 * another tab holds the lock (or Web Locks are missing: then nobody can tell).
 */
export async function ifLockFree(name, fn, busy = undefined) {
  if (!navigator.locks) return busy;
  return navigator.locks.request(name, { ifAvailable: true }, (lock) => (lock ? fn() : busy));
}

/** Whether another tab holds the lock now. */
export async function lockHeld(name) {
  if (!navigator.locks) return false;
  return navigator.locks.request(name, { ifAvailable: true }, (lock) => !lock);
}
