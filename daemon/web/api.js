// The human API over fetch. The session lives in an HttpOnly SameSite=Strict
// cookie; the browser adds Origin to every POST/PATCH/DELETE, which the
// gateway checks.

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body || {};
  }
}

const listeners = new Set();
export function onUnauthorized(fn) { listeners.add(fn); }

export async function api(method, path, body, { headers } = {}) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json', ...headers } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'the gateway cannot be reached: check the connection');
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { error: text }; }
  }
  if (!response.ok) {
    const message = (data && data.error) || `${response.status} ${response.statusText}`;
    if (response.status === 401 && !path.startsWith('/api/auth/login')) {
      for (const fn of listeners) fn();
    }
    throw new ApiError(response.status, message, data);
  }
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body, options) => api('POST', path, body === undefined ? {} : body, options);
export const patch = (path, body) => api('PATCH', path, body);
export const del = (path, body) => api('DELETE', path, body);

const RETRIES = 3;
const wait = (ms) => new Promise((ok) => { setTimeout(ok, ms); });

// POSTs with one Idempotency-Key until the gateway answers (or after three
// tries on a network error gives up): a retry after a lost answer is
// answered as the first call was and does nothing again.
export async function postOnce(path, body, key) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await post(path, body, { headers: { 'Idempotency-Key': key } });
    } catch (err) {
      if (err.status !== 0 || attempt >= RETRIES) throw err;
      await wait(1000 * attempt);
    }
  }
}

// The signed-in user, cached for role checks in the pages.
export const session = { user: null, status: null };

const ranks = { viewer: 0, operator: 1, admin: 2 };
export function can(role) {
  return !!session.user && ranks[session.user.role] >= ranks[role];
}

// A fresh key for `Idempotency-Key`: a retry with the same key is answered
// as the first call was and does nothing again.
export function randomKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
}
