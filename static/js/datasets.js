// The Datasets page: an archive uploaded to POST /v1/datasets with its progress, its import
// followed to ready or failed; the list (GET /v1/datasets); one
// dataset's class counts per split, its skipped files, its images per split a page at a time
// (GET /v1/datasets/{id}/images), making a split (POST .../splits) and deleting it.
import { api, apiUpload, curlFile } from './api.js';
import { $, copyText, dataTable, dropZone, el, formatValue, initShell, keyValueTable, showError,
  withBusy } from './ui.js';

const PAGE = 48;
const POLL_MS = 250;

let archive = null;
let maxBytes = Infinity; // GET /v1's limits.max_dataset_bytes
let current = null; // {id, doc, offset}

const pct = (f) => `${(100 * f).toFixed(0)}%`;

function bytesText(n) {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  const k = n > 0 ? Math.min(units.length - 1, Math.floor(Math.log2(n) / 10)) : 0;
  return k ? `${Number((n / 2 ** (10 * k)).toPrecision(3))} ${units[k]}` : `${n} bytes`;
}
const uploadPath = () => `/v1/datasets?name=${encodeURIComponent($('#name').value.trim())}`;

// ---- Import -----------------------------------------------------------------------------------

function showUpload(sent, total) {
  const fraction = total ? sent / total : 1;
  $('#upload-progress').value = fraction;
  $('#upload-percent').textContent = pct(fraction);
  $('#upload-percent').dataset.fraction = fraction;
}

function showImport(state, fraction, phase) {
  $('#import-state').textContent = state;
  $('#import-state').className = `badge state-${state}`;
  $('#import-area').dataset.state = state;
  if (fraction !== undefined) $('#import-progress').value = fraction;
  if (phase !== undefined) $('#import-phase').textContent = phase || '';
}

// Reads the dataset every POLL_MS while it imports, showing its import job's progress (which
// the document carries then); resolves to the document once ready or failed.
async function followImport(id) {
  for (;;) {
    const doc = await api(`/v1/datasets/${id}`);
    if (doc.state !== 'importing') return doc;
    if (doc.progress) showImport('importing', doc.progress.fraction, doc.progress.phase);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function upload() {
  if (!$('#name').value.trim() || !archive) {
    showError(new Error(archive ? 'Name the dataset first.' : 'Choose an archive first.'));
    (archive ? $('#name') : $('#archive')).focus();
    return;
  }
  // The server would take it up to the cap and answer 413: say so before sending any of it.
  if (archive.size > maxBytes) {
    showError(new Error(`${archive.name} is ${bytesText(archive.size)}; this server takes archives of at most ` +
      `${bytesText(maxBytes)} (max_dataset_bytes).`));
    $('#archive').focus();
    return;
  }
  $('#import-area').hidden = false;
  $('#import-error').hidden = true;
  showUpload(0, archive.size);
  showImport('uploading', 0, '');
  const doc = await withBusy($('#upload'), null, $('#status'), 'Uploading', () =>
    apiUpload(uploadPath(), archive, showUpload));
  if (!doc) {
    showImport('failed');
    return;
  }
  showImport(doc.state, 0, '');
  await refreshList();
  const final = await followImport(doc.id).catch((err) => { showError(err); return null; });
  if (!final) return;
  showImport(final.state, final.state === 'ready' ? 1 : undefined, '');
  $('#import-error').hidden = !final.error;
  $('#import-error').textContent = final.error || '';
  $('#status').textContent = `${final.name}: ${final.state}${final.state === 'ready' ? `, ${final.images} images` : ''}.`;
  await refreshList();
  if (location.hash === `#${doc.id}`) openDataset(doc.id, final);
  else location.hash = doc.id;
}

// ---- The list ---------------------------------------------------------------------------------

async function refreshList() {
  let doc;
  try {
    doc = await api('/v1/datasets');
  } catch (err) {
    $('#dataset-list').replaceChildren(el('p', { class: 'hint', text: 'The datasets could not be listed.' }));
    showError(err);
    return;
  }
  if (doc.datasets.length === 0) {
    $('#dataset-list').replaceChildren(el('p', { class: 'hint', text: 'No datasets yet: upload one.' }));
    return;
  }
  const table = dataTable(['name', 'state', 'images', 'classes', 'splits', 'id'], [], { class: 'wide', id: 'datasets' });
  $('tbody', table).append(...doc.datasets.map((d) => el('tr', { dataset: { dataset: d.id, state: d.state } },
    el('td', {}, el('a', { href: `#${d.id}`, text: d.name })),
    el('td', {}, el('span', { class: `badge state-${d.state}`, text: d.state, title: d.error || null })),
    el('td', { class: 'num', text: formatValue(d.images) }),
    el('td', { class: 'num', text: formatValue(Array.isArray(d.classes) ? d.classes.length : d.classes) }),
    el('td', { text: Object.entries(d.splits || {}).map(([n, c]) => `${n} ${c}`).join(', ') || '—' }),
    el('td', {}, el('code', { text: d.id })))));
  $('#dataset-list').replaceChildren(table);
}

// ---- One dataset ------------------------------------------------------------------------------

// Rows the classes, columns the splits: how many images of each class each split holds.
function classCounts(doc) {
  const splits = doc.splits || [];
  const rows = (doc.classes || []).map((name, c) => [name, ...splits.map((s) => s.per_class[c])]);
  if (splits.some((s) => s.unlabeled > 0)) rows.push(['(unlabeled)', ...splits.map((s) => s.unlabeled)]);
  rows.push(['total', ...splits.map((s) => s.count)]);
  const table = dataTable(['class', ...splits.map((s) => s.name)], rows, { id: 'counts' });
  for (const [i, tr] of [...table.tBodies[0].rows].entries()) tr.dataset.class = rows[i][0];
  return table;
}

function showDataset(doc) {
  $('#dataset-title').textContent = `${doc.name} (${doc.id})`;
  $('#dataset-view').dataset.state = doc.state;
  // size is [width, height] when every image has it; else image_size is the shorter side the
  // cache resized them to.
  const size = doc.size ? `${doc.size[0]}x${doc.size[1]}`
    : doc.image_size && `mixed, shorter side resized to ${doc.image_size}`;
  $('#dataset-summary').replaceChildren(keyValueTable({ state: doc.state, images: doc.images,
    classes: (doc.classes || []).length, 'image size': size,
    format: doc.format, source: doc.source, origin: doc.origin, created: doc.created, hash: doc.hash,
    'alias of': doc.same_as, 'import job': doc.job }));
  $('#dataset-error').hidden = !doc.error;
  $('#dataset-error').textContent = doc.error || '';
  const ready = doc.state === 'ready';
  $('#ready-parts').hidden = !ready;
  $('#class-counts').replaceChildren(ready ? classCounts(doc) : '');
  const skipped = doc.skipped || [];
  $('#skipped-area').hidden = skipped.length === 0;
  $('#skipped-title').textContent = `Skipped files (${doc.skipped_count ?? skipped.length})`;
  $('#skipped').replaceChildren(dataTable(['file', 'why'], skipped.map((s) => [s.file, s.reason]), { id: 'skipped-files' }));
  const names = (doc.splits || []).map((s) => s.name);
  for (const select of [$('#image-split'), $('#split-from')]) {
    const chosen = select.value;
    select.replaceChildren(...names.map((n) => el('option', { value: n, text: n })));
    if (names.includes(chosen)) select.value = chosen;
  }
}

async function showImages() {
  const { id } = current;
  const split = $('#image-split').value;
  if (!split) {
    $('#images').replaceChildren();
    return;
  }
  const query = new URLSearchParams({ split, offset: current.offset, limit: PAGE });
  let doc;
  try {
    doc = await api(`/v1/datasets/${id}/images?${query}`);
  } catch (err) {
    showError(err);
    return;
  }
  if (current.id !== id) return;
  const last = Math.min(doc.offset + doc.images.length, doc.total);
  $('#page-text').textContent = doc.total ? `${doc.offset + 1}–${last} of ${doc.total}` : 'none';
  $('#prev-page').disabled = doc.offset === 0;
  $('#next-page').disabled = last >= doc.total;
  $('#images').dataset.split = split;
  $('#images').dataset.offset = doc.offset;
  $('#images').replaceChildren(...doc.images.map((image) => el('figure', { class: 'thumb', dataset: { index: image.index } },
    el('img', { src: image.thumbnail, alt: `${image.class ?? 'unlabeled'} ${image.index}`, title: image.source,
      class: 'pixelated' }),
    el('figcaption', {}, el('span', { text: image.class ?? 'unlabeled' }),
      el('span', { class: 'hint', text: `#${image.index} ${image.width}x${image.height}` })))));
}

async function openDataset(id, known) {
  current = { id, doc: null, offset: 0 };
  $('#dataset-view').hidden = false;
  $('#view-status').textContent = '';
  let doc = known;
  if (!doc) {
    try {
      doc = await api(`/v1/datasets/${id}`);
    } catch (err) {
      showError(err);
      return;
    }
  }
  if (current.id !== id) return;
  current.doc = doc;
  showDataset(doc);
  await showImages();
}

function splitRequest() {
  const by = $('input[name="split-by"]:checked').value;
  const body = { name: $('#split-name').value.trim(), from: $('#split-from').value,
    [by]: Number($('#split-amount').value), stratified: $('#split-stratified').checked,
    seed: Number($('#split-seed').value) };
  if ($('#split-rest').value.trim()) body.rest = $('#split-rest').value.trim();
  return body;
}

async function makeSplit() {
  const { id } = current;
  const body = splitRequest();
  const doc = await withBusy($('#make-split'), null, $('#view-status'), 'Making the split', () =>
    api(`/v1/datasets/${id}/splits`, { method: 'POST', body }));
  if (!doc || current.id !== id) return;
  current.doc = { ...current.doc, ...doc };
  showDataset(current.doc);
  $('#image-split').value = body.name;
  current.offset = 0;
  await Promise.all([showImages(), refreshList()]);
}

async function remove() {
  const { id } = current;
  const done = await withBusy($('#delete'), null, $('#view-status'), 'Deleting', async () => {
    await api(`/v1/datasets/${id}`, { method: 'DELETE' });
    return true;
  });
  if (!done) return;
  $('#dataset-view').hidden = true;
  current = null;
  history.replaceState(null, '', location.pathname);
  await refreshList();
}

// ---- Start-up ---------------------------------------------------------------------------------

async function init() {
  const info = await initShell();
  if (info?.limits?.max_dataset_bytes) {
    maxBytes = info.limits.max_dataset_bytes;
    $('#archive-cap').textContent = `At most ${bytesText(maxBytes)}.`;
  }
  dropZone($('#archive-drop'), $('#archive'), ([file]) => {
    archive = file;
    $('#archive-name').textContent = `${file.name}, ${bytesText(file.size)}`;
    if (!$('#name').value) $('#name').value = file.name.replace(/\.(tar\.gz|tgz|tar|zip|gz|bin)$/i, '');
  });
  $('#controls').addEventListener('submit', (event) => { event.preventDefault(); upload(); });
  $('#copy-curl').addEventListener('click', (event) => {
    if (archive) copyText(curlFile(uploadPath(), archive), event.currentTarget);
    else showError(new Error('Choose an archive first.'));
  });
  $('#image-split').addEventListener('change', () => { current.offset = 0; showImages(); });
  $('#prev-page').addEventListener('click', () => { current.offset = Math.max(0, current.offset - PAGE); showImages(); });
  $('#next-page').addEventListener('click', () => { current.offset += PAGE; showImages(); });
  for (const radio of document.querySelectorAll('input[name="split-by"]')) {
    radio.addEventListener('change', () => {
      $('#split-amount-label').textContent = radio.parentElement.textContent.trim();
      $('#split-amount').step = radio.value === 'fraction' ? 'any' : '1';
      $('#split-amount').value = radio.value === 'fraction' ? '0.1' : '1';
    });
  }
  $('#split-form').addEventListener('submit', (event) => { event.preventDefault(); makeSplit(); });
  $('#delete').addEventListener('click', remove);
  window.addEventListener('hashchange', () => { if (location.hash.length > 1) openDataset(location.hash.slice(1)); });
  await refreshList();
  if (location.hash.length > 1) await openDataset(location.hash.slice(1));
  document.body.dataset.ready = 'true';
}

init();
