// The Models page: GET /v1/models as a table, then POST /v1/predict (top-k bars) or
// POST /v1/pseudo-label (the ensemble's label, confidence and per-model votes) on images.
import { api, curlCommand, toForm } from './api.js';
import { $, bars, copyText, dropZone, el, initShell, showError, thumbnails, withBusy } from './ui.js';

let files = [];

const task = () => document.querySelector('input[name="task"]:checked').value;
const chosenModels = () => [...document.querySelectorAll('#model-boxes input:checked')].map((i) => i.value);
const shape = (s) => `[${s.join(', ')}]`.replace(/-1/g, '?');

function renderTable(models) {
  if (models.length === 0) {
    $('#model-table').replaceChildren(el('p', { class: 'hint', text: 'No models: put <name>/model.onnx (and config.json) in models_dir.' }));
    return;
  }
  $('#model-table').replaceChildren(el('table', { class: 'wide' },
    el('thead', {}, el('tr', {}, ['name', 'status', 'inputs', 'outputs', 'classes', 'preprocess', 'calls']
      .map((h) => el('th', { scope: 'col', text: h })))),
    el('tbody', {}, models.map((m) => el('tr', { dataset: { model: m.name } },
      el('th', { scope: 'row', text: m.name }),
      el('td', {}, el('span', { class: `badge ${m.status === 'ready' ? 'ok' : 'no'}`, text: m.status }),
        m.reason ? el('div', { class: 'hint', text: m.reason }) : ''),
      el('td', { text: m.inputs.map((i) => `${i.name} ${i.datatype} ${shape(i.shape)}`).join('; ') }),
      el('td', { text: m.outputs.map((o) => `${o.name} ${o.datatype} ${shape(o.shape)}`).join('; ') }),
      el('td', { class: 'num', text: m.label_count || '—' }),
      el('td', { text: m.preprocess ? 'yes' : 'no (/v2 only)' }),
      el('td', { class: 'num', text: `${m.stats.requests} / ${m.stats.executions} runs` }))))));
  const usable = models.filter((m) => m.status === 'ready' && m.preprocess);
  $('#model-boxes').replaceChildren(...(usable.length ? usable.map((m, i) =>
    el('label', { class: 'inline' }, el('input', { type: 'checkbox', name: 'model', value: m.name, checked: i === 0 }), m.name))
    : [el('p', { class: 'hint', text: 'No ready model has a "preprocess" section.' })]));
}

function fields() {
  const models = chosenModels();
  if (task() === 'predict') return { image: files, model: models[0], top_k: $('#top-k').value };
  return { image: files, model: models, threshold: $('#threshold').value, views: $('#views').value, seed: $('#seed').value };
}

const name = (p) => (p.label ?? `class ${p.index}`);

function renderPredict(doc) {
  return doc.results.map((r) => el('figure', { class: 'prediction', dataset: { input: r.input } },
    el('img', { src: URL.createObjectURL(files[r.input]), alt: files[r.input].name, style: { maxHeight: '8rem', objectFit: 'contain' } }),
    el('figcaption', { text: `${files[r.input].name}: top ${r.predictions.length} of ${doc.model}` }),
    bars(r.predictions.map((p) => ({ label: name(p), value: p.prob })), `Top classes of ${files[r.input].name}`)));
}

function renderPseudo(doc) {
  return doc.results.map((r) => el('figure', { class: 'prediction', dataset: { input: r.input } },
    el('img', { src: URL.createObjectURL(files[r.input]), alt: files[r.input].name, style: { maxHeight: '8rem', objectFit: 'contain' } }),
    el('figcaption', {}, el('span', { text: `${files[r.input].name}: ${name(r)}` }),
      el('span', { class: `badge ${r.accepted ? 'ok' : 'no'}`, text: r.accepted ? 'accepted' : `below ${doc.threshold}` })),
    bars([{ label: 'confidence', value: r.confidence }, { label: 'agreement', value: r.agreement }], 'Ensemble'),
    el('p', { class: 'hint', text: `entropy ${r.entropy.toFixed(3)} · ${doc.views} views · seed ${doc.seed}` }),
    bars(r.models.map((m) => ({ label: `${m.model}: ${name(m)}`, value: m.confidence })), 'Each model\'s vote')));
}

async function run() {
  if (files.length === 0 || chosenModels().length === 0) {
    showError(new Error(files.length ? 'Check a model first.' : 'Choose at least one image first.'));
    return;
  }
  const route = task() === 'predict' ? '/v1/predict' : '/v1/pseudo-label';
  const doc = await withBusy($('#run'), $('#results'), $('#status'), 'Classifying', () =>
    api(route, { method: 'POST', body: toForm(fields()) }));
  if (doc) $('#output').replaceChildren(...(task() === 'predict' ? renderPredict(doc) : renderPseudo(doc)));
}

async function start() {
  await initShell();
  dropZone($('#image-drop'), $('#images'), (chosen) => { files = chosen; thumbnails($('#image-thumbs'), files); });
  $('#controls').addEventListener('submit', (event) => { event.preventDefault(); run(); });
  $('#copy-curl').addEventListener('click', (event) =>
    copyText(curlCommand(task() === 'predict' ? '/v1/predict' : '/v1/pseudo-label', fields()), event.currentTarget));
  try {
    renderTable((await api('/v1/models')).models);
  } catch (err) {
    $('#model-table').replaceChildren(el('p', { class: 'hint', text: 'The repository could not be listed.' }));
    showError(err);
  }
  document.body.dataset.ready = 'true';
}

start();
