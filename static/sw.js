// The service worker: the app shell from a cache when the network is away, so the recorder
// opens and records with no connection at all. The server fills in VERSION (a hash of every
// file of the UI) and SHELL (their paths): a new UI is a new worker, whose cache replaces the
// old one. Pages are never reloaded by it, so a take in progress is never interrupted; each
// online load gets the current files from the network first (the cache is the fallback).
const VERSION = 'dev';
const SHELL = [];
const CACHE = `recorder-shell-${VERSION}`;
/** How long a request waits for the network before the cached copy is used. */
const NETWORK_TIMEOUT_MS = 4000;

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(SHELL.map((path) => new Request(path, { cache: 'no-cache' })));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('recorder-shell-') && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

/** The UI's pages (its views): each is the index. */
const PAGES = ['/', '/recordings', '/trash', '/account'];

/** Whether the worker answers this request: the shell's own files and the UI's pages. */
function isShell(url, request) {
  if (url.origin !== self.location.origin || request.method !== 'GET') return false;
  if (request.mode === 'navigate') return PAGES.includes(url.pathname.replace(/\/$/, '') || '/');
  return SHELL.includes(url.pathname);
}

async function networkFirst(request, url) {
  const cache = await caches.open(CACHE);
  // A page of the UI (/, /trash, /account) is the index.
  const key = request.mode === 'navigate' && !SHELL.includes(url.pathname) ? '/' : url.pathname;
  try {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), NETWORK_TIMEOUT_MS);
    const response = await fetch(request, { signal: controller.signal });
    clearTimeout(timer);
    if (response.ok && key === url.pathname && SHELL.includes(key)) await cache.put(key, response.clone());
    return response;
  } catch (error) {
    const cached = await cache.match(key);
    if (cached) return cached;
    throw error;
  }
}

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (!isShell(url, event.request)) return;
  event.respondWith(networkFirst(event.request, url));
});

// Background Sync, where the browser has it: the pages hear it and send their outbox.
self.addEventListener('sync', (event) => {
  if (event.tag !== 'recorder-outbox') return;
  event.waitUntil((async () => {
    for (const client of await self.clients.matchAll({ type: 'window' })) client.postMessage({ type: 'outbox-sync' });
  })());
});
