// The one way the pages talk to the server: fetch with the API key, errors as ApiError built
// from the error envelope {"error": {"code", "message", "request_id"}}, and copy-as-curl.

const KEY_NAME = 'augserve-key';

export function getKey() {
  return sessionStorage.getItem(KEY_NAME) || '';
}

export function setKey(key) {
  if (key) sessionStorage.setItem(KEY_NAME, key);
  else sessionStorage.removeItem(KEY_NAME);
}

export class ApiError extends Error {
  constructor(status, code, message, requestId) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

// Turns {name: value | [values] | Blob/File} into FormData; null and undefined are left out.
export function toForm(fields) {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v === null || v === undefined || v === '') continue;
      if (v instanceof Blob) form.append(name, v, v.name || name);
      else form.append(name, typeof v === 'object' ? JSON.stringify(v) : String(v));
    }
  }
  return form;
}

// Calls the API. body: FormData, a plain object (sent as JSON) or a string. Resolves to the
// parsed JSON; rejects with ApiError (an error envelope, or a network failure with status 0).
export async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = { Accept: 'application/json' };
  const key = getKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body && !(body instanceof FormData) && typeof body !== 'string') {
    body = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  let response;
  try {
    response = await fetch(path, { method, body, headers, signal });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'unreachable', `the server could not be reached: ${err.message}`, null);
  }
  const text = await response.text();
  let doc = null;
  try {
    doc = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: reported below when the status is an error, else handed back as text.
  }
  if (!response.ok) {
    const e = doc && doc.error;
    const requestId = (e && e.request_id) || response.headers.get('X-Request-Id');
    if (response.status === 401) document.dispatchEvent(new CustomEvent('augserve:auth-needed'));
    throw new ApiError(response.status, e ? e.code : `http_${response.status}`,
      e ? e.message : `${response.status} ${response.statusText}`, requestId);
  }
  return doc !== null ? doc : text;
}

let info = null;
// GET /v1, once per page.
export function serverInfo() {
  if (!info) info = api('/v1').catch((err) => { info = null; throw err; });
  return info;
}

let presets = null;
export function listPresets() {
  if (!presets) presets = api('/v1/policies').then((d) => d.presets).catch((err) => { presets = null; throw err; });
  return presets;
}

const opsByDomain = {};
export function listOps(domain) {
  if (!opsByDomain[domain]) {
    opsByDomain[domain] = api(`/v1/ops?domain=${domain}`).then((d) => d.ops)
      .catch((err) => { delete opsByDomain[domain]; throw err; });
  }
  return opsByDomain[domain];
}

// The presets that hold audio ops; the others are image presets.
export function isAudioPreset(name) {
  return /^(specaugment-|multistyle|gaugment-)/.test(name);
}

function shellQuote(s) {
  return `'${String(s).replace(/'/g, `'\\''`)}'`;
}

// A curl command for a multipart request: files become -F name=@filename, other fields
// --form-string name=value (no @, < or ; interpretation). The key is left as $AUGSERVE_KEY so
// it never lands in a clipboard.
export function curlCommand(path, fields) {
  const parts = ['curl -s'];
  if (getKey()) parts.push(`-H "Authorization: Bearer $AUGSERVE_KEY"`);
  for (const [name, value] of Object.entries(fields)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v === null || v === undefined || v === '') continue;
      if (v instanceof Blob) parts.push(`-F ${shellQuote(`${name}=@${v.name || name}`)}`);
      else parts.push(`--form-string ${shellQuote(`${name}=${typeof v === 'object' ? JSON.stringify(v) : v}`)}`);
    }
  }
  parts.push(shellQuote(new URL(path, location.href).href));
  return parts.join(' \\\n  ');
}
