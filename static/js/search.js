// The Search page: a policy search (POST /v1/jobs, kind "search") started from a form; the recent
// searches (GET /v1/jobs?kind=search); one search followed live over its events, its leaderboard
// read again from trials.jsonl as trials finish, with the best value so far and RandAugment's
// heatmap drawn from the same rows; its result and files when it ends; cancel (DELETE); and the
// best policy opened in the Augment page.
import { ApiError, api, curlJson } from './api.js';
import { artifactsView, artifactText, cancelJob, dataChoices, datasetOptions, followJob, jobStateEvent, jobStatus,
  jobTable, jsonField, logLine, modelOptions, showJobProgress, showJobState, splitOptions } from './jobview.js';
import { curveChart, heatmapChart, isNmGrid, scored } from './search-charts.js';
import { $, clearError, copyText, dataTable, el, formatValue, initShell, keyValueTable, locatePointer,
  showError } from './ui.js';

// The named spaces' arguments (README "Search spaces", engine/search/spaces.c), each with its
// default as the field's placeholder; an empty field sends nothing, so the server's default holds.
const SPACES = {
  randaugment: [['n', '[1, 2, 3]'], ['m', '{"int": [0, 30]}'], ['bins', '31'], ['interpolation', 'each op\'s'],
    ['fill', 'each op\'s']],
  autoaugment: [['k', '5'], ['ops', 'AutoAugment\'s, but SamplePairing']],
  'ops-subset': [['ops', 'trivialaugment-wide\'s 14'], ['bins', '31']],
  gaugment: [['domain', 'image'], ['depth', '3'], ['width', '3'], ['ops', 'the domain\'s']],
  specaugment: [['F', '{"int": [0, 27]}'], ['mF', '[1, 2]'], ['T', '{"int": [0, 100]}'],
    ['p', '{"quantized": [0.05, 1, 0.05]}'], ['mT', '[1, 2]'], ['W', '80'], ['value', 'zero']],
};
// The algorithms' settings (engine/search/README.md), with their defaults; none set: the name alone.
const ALGORITHMS = {
  grid: [['points', 'needed for a real range']],
  random: [],
  evolution: [['population', '20'], ['sample', '5']],
  tpe: [['startup', '10'], ['candidates', '24'], ['gamma', '0.1'], ['prior_weight', '1']],
};
// The splits each objective reads, and what it scores.
const OBJECTIVES = {
  affinity: { train: false, help: 'The model\'s accuracy on the validation split with the trial\'s policy applied: no training.' },
  val_accuracy: { train: true, help: 'A proxy model trained with the trial\'s policy on the train split, its accuracy on the validation split.' },
  'affinity-diversity': { train: true, help: 'Affinity and a short training\'s diversity, combined by their weights.' },
};
// Each field a 4xx answer may name (params.<field>: ...) and the control that holds it (see
// controlFor).
const FIELDS = {
  algorithm: '#algorithm', objective: '#objective', budget: '#trials', 'budget.trials': '#trials',
  'budget.seconds': '#seconds', parallel: '#parallel', model: '#model', dataset: '#dataset',
  splits: '#val-split', 'splits.val': '#val-split', 'splits.train': '#train-split', seed: '#seed',
  save_as: '#save-as',
};

let datasets = [];
let current = null; // {id, job, rows, controller, reading, again, lastRead}

const spaceMode = () => $('input[name="space-mode"]:checked').value;

// ---- The form ---------------------------------------------------------------------------------

function argumentFields(container, prefix, args, type) {
  container.replaceChildren(...args.map(([name, fallback]) => el('div', {},
    el('label', { for: `${prefix}-${name}`, text: name }),
    el('input', { type, id: `${prefix}-${name}`, class: type === 'text' ? 'json' : null, placeholder: fallback,
      spellcheck: 'false', autocomplete: 'off', step: type === 'number' ? 'any' : null, dataset: { arg: name } }))));
}

function showSpaceFields() {
  $('#named-fields').hidden = spaceMode() !== 'named';
  $('#document-fields').hidden = spaceMode() !== 'document';
  argumentFields($('#space-args'), 'space-arg', SPACES[$('#space-name').value], 'text');
}

function showObjective() {
  const objective = OBJECTIVES[$('#objective').value];
  $('#train-split-field').hidden = !objective.train;
  $('#objective-help').textContent = objective.help;
}

function fillSplits() {
  const dataset = datasets.find((d) => d.id === $('#dataset').value);
  for (const id of ['#train-split', '#val-split']) $(id).replaceChildren(...splitOptions(dataset));
  const names = Object.keys(dataset?.splits || {});
  if (names.includes('train')) $('#train-split').value = 'train';
  const val = ['val', 'test'].find((n) => names.includes(n));
  if (val) $('#val-split').value = val;
}

// A named space's argument: JSON when it is JSON (a number, a list, a distribution), else the
// text (an interpolation, a domain).
function argumentValue(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function space() {
  if (spaceMode() === 'document') return jsonField($('#space-doc'), 'The space');
  const doc = { space: $('#space-name').value };
  for (const input of $('#space-args').querySelectorAll('input')) {
    if (input.value.trim()) doc[input.dataset.arg] = argumentValue(input.value.trim());
  }
  return doc;
}

function algorithm() {
  const settings = {};
  for (const input of $('#algorithm-args').querySelectorAll('input')) {
    if (input.value !== '') settings[input.dataset.arg] = Number(input.value);
  }
  return Object.keys(settings).length ? { name: $('#algorithm').value, ...settings } : $('#algorithm').value;
}

const numberOf = (id) => ($(id).value === '' ? undefined : Number($(id).value));

// An optional field holding a JSON object: {} when empty.
function objectField(id, what) {
  if (!$(id).value.trim()) return {};
  const value = jsonField($(id), what);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    $(id).focus();
    throw new Error(`${what} must be a JSON object.`);
  }
  return value;
}

// The objective's name, or {"name", ...its settings} when it has some.
function objective() {
  const settings = objectField('#objective-settings', 'The objective settings');
  return Object.keys(settings).length ? { name: $('#objective').value, ...settings } : $('#objective').value;
}

// The request the form describes; throws an Error (the control to fix focused) when it cannot
// be made.
function request() {
  for (const id of ['#model', '#dataset', '#val-split']) {
    if (!$(id).value) {
      $(id).focus();
      throw new Error(`Choose a ${$(`label[for="${id.slice(1)}"]`).textContent.toLowerCase()} first.`);
    }
  }
  const splits = OBJECTIVES[$('#objective').value].train ? { train: $('#train-split').value, val: $('#val-split').value }
    : { val: $('#val-split').value };
  const params = {
    space: space(),
    algorithm: algorithm(),
    objective: objective(),
    budget: { trials: numberOf('#trials'), seconds: numberOf('#seconds') },
    parallel: numberOf('#parallel'),
    dataset: $('#dataset').value,
    splits,
    model: $('#model').value,
    seed: numberOf('#seed'),
  };
  if ($('#save-as').value.trim()) params.save_as = $('#save-as').value.trim();
  return { kind: 'search', params: { ...params, ...objectField('#more-params', 'The other params') } };
}

// The control of a field a refusal names: for the space, the document or the named space's
// argument the pointer names; the objective's settings for objective.<setting>; the other params
// for a field the form has no control of.
function controlFor(field, pointer) {
  if (field === 'space') {
    if (spaceMode() === 'document') return $('#space-doc');
    const arg = pointer && $(`#space-args input[data-arg="${CSS.escape(pointer.split('/')[1])}"]`);
    return arg || $('#space-name');
  }
  if (field.startsWith('objective.')) return $('#objective-settings');
  const id = FIELDS[field] || FIELDS[field.split('.')[0]] || (field ? '#more-params' : null);
  return id && $(id);
}

function clearFormError() {
  $('#form-error').hidden = true;
  $('#form-error').replaceChildren();
  for (const node of document.querySelectorAll('#controls [aria-invalid="true"]')) node.removeAttribute('aria-invalid');
}

// A refusal shown next to the form: the field it names (params.<field>), and for the space the
// placeholder's JSON pointer, with a button that selects that node in the document (or the
// named space's argument field).
function showFormError(err) {
  const box = $('#form-error');
  const m = /^params\.([\w.]+): (.*)$/s.exec(err.message);
  const field = m ? m[1] : '';
  let message = m ? m[2] : err.message;
  let pointer = null;
  if (field === 'space') {
    const p = /^(\/[^\s:]*): (.*)$/s.exec(message);
    if (p) [, pointer, message] = p;
  }
  box.dataset.field = field;
  box.dataset.pointer = pointer ?? '';
  const parts = [el('p', {}, el('strong', { text: field ? `${field}${pointer ? ` at ${pointer}` : ''}: ` : '' }), message)];
  if (err instanceof ApiError) {
    parts.push(el('p', { class: 'hint', text: `${err.status} ${err.code}${err.requestId ? ` · request id ${err.requestId}` : ''}` }));
  }
  const control = controlFor(field, pointer);
  if (control) control.setAttribute('aria-invalid', 'true');
  if (field === 'space' && pointer && spaceMode() === 'document') {
    const text = $('#space-doc').value;
    const range = locatePointer(text, pointer);
    const line = text.slice(0, range[0]).split('\n').length;
    parts.push(el('button', { type: 'button', class: 'small', id: 'show-node', text: `Show ${pointer} (line ${line})`,
      onclick: () => { $('#space-doc').focus(); $('#space-doc').setSelectionRange(range[0], range[1]); } }));
  } else if (control) {
    parts.push(el('button', { type: 'button', class: 'small', text: `Go to ${field}`, onclick: () => control.focus() }));
  }
  box.replaceChildren(...parts);
  box.hidden = false;
}

async function start() {
  clearFormError();
  clearError();
  let body;
  try {
    body = request();
  } catch (err) {
    showFormError(err);
    return;
  }
  const button = $('#start');
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  $('#status').textContent = 'Starting…';
  try {
    const job = await api('/v1/jobs', { method: 'POST', body });
    $('#status').textContent = `Started search ${job.id}.`;
    await refreshList();
    location.hash = job.id;
  } catch (err) {
    $('#status').textContent = 'Not started.';
    // The params' refusals (422, 404, 409) belong to the form; the rest (no key, a key without
    // the jobs scope, no server) to the banner, as on every page.
    if (err instanceof ApiError && err.status >= 400 && err.status < 500 && ![401, 403].includes(err.status)) showFormError(err);
    else showError(err);
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

// ---- The list ---------------------------------------------------------------------------------

async function refreshList() {
  let doc;
  try {
    doc = await api('/v1/jobs?kind=search&limit=20');
  } catch (err) {
    showError(err);
    return;
  }
  $('#search-list').replaceChildren(doc.jobs.length ? jobTable(doc.jobs, 'searches')
    : el('p', { class: 'hint', text: 'No searches yet.' }));
}

// ---- One search -------------------------------------------------------------------------------

const objectiveName = (job) => (typeof job.params.objective === 'string' ? job.params.objective
  : job.params.objective?.name || 'value');

// The rows best first: by value, largest first, ties to the earlier trial (the server's best is
// the first trial of the largest value); rows with no value (failed) last, by trial.
function ranked(rows) {
  return [...rows].sort((a, b) => (scored(b) - scored(a)) || (scored(a) && b.value - a.value) || a.trial - b.trial);
}

const paramsText = (params) => Object.entries(params || {}).map(([k, v]) => `${k.slice(1) || '/'}=${formatValue(v)}`).join(', ');

// The leaderboard's length: a search of thousands of trials shows its best (the file has them all).
const SHOWN = 100;

function leaderboard(rows) {
  const order = ranked(rows).slice(0, SHOWN);
  // The objectives that train give each trial its metric per epoch: how many it ran is shown.
  const epochs = rows.some((r) => Array.isArray(r.epochs));
  const table = dataTable(['rank', 'trial', 'params', 'value', 'state', 'seconds', ...(epochs ? ['epochs'] : [])],
    order.map((r, i) => [
      i + 1,
      // A trial run as a child job (rows with "job") opens on the Jobs page.
      r.job ? el('a', { href: `jobs.html#${r.job}`, text: String(r.trial), title: `trial job ${r.job}` }) : r.trial,
      paramsText(r.params),
      r.value,
      r.state,
      r.seconds,
      ...(epochs ? [r.epochs?.length] : []),
    ]), { class: 'wide', id: 'trials' });
  [...table.tBodies[0].rows].forEach((tr, i) => {
    const r = order[i];
    tr.dataset.trial = r.trial;
    tr.dataset.state = r.state;
    if (scored(r)) tr.dataset.value = r.value;
    if (r.error) tr.title = r.error;
    if (i === 0 && scored(r)) tr.classList.add('best');
  });
  return table;
}

// Redraws the leaderboard and the charts from the current rows.
function draw() {
  const { rows, job } = current;
  const best = ranked(rows)[0];
  const shown = rows.length > SHOWN ? `; the best ${SHOWN} are shown` : '';
  $('#leaderboard-hint').textContent = rows.length
    ? `${rows.length} trial${rows.length > 1 ? 's' : ''} finished${shown}; the best is highlighted. Hover over a failed trial for its error.`
    : 'No trial has finished yet.';
  $('#leaderboard').replaceChildren(rows.length ? leaderboard(rows) : '');
  $('#open-best').disabled = !(best && scored(best) && best.policy);
  const name = objectiveName(job);
  $('#curve-area').hidden = !rows.some(scored);
  $('#curve-figure').replaceChildren(rows.some(scored) ? curveChart(rows, name) : '');
  const grid = isNmGrid(rows);
  $('#heatmap-area').hidden = !grid;
  $('#heatmap-figure').replaceChildren(grid ? heatmapChart(rows, name) : '');
}

// Reads trials.jsonl (a line per finished trial) and redraws; a line still being written is
// left for the next read.
async function readTrials(search) {
  const text = await artifactText(search.id, 'trials.jsonl', search.controller.signal);
  if (current !== search) return;
  const rows = [];
  for (const line of (text || '').split('\n')) {
    try {
      if (line.trim()) rows.push(JSON.parse(line));
    } catch {
      break;
    }
  }
  search.rows = rows;
  search.lastRead = performance.now();
  draw();
}

// Reads the trials again: one read at a time, and one more after it when asked meanwhile.
function refreshTrials() {
  const search = current;
  if (search.reading) {
    search.again = true;
    return search.reading;
  }
  search.reading = (async () => {
    do {
      search.again = false;
      await readTrials(search);
    } while (search.again && current === search);
  })().catch((err) => { if (err.name !== 'AbortError') showError(err); })
    .finally(() => { search.reading = null; });
  return search.reading;
}

const READ_EVERY_MS = 2000;

function onEvent({ type, data }) {
  if (type === 'progress') {
    showJobProgress(data.fraction, data.phase);
    // Progress moves within a trial too: read between trials' log lines at most every 2 s.
    if (performance.now() - current.lastRead > READ_EVERY_MS) refreshTrials();
  } else if (type === 'log') {
    logLine(data.message, 'message');
    // "trial k: value" (or "... failed: why"): a row was added.
    refreshTrials();
  } else if (type === 'state') {
    current.job = jobStateEvent(current.job, data, 'searches');
  }
}

// The end: the job read again (its result comes with it), the final rows, the result and files.
async function showEnd(search) {
  const job = await api(`/v1/jobs/${search.id}`, { signal: search.controller.signal });
  if (current !== search) return;
  search.job = job;
  showJobState(job, 'searches');
  $('#stream-status').textContent = '';
  await refreshTrials();
  const { result } = job;
  $('#result-area').hidden = !result;
  if (result) {
    $('#result').replaceChildren(keyValueTable({ 'best trial': result.best?.trial, 'best value': result.best?.value,
      'best params': paramsText(result.best?.params), 'saved as': result.saved_as, objective: result.objective,
      model: result.model, dataset: result.dataset, split: result.split }, { id: 'result-table' }));
    $('#best-policy').textContent = JSON.stringify(result.best?.policy ?? null, null, 2);
  }
  const { files } = await artifactsView(search.id);
  if (current !== search) return;
  $('#search-artifacts').replaceChildren(...files);
  $('#files-area').hidden = files.length === 0;
}

async function openSearch(id) {
  if (current) current.controller.abort();
  clearError();
  const search = { id, job: null, rows: [], controller: new AbortController(), reading: null, again: false, lastRead: 0 };
  current = search;
  $('#job-view').hidden = false;
  $('#job-title').textContent = `Search ${id}`;
  for (const node of ['#leaderboard', '#curve-figure', '#heatmap-figure', '#result', '#best-policy', '#search-artifacts',
    '#job-log', '#job-phase']) $(node).replaceChildren();
  for (const area of ['#curve-area', '#heatmap-area', '#result-area', '#files-area']) $(area).hidden = true;
  $('#open-best').disabled = true;
  try {
    const job = await api(`/v1/jobs/${id}`, { signal: search.controller.signal });
    if (job.kind !== 'search') throw new Error(`job ${id} is a ${job.kind} job, not a search: open it on the Jobs page`);
    search.job = job;
    showJobState(job, 'searches');
    showJobProgress(job.progress.fraction, job.progress.phase);
    await refreshTrials();
    await followJob(id, search.controller.signal, onEvent);
    await showEnd(search);
  } catch (err) {
    if (err.name !== 'AbortError') showError(err);
  }
}

async function cancel() {
  const { id } = current;
  const job = await cancelJob(id, 'searches', () => current.id === id);
  if (job && current.id === id) current.job = job;
}

// The Augment page takes a policy document from its address, #policy=<the document as
// URI-encoded JSON> (static/js/augment.js), and loads it into its policy editor.
function openBest() {
  const best = ranked(current.rows)[0];
  location.assign(`index.html#policy=${encodeURIComponent(JSON.stringify(best.policy))}`);
}

// ---- Start-up ---------------------------------------------------------------------------------

async function init() {
  await initShell();
  jobStatus();
  showSpaceFields();
  showObjective();
  argumentFields($('#algorithm-args'), 'algo-arg', ALGORITHMS[$('#algorithm').value], 'number');
  for (const radio of document.querySelectorAll('input[name="space-mode"]')) radio.addEventListener('change', showSpaceFields);
  $('#space-name').addEventListener('change', showSpaceFields);
  $('#algorithm').addEventListener('change', () =>
    argumentFields($('#algorithm-args'), 'algo-arg', ALGORITHMS[$('#algorithm').value], 'number'));
  $('#objective').addEventListener('change', showObjective);
  $('#dataset').addEventListener('change', fillSplits);
  $('#controls').addEventListener('submit', (event) => { event.preventDefault(); start(); });
  $('#copy-curl').addEventListener('click', (event) => {
    clearFormError();
    try {
      copyText(curlJson('/v1/jobs', request()), event.currentTarget);
    } catch (err) {
      showFormError(err);
    }
  });
  $('#refresh').addEventListener('click', refreshList);
  $('#cancel').addEventListener('click', cancel);
  $('#open-best').addEventListener('click', openBest);
  window.addEventListener('hashchange', () => { if (location.hash.length > 1) openSearch(location.hash.slice(1)); });
  const [choices] = await Promise.all([dataChoices(), refreshList()]);
  $('#model').replaceChildren(...modelOptions(choices.models));
  datasets = choices.datasets;
  $('#dataset').replaceChildren(...datasetOptions(datasets));
  fillSplits();
  if (location.hash.length > 1) openSearch(location.hash.slice(1));
  document.body.dataset.ready = 'true';
}

init();
