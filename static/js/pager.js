// Keyset-paged, infinite-scroll loading of a list of recordings, shared by the list and trash views.
import { api } from './api.js';
import { h } from './dom.js';
import { reportError } from './ui.js';

function keep(key, page) {
  try {
    localStorage.setItem(key, JSON.stringify({ recordings: page.recordings }));
  } catch {
    // storage full or off: opening offline shows no list
  }
}

function readKept(key) {
  try {
    const page = JSON.parse(localStorage.getItem(key));
    return Array.isArray(page?.recordings) ? page : null;
  } catch {
    return null;
  }
}

/** Recordings a page holds. */
export const PAGE_SIZE = 50;

/** The query of one page: `limit`, then each non-empty `extra` parameter, then `cursor` if any. */
export function pageParams(cursor, extra = {}) {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  for (const [key, value] of Object.entries(extra)) {
    if (value) params.set(key, value);
  }
  if (cursor) params.set('cursor', cursor);
  return params;
}

function skeletonRows(n) {
  return Array.from({ length: n }, () => h('li', { class: 'rec skeleton', 'aria-hidden': 'true' },
    h('span', { class: 'sk-circle' }), h('span', { class: 'sk-lines' }, h('span'), h('span'))));
}

/**
 * Loads pages into `ul` as `sentinel` nears the screen, while `view` is shown.
 *
 * - `path(cursor)`: the API path of a page (`cursor` is null for the first).
 * - `render(rec)`: the new `li` of a recording; it also records it in `items` (id → { rec, li }).
 * - `skeletons`: how many placeholder rows to show until the first page arrives.
 * - `abortable`: a reload aborts the request under way.
 * - `renderState()`: redraws what surrounds the list, once a load is over (`pager.loading` is false).
 * - hooks: `onStart(reset)` as a load starts, `onLoaded()` on success, `onFailed()` on an error
 *   (before it is reported), `onSettled()` just before `renderState()`.
 *
 * `offline`, when given, keeps the first page (`{key, use()}`: a localStorage key, and whether
 * this load may use it): with no network the last one seen is shown and `onOffline()` is called.
 *
 * `ul.dataset.loaded` is '0' while a load is under way and '1' after; each load ends with
 * `ctx.markReady()`. Only the latest reload counts: answers to older ones are ignored.
 */
export function createPager({
  ctx, ul, sentinel, view, path, render, items, skeletons, abortable = false, renderState,
  onStart, onLoaded, onFailed, onSettled, offline = null, onOffline,
}) {
  let cursor = null;
  let loading = false;
  let generation = 0;
  let controller = null;
  let loadedOnce = false;

  async function load(reset) {
    if (reset) {
      generation++;
      controller?.abort();
      cursor = null;
    } else if (loading || !cursor) {
      return;
    }
    const mine = generation;
    let ok = false;
    controller = abortable ? new AbortController() : null;
    loading = true;
    ul.dataset.loaded = '0';
    if (reset && !loadedOnce) ul.replaceChildren(...skeletonRows(skeletons));
    onStart?.(reset);
    try {
      const page = await api('GET', path(cursor), undefined, { signal: controller?.signal });
      if (mine !== generation) return; // a newer reload took over
      if (reset) {
        items.clear();
        ul.replaceChildren();
      }
      for (const rec of page.recordings) {
        if (!items.has(rec.id)) ul.append(render(rec));
      }
      cursor = page.next_cursor;
      if (reset && offline?.use()) keep(offline.key, page);
      ok = true;
      loadedOnce = true;
      onLoaded?.();
    } catch (e) {
      if (mine !== generation) return;
      const kept = e.status === 0 && reset && offline?.use() ? readKept(offline.key) : null;
      if (kept) {
        // No network: the list as it was last seen (the page says it is offline).
        items.clear();
        ul.replaceChildren(...kept.recordings.map(render));
        cursor = null;
        onOffline?.();
        return;
      }
      if (!loadedOnce) ul.replaceChildren();
      onFailed?.();
      reportError(e);
    } finally {
      if (mine === generation) {
        loading = false;
        onSettled?.();
        renderState();
        ul.dataset.loaded = '1';
        ctx.markReady();
        // A tall screen may still show the sentinel: keep filling it (not after a failure).
        if (ok) requestAnimationFrame(more);
      }
    }
  }

  /** Loads the next page if the sentinel is on (or near) the screen. */
  function more() {
    if (!cursor || loading || view.hidden) return;
    if (sentinel.getBoundingClientRect().top < window.innerHeight + 400) load(false);
  }

  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) load(false);
  }, { rootMargin: '0px 0px 400px 0px' }).observe(sentinel);

  return {
    /** Loads the first page again, replacing what is shown. */
    reload: () => load(true),
    more,
    /** Forgets every item and the cursor (the server's list is now empty). */
    clear() {
      items.clear();
      ul.replaceChildren();
      cursor = null;
    },
    get loading() {
      return loading;
    },
    /** Whether pages remain to load. */
    get hasMore() {
      return Boolean(cursor);
    },
  };
}
