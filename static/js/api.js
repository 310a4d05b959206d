// JSON API client: cookie auth, errors as ApiError with the server's message.

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

let onUnauthorized = null;

/** Called when a request made while signed in answers 401 unauthorized (session gone). */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

function waitText(seconds) {
  const s = Number(seconds);
  if (!Number.isFinite(s) || s <= 0) return '';
  if (s < 90) return `${Math.ceil(s)} seconds`;
  return `${Math.ceil(s / 60)} minutes`;
}

/** Builds an ApiError from a status and a response body ({"error":{code,message}} or anything). */
export function errorFrom(status, bodyText, retryAfter = null) {
  let err = null;
  try {
    err = JSON.parse(bodyText)?.error;
  } catch {
    // not JSON: a proxy's error page, a dropped connection
  }
  let message = err?.message || (status ? `The server answered with status ${status}.` : 'Could not reach the server.');
  const wait = status === 429 ? waitText(retryAfter) : '';
  // The server's message is shown verbatim; a throttled login also says how long to wait.
  if (wait) message = `${message} (wait ${wait})`;
  return new ApiError(status, err?.code || `http_${status}`, message, retryAfter);
}

export async function api(method, path, body, { signal } = {}) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' }, signal };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(`/api/v1${path}`, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'Could not reach the server. Check your connection and try again.');
  }
  const text = res.status === 204 ? '' : await res.text();
  if (!res.ok) {
    const error = errorFrom(res.status, text, res.headers.get('Retry-After'));
    if (res.status === 401 && error.code === 'unauthorized' && onUnauthorized) onUnauthorized(error);
    throw error;
  }
  return text ? JSON.parse(text) : null;
}
