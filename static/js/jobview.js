// What the Jobs and Search pages share about jobs: a job's row in a list and its state at a
// glance, the model and dataset choices of a job's form, a JSON field's value, a job's files
// (each to download, its PNG charts shown), and the panel of the job a page follows.
import { api, apiBlob, followEvents } from './api.js';
import { $, dataTable, downloadBlob, el, showError, withBusy } from './ui.js';

const FINAL = ['succeeded', 'failed', 'cancelled', 'interrupted'];

const pct = (f) => `${(100 * f).toFixed(0)}%`;

const when = (t) => t.replace('T', ' ').replace(/\.\d+Z$/, '');

function stateBadge(state, id) {
  return el('span', { class: `badge state-${state}`, id, text: state });
}

// "attempts 1 · created ... · started ... UTC" for a job's summary line.
function jobTimes(job) {
  const times = [['created', job.created], ['started', job.started], ['finished', job.finished]]
    .filter(([, t]) => t).map(([what, t]) => `${what} ${when(t)}`);
  return ` attempts ${job.attempts}${job.owner ? ` · owner ${job.owner}` : ''} · ${times.join(' · ')} UTC`;
}

// A job's row in a list (#<id> opens it on the same page).
export function listRow(job) {
  return el('tr', { dataset: { job: job.id, state: job.state } },
    el('td', {}, el('a', { href: `#${job.id}`, text: job.id.slice(0, 8), title: job.id })),
    el('td', { text: job.kind }),
    el('td', {}, stateBadge(job.state)),
    el('td', { class: 'num', text: pct(job.progress.fraction) }),
    el('td', { text: when(job.created) }));
}

// The table of a list of jobs, with the id given (its rows replaced as the jobs change).
export function jobTable(jobs, id) {
  const table = dataTable(['job', 'kind', 'state', 'progress', 'created (UTC)'], [], { class: 'wide', id });
  $('tbody', table).append(...jobs.map(listRow));
  return table;
}

// The models a job can use (ready, with preprocessing) and the ready datasets; an error is shown
// and leaves that list empty.
export async function dataChoices() {
  const [models, datasets] = await Promise.all([
    api('/v1/models').then((d) => d.models, (err) => { showError(err); return []; }),
    api('/v1/datasets').then((d) => d.datasets, (err) => { showError(err); return []; }),
  ]);
  return { models: models.filter((m) => m.status === 'ready' && m.preprocess),
    datasets: datasets.filter((d) => d.state === 'ready') };
}

export const modelOptions = (models) => models.map((m) => el('option', { value: m.name, text: m.name }));
export const datasetOptions = (datasets) => datasets.map((d) => el('option', { value: d.id, text: `${d.name} (${d.id})` }));
// A dataset's splits as options, with their image counts.
export const splitOptions = (dataset) => Object.entries(dataset?.splits || {}).map(([name, count]) =>
  el('option', { value: name, text: `${name} (${count})` }));

// A textarea's or input's JSON; an Error naming `what` (the input focused) when it is not JSON.
export function jsonField(input, what) {
  try {
    return JSON.parse(input.value);
  } catch (err) {
    input.focus();
    throw new Error(`${what} is not JSON: ${err.message}`);
  }
}

const artifactPath = (id, name) => `/v1/jobs/${id}/artifacts/${encodeURIComponent(name)}`;

// The text of a job's file; null while the job has none of that name. The list is asked first,
// since the browser reports a 404 in its console as an error.
export async function artifactText(id, name, signal) {
  const { artifacts } = await api(`/v1/jobs/${id}/artifacts`, { signal });
  if (!artifacts.some((a) => a.name === name)) return null;
  return (await apiBlob(artifactPath(id, name), { signal })).text();
}

// A job's files: {files: a list item each with its download button, charts: a figure per PNG}.
// Fetched (not linked) so a key goes with the request.
export async function artifactsView(id) {
  const { artifacts } = await api(`/v1/jobs/${id}/artifacts`);
  const files = artifacts.map((a) => el('li', {},
    el('button', { type: 'button', class: 'small', text: `Download ${a.name}`, dataset: { artifact: a.name },
      onclick: () => apiBlob(artifactPath(id, a.name)).then((blob) => downloadBlob(blob, a.name), showError) }),
    el('span', { class: 'hint', text: ` ${a.content_type.split(';')[0]}, ${a.size} bytes` })));
  const charts = await Promise.all(artifacts.filter((a) => a.content_type.startsWith('image/png'))
    .map(async (a) => el('figure', { class: 'chart' },
      el('img', { src: URL.createObjectURL(await apiBlob(artifactPath(id, a.name))), alt: `chart ${a.name}` }),
      el('figcaption', { text: a.name }))));
  return { files, charts };
}

// ---- One job's panel ------------------------------------------------------------------------------
// Both pages show one job in #job-view: its head (summary, progress bar, phase, stream status,
// error) built into #job-status, a #cancel button and a #job-log list; its row is in the
// list table #<listId>.

export function jobStatus() {
  $('#job-status').replaceChildren(
    el('p', { id: 'job-summary' }),
    el('div', { class: 'progress-line' },
      el('progress', { id: 'job-progress', max: 1, value: 0, 'aria-label': 'Job progress' }),
      el('span', { id: 'job-percent', class: 'num', text: '0%' })),
    el('p', { class: 'hint' }, el('span', { id: 'job-phase' }), ' ', el('span', { id: 'stream-status', 'aria-live': 'polite' })),
    el('p', { class: 'invalid', id: 'job-error', hidden: true }));
}

export function showJobState(job, listId) {
  $('#job-view').dataset.state = job.state;
  $('#job-summary').replaceChildren(stateBadge(job.state, 'job-state'), jobTimes(job));
  $('#cancel').disabled = FINAL.includes(job.state) || job.cancel_requested;
  $('#job-error').hidden = !job.error;
  $('#job-error').textContent = job.error || '';
  const row = $(`#${listId} tr[data-job="${job.id}"]`);
  if (row) row.replaceWith(listRow(job));
}

export function showJobProgress(fraction, phase) {
  $('#job-progress').value = fraction;
  $('#job-percent').textContent = pct(fraction);
  $('#job-percent').dataset.fraction = fraction;
  if (phase !== undefined) $('#job-phase').textContent = phase || '';
}

export function logLine(text, kindOf) {
  $('#job-log').append(el('li', { class: kindOf, text }));
}

// A state event of the job's stream, logged and shown: the job as it now is.
export function jobStateEvent(job, data, listId) {
  const extra = data.error || data.reason || (data.attempt ? `attempt ${data.attempt}` : '');
  logLine(`state ${data.state}${extra ? `: ${extra}` : ''}`, 'state');
  let now = job;
  if (job.state !== data.state) {
    now = { ...job, state: data.state, error: data.error || job.error };
    showJobState(now, listId);
  }
  if (data.state === 'succeeded') showJobProgress(1);
  return now;
}

// Follows the job's events (api.js followEvents) to its end, the stream's state shown.
export function followJob(id, signal, onEvent) {
  return followEvents(`/v1/jobs/${id}/events`, {
    signal,
    onEvent,
    onStatus: (s) => { $('#stream-status').textContent = s === 'live' ? '· live' : '· reconnecting…'; },
  });
}

// Cancels the job (DELETE) with #cancel busy; shows its record when shown() says the page still
// shows it. Resolves to the record, or undefined after an error (in the banner).
export async function cancelJob(id, listId, shown) {
  const job = await withBusy($('#cancel'), null, $('#stream-status'), 'Cancelling', () =>
    api(`/v1/jobs/${id}`, { method: 'DELETE' }));
  if (job && shown()) showJobState(job, listId);
  return job;
}
