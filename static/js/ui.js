// Shared widgets: the page shell (navigation, API key, footer), the error banner, loading
// states, file drop zones, the live-validated policy editor, probability bars and small helpers.
import { api, ApiError, getKey, setKey, serverInfo } from './api.js';

export const $ = (selector, root = document) => root.querySelector(selector);

// el('p', {class: 'hint', text: 'hi'}, child, ...): attributes, plus text, dataset and on* listeners.
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'text') node.textContent = value;
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else if (name === 'style' && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) node.style.setProperty(k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`), v);
    }
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

const PAGES = [
  ['augment', 'index.html', 'Augment'],
  ['boxes', 'boxes.html', 'Boxes and masks'],
  ['audio', 'audio.html', 'Audio'],
  ['similarity', 'similarity.html', 'Similarity'],
  ['models', 'models.html', 'Models'],
  ['datasets', 'datasets.html', 'Datasets'],
  ['jobs', 'jobs.html', 'Jobs'],
  ['search', 'search.html', 'Search'],
  ['ctaugment', 'ctaugment.html', 'CTAugment'],
];

// Builds what every page shares around its <main id="main">: the skip link, the header
// (navigation and the API-key form), the error banner (after the lead paragraph) and the
// footer; then asks GET /v1 what the server is and whether it wants keys. Resolves to the
// server info, or null.
export async function initShell() {
  const current = document.body.dataset.page;
  const main = $('#main');
  document.body.prepend(el('a', { class: 'skip', href: '#main', text: 'Skip to the content' }),
    el('header', { class: 'site-header', id: 'site-header' }));
  ($('.lead', main) || $('h1', main)).after(el('div', { id: 'banner', class: 'banner', role: 'alert', hidden: true }));
  main.after(el('footer', { class: 'site-footer', id: 'site-footer' }));
  const keyInput = el('input', { type: 'password', id: 'api-key', autocomplete: 'off',
    placeholder: 'API key', 'aria-describedby': 'key-hint' });
  const keyForm = el('form', { class: 'key-form', id: 'key-form', hidden: true,
    'aria-label': 'API key' },
    el('label', { for: 'api-key', class: 'inline', text: 'API key' }), keyInput,
    el('button', { type: 'submit', text: 'Use key' }),
    el('button', { type: 'button', id: 'forget-key', text: 'Forget',
      onclick: () => { setKey(''); location.reload(); } }),
    el('span', { id: 'key-hint', class: 'hint', text: 'kept in this tab only (sessionStorage)' }));
  keyForm.addEventListener('submit', (event) => {
    event.preventDefault();
    setKey(keyInput.value.trim());
    location.reload();
  });
  keyInput.value = getKey();
  const nav = el('nav', { 'aria-label': 'Pages' }, el('ul', {}, PAGES.map(([id, href, title]) =>
    el('li', {}, el('a', { href, 'aria-current': id === current ? 'page' : null, text: title })))));
  $('#site-header').replaceChildren(el('div', { class: 'bar' },
    el('a', { class: 'brand', href: 'index.html', text: 'augserve' }), nav, keyForm));
  document.addEventListener('augserve:auth-needed', () => { keyForm.hidden = false; });

  const footerInfo = el('span', { id: 'server-info', 'aria-live': 'polite', text: 'Asking the server…' });
  $('#site-footer').replaceChildren(el('p', {}, footerInfo, ' · ',
    el('a', { href: '/openapi.json', text: 'API description' }), ' · ',
    el('a', { href: '/healthz', text: 'health' }), ' · ', el('a', { href: '/metrics', text: 'metrics' })));
  try {
    const info = await serverInfo();
    if (info.auth_required) keyForm.hidden = false;
    footerInfo.textContent = `augserve ${info.version}; features: ${info.features.join(', ') || 'none'}` +
      (info.auth_required ? '; API keys required' : '');
    return info;
  } catch (err) {
    footerInfo.textContent = 'The server did not describe itself.';
    showError(err);
    return null;
  }
}

// The error banner: the envelope's code and message, and the request id to quote in a report.
export function showError(err) {
  const banner = $('#banner');
  if (!banner) return;
  console.warn(err);
  const parts = [];
  if (err instanceof ApiError) {
    parts.push(el('span', { class: 'code', text: err.status ? `${err.status} ${err.code}: ` : '' }),
      err.message);
    if (err.status === 401) parts.push(el('small', { text: 'Enter an API key above.' }));
    if (err.requestId) parts.push(el('small', { text: `request id ${err.requestId}` }));
  } else {
    parts.push(el('span', { class: 'code', text: 'Error: ' }), err.message || String(err));
  }
  banner.replaceChildren(el('p', {}, parts),
    el('button', { type: 'button', class: 'small', text: 'Dismiss', 'aria-label': 'Dismiss the error',
      onclick: clearError }));
  banner.hidden = false;
}

export function clearError() {
  const banner = $('#banner');
  if (banner) banner.hidden = true;
}

// Runs fn() as one request: the button shows a spinner and is disabled, the region is marked
// busy, the status line says what happens; errors go to the banner. Resolves to fn's result,
// or undefined after an error.
export async function withBusy(button, region, status, label, fn) {
  clearError();
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  if (region) region.setAttribute('aria-busy', 'true');
  if (status) status.textContent = `${label}…`;
  const started = performance.now();
  try {
    const result = await fn();
    if (status) status.textContent = `${label}: done in ${Math.round(performance.now() - started)} ms.`;
    return result;
  } catch (err) {
    if (status) status.textContent = `${label}: failed.`;
    showError(err);
    return undefined;
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    if (region) region.removeAttribute('aria-busy');
  }
}

// A drop zone around a file input: both call onFiles with the chosen files.
export function dropZone(zone, input, onFiles) {
  input.addEventListener('change', () => onFiles([...input.files]));
  zone.addEventListener('dragover', (event) => { event.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('over');
    const accept = input.accept.split(',')[0].replace('*', '');
    const files = [...event.dataTransfer.files].filter((f) => !accept || f.type.startsWith(accept));
    if (files.length) onFiles(input.multiple ? files : files.slice(0, 1));
  });
}

export function thumbnails(container, files) {
  container.replaceChildren(...files.map((file) =>
    el('img', { src: URL.createObjectURL(file), alt: file.name, title: file.name })));
}

export function dataUrl(type, base64) {
  return `data:${type};base64,${base64}`;
}

export function base64ToBlob(base64, type) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type });
}

export function downloadBlob(blob, name) {
  const a = el('a', { href: URL.createObjectURL(blob), download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

export async function copyText(text, button) {
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = 'Copied';
  } catch {
    // No clipboard (an insecure origin): show the text so it can be copied by hand.
    window.prompt('Copy this:', text);
  }
  setTimeout(() => { button.textContent = label; }, 1500);
}

export function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error('the image could not be shown'));
    img.src = src;
  });
}

export function randomSeed() {
  return Math.floor(Math.random() * 2 ** 32);
}

// Fills a <select> with the presets that pass filter, keeping the current choice when it can.
export function fillPresets(select, presets, filter, preferred) {
  const chosen = select.value || preferred;
  select.replaceChildren(...presets.filter((p) => filter(p.name)).map((p) =>
    el('option', { value: p.name, text: p.name, title: p.help })));
  if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
}

// Horizontal bars for probabilities in [0, 1]: [{label, value}].
export function bars(items, name) {
  return el('ul', { class: 'bars', 'aria-label': name }, items.map(({ label, value }) =>
    el('li', {},
      el('span', { class: 'label', text: label, title: label }),
      el('span', { class: 'track', role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': 1,
        'aria-valuenow': value.toFixed(4), 'aria-label': label },
      el('span', { class: 'fill', style: { width: `${(100 * Math.max(0, Math.min(1, value))).toFixed(1)}%`,
        display: 'block' } })),
      el('span', { class: 'value', text: `${(100 * value).toFixed(1)}%` }))));
}

// ---- Policy editor --------------------------------------------------------------------------

// The JSON pointer a policy error names: "policy/seq/1/degrees: must be ..." -> "/seq/1/degrees".
export function pointerFromMessage(message) {
  const m = /^policy(\/[^\s:]*)?:/.exec(message);
  return m ? m[1] || '' : null;
}

// The [start, end) of the value a JSON pointer names in text (valid JSON), or of its deepest
// existing ancestor.
export function locatePointer(text, pointer) {
  let i = 0;
  const ws = () => { while (i < text.length && /\s/.test(text[i])) i++; };
  const skipString = () => {
    for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
    i++;
  };
  const skipValue = () => {
    ws();
    if (text[i] === '"') return skipString();
    if (text[i] === '{' || text[i] === '[') {
      let depth = 0;
      do {
        if (text[i] === '"') { skipString(); continue; }
        if (text[i] === '{' || text[i] === '[') depth++;
        else if (text[i] === '}' || text[i] === ']') depth--;
        i++;
      } while (i < text.length && depth > 0);
      return undefined;
    }
    while (i < text.length && !/[\s,\]}]/.test(text[i])) i++;
    return undefined;
  };
  const span = () => { ws(); const start = i; skipValue(); const end = i; i = start; return [start, end]; };
  let best = span();
  for (const raw of pointer.split('/').slice(1)) {
    const token = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    ws();
    let found = false;
    if (text[i] === '{') {
      i++;
      for (ws(); text[i] === '"'; ws()) {
        const keyStart = i;
        skipString();
        const key = JSON.parse(text.slice(keyStart, i));
        ws();
        i++; // ':'
        if (key === token) { found = true; break; }
        skipValue();
        ws();
        if (text[i] === ',') i++;
      }
    } else if (text[i] === '[') {
      i++;
      for (let index = 0; ; index++) {
        ws();
        if (text[i] === ']' || i >= text.length) break;
        if (String(index) === token) { found = true; break; }
        skipValue();
        ws();
        if (text[i] === ',') i++;
      }
    }
    if (!found) break;
    best = span();
  }
  return best;
}

// A textarea holding a policy document, validated as it changes through
// POST /v1/policies/validate. status shows "valid" or the error with the node it names; a
// "Show node" button selects that node in the text. onChange(doc | null) follows validity.
export function policyEditor(textarea, status, onChange = () => {}) {
  let timer = 0;
  let controller = null;
  let generation = 0;

  const show = (ok, message, range) => {
    textarea.setAttribute('aria-invalid', ok ? 'false' : 'true');
    status.className = `hint ${ok ? 'valid' : 'invalid'}`;
    const children = [message];
    if (range) {
      const line = textarea.value.slice(0, range[0]).split('\n').length;
      children.push(' ', el('button', { type: 'button', class: 'small', text: `Show node (line ${line})`,
        onclick: () => { textarea.focus(); textarea.setSelectionRange(range[0], range[1]); } }));
    }
    status.replaceChildren(...children);
  };

  async function validate() {
    const text = textarea.value;
    const mine = ++generation;
    if (controller) controller.abort();
    if (!text.trim()) {
      status.dataset.state = 'empty';
      show(false, 'Write a policy document.');
      onChange(null);
      return;
    }
    let doc;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      status.dataset.state = 'invalid';
      status.dataset.pointer = '';
      show(false, `Not JSON: ${err.message}`);
      onChange(null);
      return;
    }
    controller = new AbortController();
    status.dataset.state = 'checking';
    status.replaceChildren('Checking…');
    try {
      await api('/v1/policies/validate', { method: 'POST', body: text, signal: controller.signal });
      if (mine !== generation) return;
      status.dataset.state = 'valid';
      status.dataset.pointer = '';
      show(true, 'Valid policy.');
      onChange(doc);
    } catch (err) {
      if (err.name === 'AbortError' || mine !== generation) return;
      const pointer = pointerFromMessage(err.message);
      status.dataset.state = 'invalid';
      status.dataset.pointer = pointer ?? '';
      const where = pointer ? `at ${pointer || '/'}: ` : '';
      const detail = pointer !== null ? err.message.replace(/^policy(\/[^\s:]*)?:\s*/, '') : err.message;
      show(false, `Invalid ${where}${detail}`, pointer !== null ? locatePointer(text, pointer) : null);
      onChange(null);
    }
  }

  textarea.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(validate, 300);
  });
  return {
    set(doc) {
      textarea.value = typeof doc === 'string' ? doc : JSON.stringify(doc, null, 2);
      validate();
    },
    validate,
  };
}

// ---- Op list ----------------------------------------------------------------------------------

// Slider bounds: GET /v1/ops's range, narrowed to +-1024 for the open-ended ones (pixels up to
// 65535) so the slider stays usable; the number box beside it takes the whole range.
function sliderRange(arg) {
  const wide = arg.max - arg.min > 4096;
  const min = wide ? Math.max(arg.min, -1024) : arg.min;
  const max = wide ? Math.min(arg.max, 1024) : arg.max;
  const step = arg.type === 'integer' ? 1 : Number(((max - min) / 200).toPrecision(2));
  return { min, max, step };
}

// A slider with a number box, both bound to one value.
function numberControl(id, labelText, { min, max, step, value, boxMin = min, boxMax = max }, onInput) {
  const slider = el('input', { type: 'range', id, min, max, step, value });
  const box = el('input', { type: 'number', min: boxMin, max: boxMax, step: 'any', value,
    'aria-label': `${labelText} (exact value)` });
  slider.addEventListener('input', () => { box.value = slider.value; onInput(); });
  box.addEventListener('input', () => { slider.value = box.value; onInput(); });
  const wrap = el('div', { class: 'arg' }, el('label', { for: id, text: labelText }), slider, box);
  return { wrap, get value() { return Number(box.value); } };
}

let rowCounter = 0;

// Rows of ops, each with its arguments' sliders (or a strength level for ops that have a level
// mapping) and a probability. doc() gives {"seq": [...]}, the rows as a policy document.
export function opList(container, ops, onChange) {
  const rows = [];

  function buildRow(opName) {
    const id = `op${++rowCounter}`;
    const row = { id, node: null };
    const select = el('select', { id: `${id}-op`, 'aria-label': 'Op' },
      ops.map((op) => el('option', { value: op.name, text: op.name, title: op.help })));
    select.value = opName;
    const body = el('div');
    const remove = el('button', { type: 'button', class: 'small', text: 'Remove',
      'aria-label': 'Remove this op' });
    const up = el('button', { type: 'button', class: 'small', text: '↑', 'aria-label': 'Move up' });
    row.element = el('div', { class: 'op-row', role: 'group', 'aria-label': 'Op' },
      el('div', { class: 'op-head' }, select, up, remove), body);

    function renderArgs() {
      const op = ops.find((o) => o.name === select.value);
      const controls = [];
      const change = () => { row.node = makeNode(); onChange(); };
      const prob = numberControl(`${id}-p`, 'probability', { min: 0, max: 1, step: 0.05, value: 1 }, change);
      controls.push(prob.wrap);
      let level = null;
      let useLevel = null;
      let randomSign = null;
      if (op.level) {
        useLevel = el('input', { type: 'checkbox', checked: true, id: `${id}-uselevel` });
        level = numberControl(`${id}-level`, `strength (level of ${op.level.arg}: ` +
          `${op.level.range[0]} to ${op.level.range[1]}${op.level.scale !== 'absolute' ? ` of the ${op.level.scale}` : ''})`,
        { min: 0, max: 1, step: 0.01, value: 0.5 }, change);
        controls.push(el('label', { class: 'inline' }, useLevel, 'Set the strength as a level'), level.wrap);
        if (op.level.random_sign) {
          randomSign = el('input', { type: 'checkbox', checked: true });
          controls.push(el('label', { class: 'inline' }, randomSign, 'random sign'));
        }
      }
      const args = [];
      for (const arg of op.args.filter((a) => !a.drawn)) {
        const argId = `${id}-${arg.name}`;
        const title = `${arg.name}${arg.unit ? ` (${arg.unit})` : ''}`;
        if (arg.type === 'enum') {
          const s = el('select', { id: argId }, arg.choices.map((c) => el('option', { value: c, text: c })));
          s.value = arg.default;
          s.addEventListener('change', change);
          args.push({ arg, get value() { return s.value; },
            wrap: el('div', {}, el('label', { for: argId, text: title }), s) });
        } else {
          const control = numberControl(argId, title,
            { ...sliderRange(arg), value: arg.default, boxMin: arg.min, boxMax: arg.max }, change);
          args.push({ arg, ...control, wrap: control.wrap, get value() { return control.value; } });
        }
      }
      const argBox = el('div', {}, args.map((a) => a.wrap));
      controls.push(argBox);
      let interpolation = null;
      if (op.interpolation) {
        interpolation = el('select', { id: `${id}-interp` },
          ['nearest', 'bilinear'].map((v) => el('option', { value: v, text: v })));
        interpolation.addEventListener('change', change);
        controls.push(el('label', { for: `${id}-interp`, text: 'interpolation' }), interpolation);
      }
      const syncMode = () => {
        const byLevel = useLevel && useLevel.checked;
        if (level) level.wrap.hidden = !byLevel;
        for (const a of args) a.wrap.hidden = byLevel && a.arg.name === op.level.arg;
        change();
      };
      if (useLevel) useLevel.addEventListener('change', syncMode);
      if (randomSign) randomSign.addEventListener('change', change);

      function makeNode() {
        const node = { op: op.name };
        const byLevel = useLevel && useLevel.checked;
        if (byLevel) {
          node.level = level.value;
          if (randomSign && !randomSign.checked) node.random_sign = false;
        }
        for (const a of args) {
          if (byLevel && a.arg.name === op.level.arg) continue;
          if (a.value !== a.arg.default) node[a.arg.name] = a.value;
        }
        if (interpolation && interpolation.value !== 'nearest') node.interpolation = interpolation.value;
        return prob.value < 1 ? { p: prob.value, do: node } : node;
      }
      body.replaceChildren(...controls);
      syncMode();
    }

    select.addEventListener('change', renderArgs);
    remove.addEventListener('click', () => {
      rows.splice(rows.indexOf(row), 1);
      row.element.remove();
      onChange();
    });
    up.addEventListener('click', () => {
      const i = rows.indexOf(row);
      if (i > 0) {
        rows.splice(i, 1);
        rows.splice(i - 1, 0, row);
        container.insertBefore(row.element, rows[i].element);
        onChange();
      }
    });
    rows.push(row);
    container.append(row.element);
    renderArgs();
    return row;
  }

  return {
    add(opName = ops[0].name) { const row = buildRow(opName); $('select', row.element).focus(); },
    addQuietly(opName) { buildRow(opName); },
    doc() { return { seq: rows.map((r) => r.node) }; },
    get size() { return rows.length; },
  };
}

// ---- Greyscale PNG ------------------------------------------------------------------------------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set([...type].map((ch) => ch.charCodeAt(0)), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

// An 8-bit greyscale PNG of width x height bytes (row-major): what the API takes as masks and
// label maps, which a canvas (always RGBA) cannot write.
export async function greyPng(width, height, pixels) {
  const raw = new Uint8Array((width + 1) * height);
  for (let y = 0; y < height; y++) raw.set(pixels.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  const zlib = new Uint8Array(await new Response(new Blob([raw]).stream()
    .pipeThrough(new CompressionStream('deflate'))).arrayBuffer());
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([8, 0, 0, 0, 0], 8);
  return new Blob([new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', header),
    chunk('IDAT', zlib), chunk('IEND', new Uint8Array(0))], { type: 'image/png' });
}

export const COLOURS = ['#e3342f', '#3490dc', '#38c172', '#f6993f', '#9561e2', '#f66d9b', '#4dc0b5', '#ffed4a'];

// ---- Shared form parts ------------------------------------------------------------------------

// The seed field (and, with samples, the sample count) at the start of the #sampling row.
export function samplingFields({ samples = false } = {}) {
  const field = (id, label, attrs) => el('div', {},
    el('label', { for: id, text: label }), el('input', { type: 'number', id, ...attrs }));
  const fields = [field('seed', 'Seed', { min: 0, step: 1, placeholder: 'random' })];
  if (samples) fields.push(field('samples', 'Samples', { min: 1, max: 32, value: 4 }));
  $('#sampling').prepend(...fields);
}

// Shows why a run cannot start (in the banner) and focuses the input to fix; false then.
export function required(ok, message, input) {
  if (ok) return true;
  showError(new Error(message));
  input.focus();
  return false;
}

// The #run and "Same seed again" (#again) buttons of the #controls form: request(seed) runs
// with the button busy; on an answer, #again reruns with its seed and render(doc) shows it.
// ready() says whether a run can start.
export function seededRuns(label, { ready, request, render }) {
  let lastSeed = null;
  async function run(seed) {
    if (!ready()) return;
    const button = seed === undefined ? $('#run') : $('#again');
    const doc = await withBusy(button, $('#results'), $('#status'), label, () => request(seed));
    if (!doc) return;
    lastSeed = doc.seed;
    $('#again').disabled = false;
    render(doc);
  }
  $('#controls').addEventListener('submit', (event) => { event.preventDefault(); run(); });
  $('#again').addEventListener('click', () => { $('#seed').value = lastSeed; run(lastSeed); });
}

// ---- Policy picker --------------------------------------------------------------------------

// The controls of the policy fieldset (#policy) that policyPicker works with; jsonLabel names
// the JSON mode, toJson adds the "Edit as JSON" button (#preset-to-json) under the preset.
export function policyFields({ jsonLabel = 'JSON', toJson = false } = {}) {
  const radio = (value, text) => el('label', { class: 'inline' },
    el('input', { type: 'radio', name: 'mode', value, checked: value === 'preset' }), ` ${text}`);
  $('#policy').append(
    el('div', { role: 'radiogroup', 'aria-label': 'How to give the policy' },
      radio('preset', 'Preset'), radio('ops', 'Op list'), radio('json', jsonLabel)),
    el('div', { id: 'mode-preset' },
      el('label', { for: 'preset', text: 'Preset' }), el('select', { id: 'preset' }),
      el('p', { class: 'hint', id: 'preset-help' }),
      toJson && el('button', { type: 'button', class: 'small', id: 'preset-to-json', text: 'Edit as JSON' })),
    el('div', { id: 'mode-ops', hidden: true }, el('div', { id: 'op-rows' }),
      el('button', { type: 'button', class: 'small', id: 'add-op', text: 'Add an op' })),
    el('div', { id: 'mode-json', hidden: true },
      el('label', { for: 'policy-json', text: 'Policy document' }),
      el('textarea', { id: 'policy-json', spellcheck: 'false', 'aria-describedby': 'policy-status' }),
      el('p', { class: 'hint', id: 'policy-status', 'aria-live': 'polite' })));
}

// The policy fieldset shared by the Augment and Audio pages: radio buttons choose a preset
// (#preset), an op list (#op-rows, #add-op) or a JSON document (#policy-json, validated live).
// The op list is mirrored into the JSON editor; typing in the editor switches to JSON.
export function policyPicker(form, { presets, ops, defaultPreset, defaultDoc }) {
  const select = $('#preset', form);
  const textarea = $('#policy-json', form);
  const help = $('#preset-help', form);
  const editor = policyEditor(textarea, $('#policy-status', form));
  let mode = 'preset';
  const setMode = (next) => {
    mode = next;
    $('#mode-preset', form).hidden = next !== 'preset';
    $('#mode-ops', form).hidden = next !== 'ops';
    $('#mode-json', form).hidden = next === 'preset';
    form.querySelector(`input[name="mode"][value="${next}"]`).checked = true;
    if (next === 'ops' && list.size === 0) list.addQuietly(ops[0].name);
  };
  const list = opList($('#op-rows', form), ops, () => editor.set(list.doc()));
  $('#add-op', form).addEventListener('click', () => list.add());
  for (const radio of form.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener('change', () => setMode(radio.value));
  }
  textarea.addEventListener('input', () => { if (mode !== 'json') setMode('json'); });
  const showHelp = () => { help.textContent = select.selectedOptions[0]?.title || ''; };
  select.addEventListener('change', showHelp);
  fillPresets(select, presets, () => true, defaultPreset);
  showHelp();
  editor.set(defaultDoc);
  return {
    get mode() { return mode; },
    setMode,
    editor,
    // What the API's policy field gets: the preset's name or the editor's text.
    value: () => (mode === 'preset' ? select.value : textarea.value),
    presetName: () => select.value,
    // Lists these presets (saved policies among them) and selects chosen.
    setPresets: (list, chosen) => {
      select.value = chosen;
      fillPresets(select, list, () => true, chosen);
      showHelp();
    },
  };
}

// ---- Tables -----------------------------------------------------------------------------------

// A value as table text: numbers to 4 significant digits (whole ones as they are), yes/no for
// booleans, a dash for null, JSON for anything nested.
export function formatValue(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

// A table of rows (arrays of values or nodes) under the column names, each cell marked with its
// column (data-column); numbers align as numbers.
export function dataTable(columns, rows, attrs = {}) {
  const cell = (v, i) => el('td', { class: typeof v === 'number' ? 'num' : null, dataset: { column: columns[i] },
    text: v instanceof Node ? null : formatValue(v) }, v instanceof Node ? v : null);
  return el('table', attrs,
    el('thead', {}, el('tr', {}, columns.map((c) => el('th', { scope: 'col', text: c })))),
    el('tbody', {}, rows.map((row) => el('tr', {}, row.map(cell)))));
}

// A two-column table of an object's members; undefined ones are left out.
export function keyValueTable(object, attrs = {}) {
  return el('table', attrs, el('tbody', {}, Object.entries(object).filter(([, v]) => v !== undefined).map(([k, v]) =>
    el('tr', { dataset: { key: k } }, el('th', { scope: 'row', text: k }),
      el('td', { class: typeof v === 'number' ? 'num' : null, text: formatValue(v) })))));
}
