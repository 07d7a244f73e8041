// The Jobs page: a form per kind (evaluate, affinity, pseudo-label, train, diversity,
// affinity-diversity, self-training; any other kind the server lists takes its params as JSON) that POSTs /v1/jobs; the job list
// (GET /v1/jobs, by state, paged); and one job followed live over its Server-Sent Events
// (progress, log lines, metrics, state), with cancel (DELETE), its result as tables (and an
// affinity-diversity job's scatter), its PNG charts and its files.
import { api, curlJson, listPresets } from './api.js';
import { artifactsView, cancelJob, dataChoices, datasetOptions, followJob, jobStateEvent, jobStatus, jobTable,
  jsonField, listRow, logLine, modelOptions, showJobProgress, showJobState, splitOptions } from './jobview.js';
import { scatterChart } from './scatter.js';
import { $, clearError, copyText, dataTable, el, formatValue, initShell, keyValueTable, showError,
  withBusy } from './ui.js';

// The kinds with a form of their own, and the parts of the form each uses besides the model,
// dataset and split (server/job_evaluate.c, job_affinity.c, job_pseudo_label.c): its fieldsets,
// and the fields of those it hides.
const FORMS = {
  evaluate: { policy: true, seed: true },
  affinity: { seed: true, fieldsets: ['#affinity-fields'] },
  'pseudo-label': { fieldsets: ['#pseudo-label-fields'] },
  // train (server/job_train_params.c) takes its model from its own fields, a zoo model or a
  // repository model to fine-tune, not from the model select.
  train: { policy: true, seed: true, fieldsets: ['#train-fields'], ownModel: true },
  // diversity (server/job_diversity.c): train's training fields and the policy, nothing evaluated
  // on another split or registered.
  diversity: { policy: true, seed: true, fieldsets: ['#train-fields'], ownModel: true,
    hides: ['#val-split-field', '#output-field', '#ema-field'] },
  // affinity-diversity (server/job_affinity_diversity.c): train's training fields, nothing
  // registered, and affinity's policies drawn once.
  'affinity-diversity': { seed: true, fieldsets: ['#train-fields', '#affinity-fields'], ownModel: true,
    hides: ['#output-field', '#ema-field', '#draws-field'] },
  // self-training (server/job_self_training.c): its teachers and labelling, and train's fields for
  // the student (a zoo model), registered once a round.
  'self-training': { policy: true, seed: true, fieldsets: ['#self-training-fields', '#train-fields'],
    ownModel: true },
};
const FIELDSETS = [...new Set(Object.values(FORMS).flatMap((f) => f.fieldsets || []))];
const HIDDEN = [...new Set(Object.values(FORMS).flatMap((f) => f.hides || []))];

let kinds = [];
let datasets = [];
let listNext = null;
let current = null; // {id, job, controller}

const kind = () => $('#kind').value;

// ---- The form ---------------------------------------------------------------------------------

function showKindFields() {
  const form = FORMS[kind()];
  $('#kind-help').textContent = kinds.find((k) => k.name === kind())?.help || '';
  $('#dataset-fields').hidden = !form;
  $('#model-field').hidden = !form || Boolean(form.ownModel);
  $('#policy-field').hidden = !form || !form.policy;
  $('#seed-field').hidden = !form || !form.seed;
  for (const id of FIELDSETS) $(id).hidden = !form?.fieldsets?.includes(id);
  for (const id of HIDDEN) $(id).hidden = Boolean(form?.hides?.includes(id));
  $('#params-field').hidden = Boolean(form);
}

// The dataset's splits in the split selects (none for validation too), and its class count as
// a zoo model's classes.
function fillSplits() {
  const dataset = datasets.find((d) => d.id === $('#dataset').value);
  $('#split').replaceChildren(...splitOptions(dataset));
  $('#val-split').replaceChildren(el('option', { value: '', text: 'none' }), ...splitOptions(dataset));
  $('#unlabeled-split').replaceChildren(...splitOptions(dataset));
  if (dataset?.classes) $('#classes').value = dataset.classes;
}

function showTrainModel() {
  const finetune = $('input[name="train-model"]:checked').value === 'repository';
  $('#zoo-fields').hidden = finetune;
  $('#finetune-fields').hidden = !finetune;
}

// A policy field's text as the API takes it: JSON when it looks like JSON, else a preset name.
function policyValue(text) {
  const t = text.trim();
  if (!/^[[{"]/.test(t)) return t;
  try {
    return JSON.parse(t);
  } catch (err) {
    throw new Error(`The policy is not JSON: ${err.message}`);
  }
}

// A number field's value; absent (undefined) when empty.
function numberField(id) {
  return $(id).value === '' ? undefined : Number($(id).value);
}

// params.model of a train job: {arch, classes, size}, or a repository model's name with its new
// head and freeze form.
function trainModel() {
  if ($('input[name="train-model"]:checked').value === 'zoo') {
    return { arch: $('#arch').value, classes: numberField('#classes'), size: numberField('#size') };
  }
  if (!$('#base-model').value) {
    $('#base-model').focus();
    throw new Error('Choose a model to fine-tune first.');
  }
  const model = { name: $('#base-model').value };
  if ($('#new-head').value !== '') model.classes = Number($('#new-head').value);
  const freeze = $('#freeze').value.trim();
  if (freeze) model.freeze = /^[[{"]/.test(freeze) ? jsonField($('#freeze'), 'Freeze') : freeze;
  return model;
}

// The training fields' params, which train and affinity-diversity share: the model, the length
// in epochs or steps, the batch, optimiser, schedule and label smoothing.
function trainingParams() {
  return {
    model: trainModel(),
    [$('#budget-unit').value]: numberField('#epochs'),
    batch: numberField('#batch'),
    optimizer: { name: $('#optimizer').value, lr: numberField('#lr'), momentum: numberField('#momentum'),
      nesterov: $('#nesterov').checked, weight_decay: numberField('#weight-decay') },
    schedule: { name: $('#schedule').value, warmup_epochs: numberField('#warmup') },
    label_smoothing: numberField('#smoothing'),
  };
}

// A train job's own params.
function trainParams() {
  if (!$('#output').value.trim()) {
    $('#output').focus();
    throw new Error('Give the name to register the model as.');
  }
  const params = { ...trainingParams(), ema: numberField('#ema'), output: $('#output').value.trim() };
  if ($('#val-split').value) params.val_split = $('#val-split').value;
  return params;
}

// An affinity-diversity job's own params: the training fields and the val split it scores on.
function affinityDiversityParams() {
  if (!$('#val-split').value) {
    $('#val-split').focus();
    throw new Error('Choose the validation split affinity and accuracy are measured on.');
  }
  return { ...trainingParams(), val_split: $('#val-split').value };
}

// A self-training job's own params: train's for the student (the val split required), the
// teachers and the labelling.
function selfTrainingParams() {
  const teachers = [...$('#teachers').selectedOptions].map((o) => o.value);
  if (!teachers.length) {
    $('#teachers').focus();
    throw new Error('Choose one teacher or more.');
  }
  if (!$('#val-split').value) {
    $('#val-split').focus();
    throw new Error("Choose the validation split each round's student is tested on.");
  }
  const params = { ...trainParams(), teacher: teachers, unlabeled_split: $('#unlabeled-split').value,
    labels: $('#st-labels').value, threshold: numberField('#st-threshold'), rounds: numberField('#rounds') };
  if (params.labels === 'soft') params.temperature = numberField('#temperature');
  if (numberField('#per-class') !== undefined) params.per_class = numberField('#per-class');
  return params;
}

// The request the form describes: {kind, params}. Throws an Error naming a field that is wrong.
function request() {
  const name = kind();
  const form = FORMS[name];
  if (!form) return { kind: name, params: jsonField($('#params'), 'Params') };
  for (const id of [...(form.ownModel ? [] : ['#model']), '#dataset', '#split']) {
    if (!$(id).value) {
      $(id).focus();
      throw new Error(`Choose a ${id.slice(1)} first.`);
    }
  }
  const params = { dataset: $('#dataset').value, split: $('#split').value };
  if (name === 'train') Object.assign(params, trainParams());
  else if (name === 'self-training') Object.assign(params, selfTrainingParams());
  else if (name === 'diversity') Object.assign(params, trainingParams());
  else if (name === 'affinity-diversity') Object.assign(params, affinityDiversityParams());
  else params.model = $('#model').value;
  if (FORMS[name].seed && $('#seed').value !== '') params.seed = Number($('#seed').value);
  if (FORMS[name].policy && $('#policy').value.trim()) params.policy = policyValue($('#policy').value);
  else if (name === 'diversity') {
    $('#policy').focus();
    throw new Error('Give the policy whose diversity is measured.');
  }
  if (name === 'affinity' || name === 'affinity-diversity') {
    const ops = $('input[name="policies-mode"]:checked').value === 'ops';
    params.policies = ops ? 'ops' : jsonField($('#policies'), 'The policies');
    if (ops) params.level = Number($('#level').value);
  }
  if (name === 'affinity') params.draws = Number($('#draws').value);
  if (name === 'pseudo-label') {
    params.threshold = Number($('#threshold').value);
    if ($('#as-split').value.trim()) params.as_split = $('#as-split').value.trim();
  }
  return { kind: name, params };
}

async function start() {
  let body;
  try {
    body = request();
  } catch (err) {
    showError(err);
    return;
  }
  const job = await withBusy($('#start'), null, $('#status'), 'Starting', () =>
    api('/v1/jobs', { method: 'POST', body }));
  if (!job) return;
  $('#status').textContent = `Started ${job.kind} job ${job.id}.`;
  await refreshList();
  location.hash = job.id;
}

// ---- The list ---------------------------------------------------------------------------------

async function refreshList(append = false) {
  const query = new URLSearchParams({ limit: 20 });
  if ($('#state-filter').value) query.set('state', $('#state-filter').value);
  if (append && listNext) query.set('after', listNext);
  let doc;
  try {
    doc = await api(`/v1/jobs?${query}`);
  } catch (err) {
    showError(err);
    return;
  }
  listNext = doc.next;
  $('#more').hidden = !listNext;
  const body = $('#job-list tbody');
  if (append && body) {
    body.append(...doc.jobs.map(listRow));
    return;
  }
  if (doc.jobs.length === 0) {
    $('#job-list').replaceChildren(el('p', { class: 'hint', text: 'No jobs.' }));
    return;
  }
  $('#job-list').replaceChildren(jobTable(doc.jobs, 'jobs'));
}

// ---- One job ----------------------------------------------------------------------------------

const showState = (job) => showJobState(job, 'jobs');

const metrics = new Map();
const epochs = new Map(); // a training kind's metrics by run and epoch (their step)
// The kinds whose metrics are per epoch, and whether their names carry the run before a dot
// ("clean.train_loss", "policies/0.train_loss").
// fixmatch and supervised (server/job_fixmatch.c) take their params as JSON and report per epoch
// as train does, fixmatch with its mask rate and pseudo-label accuracy besides.
const PER_EPOCH = { train: false, diversity: true, 'affinity-diversity': true, fixmatch: false, supervised: false };

function showMetric({ name, value, step }) {
  metrics.set(name, [value, step]);
  $('#job-metrics-area').hidden = false;
  $('#job-metrics').replaceChildren(dataTable(['metric', 'value', 'step'],
    [...metrics].map(([n, [v, s]]) => [n, v, s])));
  const kindOf = current.job?.kind;
  if (!(kindOf in PER_EPOCH)) return;
  const cut = PER_EPOCH[kindOf] ? name.lastIndexOf('.') : -1;
  const key = JSON.stringify([name.slice(0, Math.max(cut, 0)), step]);
  epochs.set(key, { ...epochs.get(key), [name.slice(cut + 1)]: value });
  const columns = [...new Set([...epochs.values()].flatMap(Object.keys))];
  const keys = PER_EPOCH[kindOf] ? ['run', 'epoch'] : ['epoch'];
  $('#job-epochs-area').hidden = false;
  $('#job-epochs').replaceChildren(dataTable([...keys, ...columns], [...epochs].map(([k, row]) =>
    [...JSON.parse(k).slice(-keys.length), ...columns.map((c) => row[c])]), { id: 'epochs' }));
}

const isPlain = (v) => v === null || typeof v !== 'object';
const isRecord = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

// A record's members as table cells: {name: value}, a member holding an object of plain values
// spread as "name mean", "name std"...; a list of plain values as one text.
function flatten(record) {
  const out = {};
  for (const [key, value] of Object.entries(record)) {
    if (isRecord(value) && Object.values(value).every(isPlain)) {
      for (const [sub, v] of Object.entries(value)) out[`${key} ${sub}`] = v;
    } else {
      out[key] = Array.isArray(value) && value.every(isPlain) ? value.map(formatValue).join(', ') : value;
    }
  }
  return out;
}

// A job's result as tables: its plain members in one table; a list of records (a row each), or
// an object holding more than plain values, under its own heading.
function resultView(result, depth = 0) {
  const plain = {};
  const parts = [];
  for (const [key, value] of Object.entries(result)) {
    if (Array.isArray(value) && value.length > 0 && value.every(isRecord)) {
      const rows = value.map(flatten);
      const columns = [...new Set(rows.flatMap(Object.keys))];
      parts.push(el(depth ? 'h5' : 'h4', { text: key }),
        el('div', { class: 'table-wrap' }, dataTable(columns, rows.map((r) => columns.map((c) => r[c])),
          { dataset: { result: key } })));
    } else if (isRecord(value) && depth < 2) {
      parts.push(el(depth ? 'h5' : 'h4', { text: key }), resultView(value, depth + 1));
    } else {
      plain[key] = Array.isArray(value) ? value.map(formatValue).join(', ') : value;
    }
  }
  const table = Object.keys(plain).length ? el('div', { class: 'table-wrap' }, keyValueTable(plain)) : '';
  return el('div', { class: 'result' }, table, parts);
}

// The job's files, each to download; its PNG charts shown.
async function showArtifacts(id) {
  const { files, charts } = await artifactsView(id);
  if (current?.id !== id) return;
  $('#job-artifacts-area').hidden = files.length === 0;
  $('#job-artifacts').replaceChildren(...files);
  $('#job-charts').replaceChildren(...charts);
}

// Reads the job again (its result and error come with it, not in events) and shows its end.
async function showEnd(id) {
  const job = await api(`/v1/jobs/${id}`);
  if (current?.id !== id) return;
  showState(job);
  $('#stream-status').textContent = '';
  $('#job-result-area').hidden = !job.result;
  const scatter = job.kind === 'affinity-diversity' && job.result?.scatter;
  $('#job-result').replaceChildren(scatter ? el('figure', { class: 'chart' }, scatterChart(scatter)) : '',
    job.result ? resultView(job.result) : '');
  await Promise.all([showArtifacts(id), refreshList()]);
}

function onEvent({ type, data }) {
  if (type === 'progress') showJobProgress(data.fraction, data.phase);
  else if (type === 'log') logLine(data.message, 'message');
  else if (type === 'metric') showMetric(data);
  else if (type === 'state') current.job = jobStateEvent(current.job, data, 'jobs');
}

async function openJob(id) {
  if (current) current.controller.abort();
  clearError();
  metrics.clear();
  epochs.clear();
  const controller = new AbortController();
  current = { id, job: null, controller };
  $('#job-view').hidden = false;
  $('#job-title').textContent = `Job ${id}`;
  $('#job-links').hidden = true;
  for (const node of ['#job-log', '#job-metrics', '#job-epochs', '#job-result', '#job-artifacts', '#job-charts', '#job-phase']) {
    $(node).replaceChildren();
  }
  for (const area of ['#job-metrics-area', '#job-epochs-area', '#job-result-area', '#job-artifacts-area']) $(area).hidden = true;
  try {
    const job = await api(`/v1/jobs/${id}`, { signal: controller.signal });
    current.job = job;
    $('#job-title').textContent = `${job.kind} job ${id}`;
    // A search's leaderboard and charts are on the Search page; a job another made (a search's
    // trial) links to that job.
    const links = [job.kind === 'search' && el('a', { href: `search.html#${id}`, text: 'Its leaderboard on the Search page' }),
      job.parent && el('a', { href: `#${job.parent}`, text: `Made by job ${job.parent}` })].filter(Boolean);
    $('#job-links').replaceChildren(...links.flatMap((a, i) => (i ? [' · ', a] : [a])));
    $('#job-links').hidden = links.length === 0;
    $('#job-params').replaceChildren(keyValueTable(flatten(job.params)));
    showState(job);
    showJobProgress(job.progress.fraction, job.progress.phase);
    await followJob(id, controller.signal, onEvent);
    await showEnd(id);
  } catch (err) {
    if (err.name !== 'AbortError') showError(err);
  }
}

async function cancel() {
  const { id } = current;
  const job = await cancelJob(id, 'jobs', () => current.id === id);
  if (job && current.id === id) current.job = job;
}

// ---- Start-up ---------------------------------------------------------------------------------

async function loadChoices() {
  const choices = await dataChoices();
  $('#model').replaceChildren(...modelOptions(choices.models));
  $('#base-model').replaceChildren(...modelOptions(choices.models));
  $('#teachers').replaceChildren(...modelOptions(choices.models));
  datasets = choices.datasets;
  $('#dataset').replaceChildren(...datasetOptions(datasets));
  fillSplits();
  listPresets().then((presets) => $('#presets').replaceChildren(...presets.map((p) =>
    el('option', { value: p.name }))), showError);
}

async function init() {
  const info = await initShell();
  jobStatus();
  kinds = info?.jobs?.kinds || [];
  const names = kinds.map((k) => k.name);
  $('#kind').replaceChildren(...names.map((n) => el('option', { value: n, text: n })));
  const first = Object.keys(FORMS).find((n) => names.includes(n));
  if (first) $('#kind').value = first;
  showKindFields();
  $('#kind').addEventListener('change', showKindFields);
  $('#dataset').addEventListener('change', fillSplits);
  $('#st-labels').addEventListener('change', () => {
    $('#temperature-field').hidden = $('#st-labels').value !== 'soft';
  });
  for (const radio of document.querySelectorAll('input[name="train-model"]')) radio.addEventListener('change', showTrainModel);
  for (const radio of document.querySelectorAll('input[name="policies-mode"]')) {
    radio.addEventListener('change', () => {
      const ops = radio.value === 'ops' && radio.checked;
      $('#policies-list').hidden = ops;
      $('#level-field').hidden = !ops;
    });
  }
  $('#controls').addEventListener('submit', (event) => { event.preventDefault(); start(); });
  $('#copy-curl').addEventListener('click', (event) => {
    try {
      copyText(curlJson('/v1/jobs', request()), event.currentTarget);
    } catch (err) {
      showError(err);
    }
  });
  $('#state-filter').addEventListener('change', () => refreshList());
  $('#refresh').addEventListener('click', () => refreshList());
  $('#more').addEventListener('click', () => refreshList(true));
  $('#cancel').addEventListener('click', cancel);
  window.addEventListener('hashchange', () => { if (location.hash.length > 1) openJob(location.hash.slice(1)); });
  await Promise.all([loadChoices(), refreshList()]);
  if (location.hash.length > 1) openJob(location.hash.slice(1));
  document.body.dataset.ready = 'true';
}

init();
