// The admin API of aloftd (README.md, apps/aloftd/admin.c): every call
// carries the token the operator signed in with, kept for this tab only.
import { untrack } from 'svelte';

const KEY = 'aloft-admin-token';

export const token = {
  get: () => sessionStorage.getItem(KEY) ?? '',
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

// The server's refusal: HTTP status, its error code and its reason.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let unauthorized = () => {};
// Called with the server's reason whenever it answers 401.
export function onUnauthorized(fn) {
  unauthorized = fn;
}

// method, path ('/api/...'), and a JSON value or a File/Blob as the body.
export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token.get()}` };
  let payload;
  if (body instanceof Blob) {
    headers['Content-Type'] = 'application/octet-stream';
    payload = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload, cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, 'unreachable', `cannot reach aloftd: ${e.message}`);
  }
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = new ApiError(res.status, data?.error ?? '', data?.message ?? `HTTP ${res.status}`);
    if (res.status === 401) unauthorized(err.message);
    throw err;
  }
  return data;
}

export const describe = (e) => (e.status ? `HTTP ${e.status} ${e.code}: ${e.message}` : e.message);

export const enc = encodeURIComponent;

// "2026-05-07T12:59:15Z" as "… (42 s ago)".
export function ago(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso ?? '—';
  const s = Math.max(0, Math.round((now - t) / 1000));
  const rel = s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min` : s < 86400 ? `${Math.floor(s / 3600)} h` : `${Math.floor(s / 86400)} d`;
  return `${iso.replace('T', ' ').replace('Z', ' UTC')} (${rel} ago)`;
}

// Runs load() now and every `ms` until the returned function is called (an
// $effect's cleanup). load's own reads of state do not re-run the effect.
export function every(ms, load) {
  untrack(load);
  const timer = setInterval(load, ms);
  return () => clearInterval(timer);
}
