// Entry point: load server info and the session, then show the sign-in screen or the app.
import { api, setUnauthorizedHandler } from './api.js';
import { h, icon } from './dom.js';
import { renderAuth } from './auth.js';
import { createPlayer } from './player.js';
import { createList } from './list.js';
import { createTrash } from './trash.js';
import { createAccount } from './account.js';
import { createLive } from './live.js';
import { createShareDialog } from './sharing.js';
import { createUploads } from './upload.js';
import { createRecorder, secureEnough } from './record.js';
import { createTakes } from './takes.js';
import { hideError, showError, toast } from './ui.js';
import { forgetAll as forgetWaveforms } from './waveform.js';

const root = document.getElementById('root');
let server = null;
let app = null;

function markReady() {
  document.body.dataset.ready = '1';
}

// What the page saw last time it reached the server: with no network it opens on these.
const OFFLINE_KEY = 'recorder.offline';

function remembered() {
  try {
    return JSON.parse(localStorage.getItem(OFFLINE_KEY)) || null;
  } catch {
    return null;
  }
}

function remember(value) {
  try {
    if (value) {
      localStorage.setItem(OFFLINE_KEY, JSON.stringify(value));
    } else {
      // Signed out: nothing of the account stays for the next person on this device (takes
      // not yet uploaded stay, under their owner, until that person signs in again).
      localStorage.removeItem(OFFLINE_KEY);
      for (const key of Object.keys(localStorage)) if (key.startsWith('recorder.list.')) localStorage.removeItem(key);
    }
  } catch {
    // no storage: opening offline will not work, the rest does
  }
}

function registerServiceWorker() {
  if (!('serviceWorker' in navigator) || !window.isSecureContext) return;
  navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch((e) => console.warn('no offline app shell', e));
}

async function boot() {
  registerServiceWorker();
  let me;
  try {
    const unauthorizedIsFine = (e) => (e.status === 401 ? null : Promise.reject(e));
    [server, me] = await Promise.all([api('GET', '/server'), api('GET', '/me').catch(unauthorizedIsFine)]);
  } catch (e) {
    const last = remembered();
    // No network: the app as it was last seen, marked offline; recording works.
    if (e.status === 0 && last?.me && last?.server) {
      server = last.server;
      startApp(last.me, { offline: true });
      return;
    }
    renderUnreachable(e);
    return;
  }
  if (me) {
    remember({ server, me });
    startApp(me);
  } else {
    remember(null);
    showSignIn();
  }
}

function renderUnreachable(error) {
  root.replaceChildren(h('div', { class: 'auth-screen' },
    h('main', { class: 'auth-card' },
      h('div', { class: 'auth-logo' }, icon('wave')),
      h('h1', { class: 'auth-title' }, 'Recorder'),
      h('p', { class: 'auth-subtitle' }, 'The server could not be reached.'),
      h('p', { class: 'muted' }, error.message),
      h('button', { type: 'button', class: 'btn primary wide', onclick: () => location.reload() }, 'Try Again'))));
  markReady();
}

function showSignIn(notice) {
  setUnauthorizedHandler(null);
  document.body.append(document.querySelector('[data-test=error]'));
  app?.destroy();
  app = null;
  hideError();
  document.title = 'Sign In · Recorder';
  renderAuth(root, {
    server,
    notice,
    onSignedIn: async () => {
      const me = await api('GET', '/me');
      remember({ server, me });
      startApp(me);
    },
  });
  markReady();
}

function startApp(me, { offline = false } = {}) {
  app?.destroy();
  app = createApp(me, offline);
  root.replaceChildren(app.element);
  // The error banner sits at the top of the content while signed in.
  document.getElementById('main').prepend(document.querySelector('[data-test=error]'));
  setUnauthorizedHandler(() => showSignIn('Your session has ended. Please sign in again.'));
  app.route();
}

function createApp(me, offline) {
  const ctx = {
    server,
    me,
    offline,
    markReady,
    refreshUsage,
    listChanged: () => list.invalidate(),
    forgetPlayback: (id) => {
      if (player.currentId() === id) player.clear();
    },
    uploaded: (rec) => {
      list.added(rec);
      refreshUsage();
    },
    signedOut: () => {
      remember(null);
      showSignIn();
    },
    sessionLost: () => showSignIn('Your session has ended. Please sign in again.'),
    markLocal,
  };

  // Recordings this page is changing itself: their live changes are its own, already shown
  // (kept a few seconds after the answer, for the change that arrives after it).
  const localOps = new Map(); // id → requests under way or just answered
  function markLocal(ids) {
    for (const id of ids) localOps.set(id, (localOps.get(id) || 0) + 1);
    let settled = false;
    return () => {
      if (settled) return;
      settled = true;
      setTimeout(() => {
        for (const id of ids) {
          const n = (localOps.get(id) || 1) - 1;
          if (n > 0) localOps.set(id, n);
          else localOps.delete(id);
        }
      }, 5000);
    };
  }

  // ---------- header ----------
  const search = h('input', {
    type: 'search', class: 'search-input', 'data-test': 'search', placeholder: 'Search', 'aria-label': 'Search recordings',
    autocomplete: 'off', spellcheck: 'false', enterkeyhint: 'search',
  });
  const fileInput = h('input', {
    type: 'file', multiple: true, accept: 'audio/*', class: 'visually-hidden', 'data-test': 'file-input',
    tabindex: '-1', 'aria-label': 'Audio files to upload',
  });
  const uploadBtn = h('button', { type: 'button', class: 'btn header-btn', 'data-test': 'upload-button', 'aria-label': 'Upload audio files', title: 'Upload audio files' },
    icon('upload'), h('span', { class: 'label' }, 'Upload'));
  const recordBtn = h('button', { type: 'button', class: 'record-btn', 'data-test': 'record', 'aria-label': 'Record', 'aria-pressed': 'false', title: 'Record with the microphone' },
    h('span', { class: 'rec-dot', 'aria-hidden': 'true' }), h('span', { class: 'label' }, 'Record'));
  const trashBadge = h('span', { class: 'badge', hidden: true });
  const nav = {
    recordings: h('a', { href: '#/', class: 'tab', 'data-test': 'nav-recordings' }, icon('wave'), h('span', { class: 'label' }, 'Recordings')),
    trash: h('a', { href: '#/trash', class: 'tab', 'data-test': 'nav-trash' }, icon('trash'), h('span', { class: 'label' }, 'Trash'), trashBadge),
    account: h('a', { href: '#/account', class: 'avatar-btn', 'data-test': 'nav-account', 'aria-label': `Account: ${me.user.username}`, title: me.user.username },
      h('span', { class: 'avatar', 'aria-hidden': 'true' }, me.user.username.charAt(0).toUpperCase())),
  };
  ctx.searchInput = search;
  ctx.recordButton = recordBtn;
  ctx.pickFiles = () => fileInput.click();

  const header = h('header', { class: 'topbar' },
    h('div', { class: 'topbar-inner' },
      h('a', { href: '#/', class: 'brand', 'aria-label': 'Recorder home' }, h('span', { class: 'brand-logo' }, icon('wave')), h('span', { class: 'brand-name' }, 'Recorder')),
      h('nav', { class: 'tabs', 'aria-label': 'Views' }, nav.recordings, nav.trash),
      h('div', { class: 'search' }, icon('search'), search),
      h('div', { class: 'header-actions' }, uploadBtn, fileInput, recordBtn, nav.account)));

  // Over plain HTTP (other than localhost) the browser gives no microphone: said before the tap.
  function secureBanner() {
    if (secureEnough()) return null;
    const url = server?.https?.url;
    recordBtn.classList.add('needs-https');
    recordBtn.setAttribute('aria-describedby', 'secure-banner-text');
    recordBtn.title = 'Recording needs the secure address';
    return h('div', { class: 'secure-banner card', 'data-test': 'secure-banner', role: 'note' },
      h('p', { id: 'secure-banner-text' }, 'To record on this device, use the secure address',
        url ? [': ', h('a', { href: `${url}/`, 'data-test': 'secure-link' }, url)] : '.'),
      h('p', {}, h('a', { href: '/setup', 'data-test': 'setup-link' }, 'How to set up this device')));
  }
  const offlineBanner = h('p', { class: 'offline-banner', 'data-test': 'offline', role: 'status', hidden: !offline },
    'Offline: showing your recordings as last seen. Recordings made now are kept on this device and sent when the server is reachable.');
  function setOffline(on) {
    ctx.offline = on;
    offlineBanner.hidden = !on;
  }
  ctx.setOffline = setOffline;

  // ---------- parts ----------
  const player = createPlayer();
  ctx.player = player;
  const shareDialog = createShareDialog();
  ctx.shareDialog = shareDialog;
  player.setShare((rec) => shareDialog.open(rec));
  const uploads = createUploads(ctx);
  ctx.uploads = uploads;
  const takes = createTakes(ctx);
  ctx.outbox = takes.outbox;
  const recorder = createRecorder(ctx);
  const list = createList(ctx);
  const trash = createTrash(ctx);
  const account = createAccount(ctx);
  const views = { recordings: list, trash, account };
  const drop = h('div', { class: 'drop-overlay', hidden: true, 'aria-hidden': 'true' },
    h('div', { class: 'drop-box' }, icon('upload'), h('p', {}, 'Drop audio files to upload')));

  const element = h('div', { class: 'app', 'data-test': 'app' },
    header,
    h('main', { class: 'content', id: 'main' }, secureBanner(), offlineBanner, recorder.element, takes.element, uploads.element, list.element, trash.element, account.element),
    player.element,
    h('div', { class: 'toast-region', 'aria-live': 'polite' }),
    drop,
    shareDialog.element);

  // ---------- behaviour ----------
  let searchTimer = 0;
  search.addEventListener('input', () => {
    list.searchPending();
    if (current !== 'recordings') location.hash = '#/';
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => list.search(search.value.trim()), 250);
  });
  search.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && search.value) {
      search.value = '';
      search.dispatchEvent(new Event('input'));
    }
  });
  uploadBtn.addEventListener('click', () => fileInput.click());
  fileInput.addEventListener('change', () => {
    if (fileInput.files.length) uploads.addFiles([...fileInput.files]);
    fileInput.value = '';
  });
  recordBtn.addEventListener('click', () => {
    if (!secureEnough()) {
      location.href = server?.https?.url ? `${server.https.url}/` : '/setup';
      return;
    }
    recorder.start();
  });

  let usageSeq = 0;
  async function refreshUsage() {
    const seq = ++usageSeq;
    try {
      const fresh = await api('GET', '/me');
      if (seq !== usageSeq) return;
      ctx.me = fresh;
      renderUsage();
    } catch (e) {
      if (e.status !== 401) console.warn('usage refresh failed', e);
    }
  }
  function renderUsage() {
    const n = ctx.me.usage.trash_recordings;
    trashBadge.textContent = n > 99 ? '99+' : String(n);
    trashBadge.hidden = n === 0;
    nav.trash.setAttribute('aria-label', n ? `Trash (${n})` : 'Trash');
    list.usageChanged();
    account.usageChanged();
  }
  renderUsage();
  // Uploads that stopped on an earlier visit; takes on this device (a dead tab's finished).
  if (!offline) uploads.restore();
  takes.start();
  // Back online after opening offline: the real list, the counts, and the outbox.
  const backOnline = async () => {
    if (!ctx.offline) return;
    try {
      ctx.me = await api('GET', '/me');
    } catch {
      return;
    }
    setOffline(false);
    renderUsage();
    list.resync();
    uploads.restore();
    takes.outbox.send();
  };
  window.addEventListener('online', backOnline);
  // The network can come back without an `online` event (the phone was on Wi-Fi, the server
  // was away): while offline, look every half minute.
  const offlineTimer = setInterval(() => { if (ctx.offline) backOnline(); }, 30000);

  // ---------- live changes (a phone's upload, another tab's delete) ----------

  let usageTimer = 0;
  function liveChange(change) {
    const local = localOps.has(change.id);
    list.applyChange(change, local);
    trash.applyChange(change, local);
    if (change.recording) player.update(change.recording);
    if (change.type === 'updated') player.changedElsewhere(change.id);
    const gone = change.type === 'trashed' || change.type === 'deleted';
    if (gone) shareDialog.forget(change.id);
    if (gone && !local && player.currentId() === change.id) {
      const name = player.current()?.name ?? 'The recording';
      player.clear();
      toast(change.type === 'trashed'
        ? `“${name}” was moved to the Trash elsewhere, so it stopped playing.`
        : `“${name}” was deleted elsewhere, so it stopped playing.`, { duration: 8000 });
    }
    // The counts in the header and the account page, once a burst of changes is over.
    clearTimeout(usageTimer);
    usageTimer = setTimeout(refreshUsage, 300);
  }
  const live = createLive({
    onChange: liveChange,
    onOpen(first) {
      if (first) {
        list.catchUp();
      } else {
        list.resync();
        trash.resync();
        refreshUsage();
      }
    },
  });

  let current = null;
  function route() {
    // Views live in the hash (#/trash); a plain /trash or /account path works too.
    const path = location.hash.replace(/^#/, '') || location.pathname;
    const next = path === '/trash' ? 'trash' : path === '/account' ? 'account' : 'recordings';
    const changed = next !== current;
    if (changed) views[current]?.hide?.();
    current = next;
    for (const [name, view] of Object.entries(views)) view.element.hidden = name !== next;
    for (const [name, link] of Object.entries(nav)) {
      if (name === next) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    document.title = { recordings: 'Recorder', trash: 'Trash · Recorder', account: 'Account · Recorder' }[next];
    if (changed) window.scrollTo(0, 0);
    views[next].show();
    if (next !== 'recordings') refreshUsage();
  }

  return {
    element,
    route,
    addFiles: (files) => uploads.addFiles(files),
    showDrop: (on) => { drop.hidden = !on; },
    busy: () => uploads.busy() || recorder.active() || player.unsavedTranscript(),
    focusSearch: () => search.focus(),
    destroy() {
      window.removeEventListener('online', backOnline);
      clearInterval(offlineTimer);
      takes.destroy();
      recorder.destroy();
      live.close();
      clearTimeout(usageTimer);
      if (shareDialog.element.open) shareDialog.element.close();
      recorder.stop(true);
      player.clear();
      forgetWaveforms();
      clearTimeout(searchTimer);
    },
  };
}

// ---------- page-wide events ----------

window.addEventListener('hashchange', () => app?.route());

const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes('Files');
let dragDepth = 0;
window.addEventListener('dragenter', (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  dragDepth++;
  app?.showDrop(true);
});
window.addEventListener('dragover', (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  e.dataTransfer.dropEffect = app ? 'copy' : 'none';
});
window.addEventListener('dragleave', () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) app?.showDrop(false);
});
window.addEventListener('drop', (e) => {
  const files = e.dataTransfer?.files;
  if (!files?.length) return;
  e.preventDefault(); // never navigate away to the dropped file
  dragDepth = 0;
  app?.showDrop(false);
  if (app) app.addFiles([...files]);
  else showError('Sign in first, then drop your files again.');
});

window.addEventListener('keydown', (e) => {
  if (e.key !== '/' || !app || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t?.isContentEditable || document.querySelector('dialog[open]')) return;
  e.preventDefault();
  app.focusSearch();
});

window.addEventListener('beforeunload', (e) => {
  if (app?.busy()) {
    e.preventDefault();
    e.returnValue = '';
  }
});

boot();
