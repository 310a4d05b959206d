// Live updates: the account's changes as they happen, from `GET /api/v1/events` (Server-Sent
// Events, signed in by the session cookie). EventSource reconnects by itself after a dropped
// connection and resumes with Last-Event-ID, so nothing is missed; a stream the server refused
// (or ended with `gone`) is opened afresh and the views list again.
import { api } from './api.js';

const FIRST_RETRY_MS = 2000;
const LAST_RETRY_MS = 60000;
/** A tab hidden this long lets go of its stream until it is shown again. */
const HIDDEN_MS = 30000;

/**
 * Opens the stream at once.
 * - `onChange(change)`: `{type, id, recording}` of each change, in order.
 * - `onOpen(first)`: a new stream is open; `first` is false for the streams after the first
 *   (changes may have been missed in between: catch up).
 * Returns `{ close() }`.
 */
export function createLive({ onChange, onOpen }) {
  let source = null;
  let closed = false;
  let timer = 0;
  let delay = FIRST_RETRY_MS;
  let opened = false;
  let paused = false;

  function open() {
    if (closed || paused || typeof EventSource === 'undefined') return;
    const first = !opened;
    opened = true;
    const es = new EventSource('/api/v1/events');
    let wasOpen = false;
    source = es;
    es.addEventListener('open', () => {
      if (source !== es) return;
      delay = FIRST_RETRY_MS;
      document.body.dataset.live = '1';
      // A reconnection of this same stream resumes with Last-Event-ID: its replay brings
      // whatever was missed. A new stream starts from now.
      if (!wasOpen) onOpen(first);
      wasOpen = true;
    });
    es.addEventListener('change', (e) => {
      if (source !== es) return;
      let change;
      try {
        change = JSON.parse(e.data);
      } catch {
        return;
      }
      if (change && typeof change.id === 'string') onChange(change);
    });
    // The stream's place fell out of the server's kept history: start from now, list again.
    es.addEventListener('gone', () => {
      if (source !== es) return;
      restart(0);
    });
    es.addEventListener('error', () => {
      if (source !== es) return;
      delete document.body.dataset.live;
      if (es.readyState !== EventSource.CLOSED) return; // reconnecting by itself
      // Refused (signed out, or an error in between): a 401 here signs the page out.
      api('GET', '/me').then(() => restart(delay), (err) => {
        if (err.status !== 401) restart(delay);
      });
      delay = Math.min(LAST_RETRY_MS, delay * 2);
    });
  }

  /** Drops the stream and opens a new one (from now) after `ms`. */
  function restart(ms) {
    source?.close();
    source = null;
    delete document.body.dataset.live;
    clearTimeout(timer);
    timer = setTimeout(open, ms);
  }

  // A browser holds at most six connections to a server over HTTP/1.1, and each stream keeps
  // one: a page left for another (kept in the back-forward cache), or a tab hidden for a while,
  // lets go of its stream; shown again, it opens a new one and catches up.
  let hiddenTimer = 0;
  function pause() {
    clearTimeout(timer);
    clearTimeout(hiddenTimer);
    paused = true;
    source?.close();
    source = null;
    delete document.body.dataset.live;
  }
  function resume() {
    clearTimeout(hiddenTimer);
    if (!paused) return;
    paused = false;
    if (!source) open();
  }
  function onPageShow(e) {
    if (e.persisted) resume();
  }
  function onVisibility() {
    if (document.visibilityState === 'hidden') {
      clearTimeout(hiddenTimer);
      hiddenTimer = setTimeout(pause, HIDDEN_MS);
    } else {
      resume();
    }
  }
  window.addEventListener('pagehide', pause);
  window.addEventListener('pageshow', onPageShow);
  document.addEventListener('visibilitychange', onVisibility);

  open();

  return {
    close() {
      closed = true;
      pause();
      window.removeEventListener('pagehide', pause);
      window.removeEventListener('pageshow', onPageShow);
      document.removeEventListener('visibilitychange', onVisibility);
    },
  };
}
