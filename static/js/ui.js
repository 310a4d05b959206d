// Shared page furniture: the global error banner, the toast, the confirm dialog.
import { h, icon } from './dom.js';

const banner = document.querySelector('[data-test=error]');
const bannerText = banner.querySelector('.error-text');
let bannerTimer = 0;

banner.querySelector('button').addEventListener('click', hideError);

export function showError(message) {
  bannerText.textContent = message;
  banner.hidden = false;
  clearTimeout(bannerTimer);
  bannerTimer = setTimeout(hideError, Math.max(12000, message.length * 90)); // time to read it
}

export function hideError() {
  clearTimeout(bannerTimer);
  banner.hidden = true;
  bannerText.textContent = '';
}

/** Shows an error from an API call (or anything thrown); ignores aborted requests. */
export function reportError(e) {
  if (e?.name === 'AbortError') return;
  if (e?.status === 401 && e.code === 'unauthorized') return; // the sign-in screen says it
  if (e?.name !== 'ApiError') console.error(e); // a bug here, not an answer from the server
  showError(e?.message || String(e));
}

// One toast at a time; a new one replaces the previous (its undo expires with it).
let currentToast = null;

/**
 * toast('Moved to Trash', {action: 'Undo', onAction, duration}) → returns a close() function.
 * The timer pauses while the pointer or keyboard focus is on the toast.
 */
export function toast(message, { action, onAction, duration = 6000 } = {}) {
  const region = document.querySelector('.toast-region');
  currentToast?.close();
  let timer = 0;
  let remaining = duration;
  let started = 0;
  const close = () => {
    clearTimeout(timer);
    el.classList.add('leaving');
    setTimeout(() => el.remove(), 180);
    if (currentToast?.el === el) currentToast = null;
  };
  const start = () => {
    started = performance.now();
    timer = setTimeout(close, remaining);
  };
  const pause = () => {
    clearTimeout(timer);
    remaining = Math.max(1500, remaining - (performance.now() - started));
  };
  const el = h('div', { class: 'toast', 'data-test': 'toast', role: 'status' },
    h('span', { class: 'toast-text' }, message),
    action && h('button', {
      type: 'button', class: 'toast-action', 'data-test': 'undo',
      onclick: () => { close(); onAction(); },
    }, action),
    h('button', { type: 'button', class: 'icon-btn small', 'aria-label': 'Dismiss', onclick: close }, icon('close')));
  el.addEventListener('pointerenter', pause);
  el.addEventListener('pointerleave', start);
  el.addEventListener('focusin', pause);
  el.addEventListener('focusout', start);
  region.append(el);
  currentToast = { el, close };
  start();
  return close;
}

const dialog = document.querySelector('dialog[data-test=confirm]');
const dialogTitle = dialog.querySelector('.dialog-title');
const dialogMessage = dialog.querySelector('.dialog-message');
const okButton = dialog.querySelector('[data-test=confirm-ok]');
const cancelButton = dialog.querySelector('[data-test=confirm-cancel]');
let settle = null;

okButton.addEventListener('click', () => dialog.close('ok'));
cancelButton.addEventListener('click', () => dialog.close('cancel'));
// A click on the backdrop (outside the dialog box) cancels.
dialog.addEventListener('click', (e) => {
  if (e.target !== dialog) return;
  const r = dialog.getBoundingClientRect();
  const inside = e.clientX >= r.left && e.clientX <= r.right && e.clientY >= r.top && e.clientY <= r.bottom;
  if (!inside) dialog.close('cancel');
});
dialog.addEventListener('close', () => {
  const resolve = settle;
  settle = null;
  resolve?.(dialog.returnValue === 'ok');
});

/** In-page confirmation; resolves true when the user confirms. */
export function confirmDialog({ title, message, ok = 'Delete' }) {
  if (dialog.open) dialog.close('cancel');
  dialogTitle.textContent = title;
  dialogMessage.textContent = message;
  okButton.textContent = ok;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    settle = resolve;
    dialog.showModal();
    cancelButton.focus();
  });
}
