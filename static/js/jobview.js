// What the Jobs and Search pages share about jobs: a job's row in a list and its state at a
// glance, the model and dataset choices of a job's form, a JSON field's value, and a job's files
// (each to download, its PNG charts shown).
import { api, apiBlob } from './api.js';
import { $, dataTable, downloadBlob, el, showError } from './ui.js';

export const FINAL = ['succeeded', 'failed', 'cancelled', 'interrupted'];

export const pct = (f) => `${(100 * f).toFixed(0)}%`;

const when = (t) => t.replace('T', ' ').replace(/\.\d+Z$/, '');

export function stateBadge(state, id) {
  return el('span', { class: `badge state-${state}`, id, text: state });
}

// "attempts 1 · created ... · started ... UTC" for a job's summary line.
export function jobTimes(job) {
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

// The text of a job's file; null when the job has none of that name (yet).
export async function artifactText(id, name, signal) {
  try {
    return await (await apiBlob(artifactPath(id, name), { signal })).text();
  } catch (err) {
    if (err.status === 404) return null;
    throw err;
  }
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
