// Formatting of sizes, durations and dates for display (local time).

export function formatDuration(seconds) {
  if (seconds == null || !Number.isFinite(seconds) || seconds < 0) return '—';
  const total = Math.floor(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

export function formatDurationMs(ms) {
  return ms == null ? '—' : formatDuration(ms / 1000);
}

export function formatSize(bytes) {
  if (bytes == null) return '—';
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = bytes / 1024;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  const shown = value < 10 ? value.toFixed(1).replace(/\.0$/, '') : Math.round(value);
  return `${shown} ${units[i]}`;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
const fullDayFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric' });
const longFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'short' });
const dayLongFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'long' });

function startOfDay(d) {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
}

/** "Today, 14:05", "Yesterday, 09:12", "3 Nov, 18:40", "3 Nov 2025". */
export function formatDate(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const now = new Date();
  const days = Math.round((startOfDay(now) - startOfDay(d)) / 86400000);
  if (days === 0) return `Today, ${timeFmt.format(d)}`;
  if (days === 1) return `Yesterday, ${timeFmt.format(d)}`;
  if (d.getFullYear() === now.getFullYear()) return `${dayFmt.format(d)}, ${timeFmt.format(d)}`;
  return fullDayFmt.format(d);
}

export function formatLongDate(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : longFmt.format(d);
}

export function formatDay(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : dayLongFmt.format(d);
}

export function daysLeft(purgeAt) {
  const ms = new Date(purgeAt).getTime() - Date.now();
  const n = Math.max(0, Math.ceil(ms / 86400000));
  return n === 1 ? '1 day left' : `${n} days left`;
}

export function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

/** "2026-11-25 14-03-09" in local time, for default recording names. */
export function fileStamp(date) {
  const p = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())} ` +
    `${p(date.getHours())}-${p(date.getMinutes())}-${p(date.getSeconds())}`;
}

/** Random UUIDv4; crypto.randomUUID exists only in secure contexts, getRandomValues everywhere. */
export function uuid() {
  if (crypto.randomUUID && window.isSecureContext) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// Why `recorder check --repair` set a recording aside, in words; '' for a healthy one.
export function problemText(problem) {
  if (problem === 'missing_file') return 'File missing on the server';
  if (problem === 'size_mismatch' || problem === 'hash_mismatch') return 'File damaged on the server';
  return '';
}
