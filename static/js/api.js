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

function authHeaders(accept) {
  const headers = { Accept: accept };
  const key = getKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  return headers;
}

// fetch, with a network failure as ApiError status 0 (an abort is passed on as it is).
async function send(path, options) {
  try {
    return await fetch(path, options);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'unreachable', `the server could not be reached: ${err.message}`, null);
  }
}

// The ApiError of a response that is not ok, from its error envelope when it has one.
async function failure(response) {
  let e = null;
  try {
    e = JSON.parse(await response.text()).error;
  } catch {
    // Not JSON: the status line is all there is.
  }
  const requestId = (e && e.request_id) || response.headers.get('X-Request-Id');
  if (response.status === 401) document.dispatchEvent(new CustomEvent('augserve:auth-needed'));
  return new ApiError(response.status, e ? e.code : `http_${response.status}`,
    e ? e.message : `${response.status} ${response.statusText}`, requestId);
}

// Calls the API. body: FormData, a plain object (sent as JSON) or a string. Resolves to the
// parsed JSON (null for an empty answer such as 204); rejects with ApiError (an error envelope,
// or a network failure with status 0).
export async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = authHeaders('application/json');
  if (body && !(body instanceof FormData) && typeof body !== 'string') {
    body = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  const response = await send(path, { method, body, headers, signal });
  if (!response.ok) throw await failure(response);
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return text;
  }
}

// A GET of a file (a job's artifact) as a Blob: an <img src> or <a href> could not send the key.
// Never from the browser's cache: a running job's files grow.
export async function apiBlob(path, { signal } = {}) {
  const response = await send(path, { headers: authHeaders('*/*'), signal, cache: 'no-store' });
  if (!response.ok) throw await failure(response);
  return response.blob();
}

// POST of a Blob as the raw body, with upload progress, which fetch cannot report:
// onProgress(sent, total) as the body goes out, and (total, total) once all of it has. Resolves
// to the parsed JSON answer; rejects with ApiError as api() does.
export function apiUpload(path, blob, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    for (const [name, value] of Object.entries(authHeaders('application/json'))) xhr.setRequestHeader(name, value);
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.upload.addEventListener('progress', (event) => onProgress(event.loaded, event.total || blob.size));
    xhr.upload.addEventListener('load', () => onProgress(blob.size, blob.size));
    xhr.addEventListener('error', () => reject(new ApiError(0, 'unreachable', 'the upload did not reach the server', null)));
    xhr.addEventListener('load', async () => {
      // As a fetch Response, so that failure() reads its error envelope.
      const response = new Response(xhr.responseText || null, { status: xhr.status, statusText: xhr.statusText,
        headers: { 'X-Request-Id': xhr.getResponseHeader('X-Request-Id') || '' } });
      if (response.ok) resolve(await response.json());
      else reject(await failure(response));
    });
    xhr.send(blob);
  });
}

// One Server-Sent Events block ("id:", "event:", "data:" lines) as {id, type, data}, or null for
// a comment (a keep-alive).
function parseEvent(block) {
  const event = { id: null, type: 'message', data: [] };
  for (const line of block.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon === 0) continue;
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'id') event.id = value;
    else if (field === 'event') event.type = value;
    else if (field === 'data') event.data.push(value);
  }
  return event.data.length ? { id: event.id, type: event.type, data: JSON.parse(event.data.join('\n')) } : null;
}

const RECONNECT_MS = 1000;

// Follows a job's events (GET /v1/jobs/{id}/events): onEvent({id, type, data}) for each, until
// the job has ended. Read with fetch, not EventSource, because an EventSource cannot send the
// Authorization header that a server with keys wants; like an EventSource it reconnects after a
// dropped stream with the last Last-Event-ID, and stops at the 204 the server gives once an
// ended job has nothing more. onStatus(text) says when it reconnects. Resolves when the job has
// ended; rejects on an error answer (ApiError) or when signal aborts.
export async function followEvents(path, { onEvent, onStatus = () => {}, signal }) {
  let last = null;
  for (;;) {
    const headers = authHeaders('text/event-stream');
    if (last !== null) headers['Last-Event-ID'] = last;
    let response = null;
    let heard = false;
    try {
      response = await send(path, { headers, signal, cache: 'no-store' });
    } catch (err) {
      if (err.name === 'AbortError') throw err;
    }
    if (response && response.status === 204) return;
    if (response && !response.ok) throw await failure(response);
    if (response) {
      onStatus('live');
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          for (let end = buffer.search(/\r?\n\r?\n/); end >= 0; end = buffer.search(/\r?\n\r?\n/)) {
            const event = parseEvent(buffer.slice(0, end));
            buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
            if (!event) continue;
            if (event.id !== null) last = event.id;
            heard = true;
            onEvent(event);
          }
        }
      } catch (err) {
        if (err.name === 'AbortError') throw err;
      }
    }
    // The stream ended: the job has ended (asking again answers 204), or the connection dropped
    // and the stream goes on from the last event; at once after a stream that gave events, else
    // after a pause, so a server that is down is not asked in a tight loop.
    onStatus('reconnecting');
    if (!response || !heard) await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
    if (signal && signal.aborted) throw new DOMException('aborted', 'AbortError');
  }
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
// The saved policies (GET /v1/policies' "saved"), asked afresh each time: pages add to them.
export function listSaved() {
  return api('/v1/policies').then((d) => d.saved);
}

export function isAudioPreset(name) {
  return /^(specaugment-|multistyle|gaugment-)/.test(name);
}

function shellQuote(s) {
  return `'${String(s).replace(/'/g, `'\\''`)}'`;
}

// A curl command: the key left as $AUGSERVE_KEY so it never lands in a clipboard, then args.
function curl(path, args) {
  const parts = ['curl -s'];
  if (getKey()) parts.push(`-H "Authorization: Bearer $AUGSERVE_KEY"`);
  parts.push(...args, shellQuote(new URL(path, location.href).href));
  return parts.join(' \\\n  ');
}

// For a multipart request: files become -F name=@filename, other fields --form-string
// name=value (no @, < or ; interpretation).
export function curlCommand(path, fields) {
  const args = [];
  for (const [name, value] of Object.entries(fields)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v === null || v === undefined || v === '') continue;
      if (v instanceof Blob) args.push(`-F ${shellQuote(`${name}=@${v.name || name}`)}`);
      else args.push(`--form-string ${shellQuote(`${name}=${typeof v === 'object' ? JSON.stringify(v) : v}`)}`);
    }
  }
  return curl(path, args);
}

// For a JSON body.
export function curlJson(path, doc) {
  return curl(path, [`-H 'Content-Type: application/json'`, `-d ${shellQuote(JSON.stringify(doc))}`]);
}

// For a file sent as the raw body.
export function curlFile(path, file) {
  return curl(path, [`-H 'Content-Type: application/octet-stream'`, `--data-binary ${shellQuote(`@${file.name}`)}`]);
}
