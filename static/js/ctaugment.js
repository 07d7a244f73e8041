// The CTAugment page: make or choose a state (/v1/ctaugment), see its rates or probabilities as
// an ops x bins heatmap, draw strong or probe views of an image, and send a probe's score back as
// feedback, which redraws the heatmap from the state the server answers.
import { api, toForm } from './api.js';
import { $, dataUrl, dropZone, el, formatValue, initShell, showError, thumbnails, withBusy } from './ui.js';
import { heatLegend, magma, svg, tickLabel } from './svg.js';

const W = 560;
const LEFT = 118;
const TOP = 8;
const CELL_H = 15;
const LEGEND_W = 64;
let image = null;
let current = null; // the chosen state's document

// The heatmap's rows: one per op and argument ("rescale 1/2" for an op of two), each with its
// values (per bin) of member (state.rates or probabilities).
function heatRows(doc, member) {
  const perOp = member === 'rates' ? doc.state.rates : doc.probabilities;
  return Object.entries(perOp).flatMap(([op, args]) => args.map((values, arg) =>
    ({ op, arg, values, name: args.length > 1 ? `${op} ${arg + 1}/${args.length}` : op })));
}

// The grid of bins coloured by value (lowest dark, highest light; one colour when all are
// equal), a cell per bin of each row, with a legend. A probability is coloured as a multiple of
// its row's uniform one (q x bins), so rows of 6, 8 and 17 bins share one scale.
function heatmapChart(doc, member) {
  const rows = heatRows(doc, member);
  const shade = (row, v) => (member === 'rates' ? v : v * row.values.length);
  const values = rows.flatMap((r) => r.values.map((v) => shade(r, v)));
  const lo = values.reduce((a, v) => Math.min(a, v), Infinity);
  const hi = values.reduce((a, v) => Math.max(a, v), -Infinity);
  const t = (v) => (hi > lo ? (v - lo) / (hi - lo) : 0.5);
  const bins = rows.reduce((a, r) => Math.max(a, r.values.length), 1);
  const cellW = (W - LEFT - LEGEND_W) / bins;
  const plotH = rows.length * CELL_H;
  const parts = [];
  for (const [i, row] of rows.entries()) {
    const y = TOP + i * CELL_H;
    parts.push(svg('text', { x: LEFT - 6, y: y + CELL_H - 4, 'text-anchor': 'end', class: 'tick' }, row.name));
    for (const [b, v] of row.values.entries()) {
      const from = tickLabel(b / row.values.length);
      const to = tickLabel((b + 1) / row.values.length);
      parts.push(svg('rect', { x: LEFT + b * cellW, y, width: cellW, height: CELL_H, class: 'cell', fill: magma(t(shade(row, v))),
        stroke: 'var(--border)', 'data-op': row.op, 'data-arg': row.arg, 'data-bin': b, 'data-value': v },
      svg('title', {}, `${row.name}, bin ${b} (values ${from} to ${to}): ${member === 'rates' ? 'rate' : 'probability'} ${formatValue(v)}`)));
    }
  }
  const bottom = TOP + plotH;
  parts.push(
    ...[0, Math.floor(bins / 2), bins - 1].map((b) => svg('text', { x: LEFT + (b + 0.5) * cellW, y: bottom + 14,
      'text-anchor': 'middle', class: 'tick' }, String(b))),
    svg('text', { x: LEFT + (bins * cellW) / 2, y: bottom + 30, 'text-anchor': 'middle' }, 'bin'),
    ...heatLegend({ x: LEFT + bins * cellW + 14, top: TOP, height: plotH, lo, hi, shown: true,
      label: member === 'rates' ? 'rate' : 'x uniform', labelY: bottom + 30 }));
  return svg('svg', { viewBox: `0 0 ${W} ${bottom + 38}`, class: 'chart-svg', role: 'img', id: 'heatmap',
    'data-member': member, 'aria-label': `The state's ${member} per op, argument and bin` }, ...parts);
}

function showState(doc) {
  current = doc;
  $('#delete-state').disabled = !doc;
  if (!doc) {
    $('#state-info').textContent = '';
    $('#heatmap-area').replaceChildren(el('p', { class: 'hint', text: 'Make a state, or choose one, to see its rates.' }));
    return;
  }
  const { depth, decay, threshold } = doc.state;
  $('#state-info').textContent = `revision ${doc.revision} · depth ${depth}, decay ${decay}, threshold ${threshold}` +
    ` · made ${doc.created}${doc.owner ? ` by ${doc.owner}` : ''}`;
  $('#heatmap-area').replaceChildren(heatmapChart(doc, $('#show').value));
}

// Lists the states into the select, choosing id (or the first); shows the chosen one.
async function loadStates(id) {
  const { states } = await api('/v1/ctaugment');
  $('#state').replaceChildren(...states.map((s) => el('option', { value: s.id,
    text: `${s.id.slice(0, 8)} · revision ${s.revision} · ${s.created}` })));
  if (!states.length) {
    $('#state').append(el('option', { value: '', text: 'none yet: make one' }));
    showState(null);
    return;
  }
  $('#state').value = id && states.some((s) => s.id === id) ? id : states[0].id;
  showState(await api(`/v1/ctaugment/${$('#state').value}`));
}

const policyText = (policy) => policy.map(([op, values]) =>
  (values.length ? `${op} ${values.map((v) => v.toFixed(3)).join(', ')}` : op)).join(' · ') || 'no ops';

// Sends a probe's policy with proximity as feedback; the heatmap then shows the state it left.
async function sendFeedback(policy, input, button) {
  const proximity = Number(input.value);
  const doc = await withBusy(button, $('#results'), $('#status'), 'Sending feedback', () =>
    api(`/v1/ctaugment/${current.id}/feedback`, { method: 'POST', body: { feedback: [{ policy, proximity }] } }));
  if (!doc) return;
  button.textContent = 'Sent';
  showState(doc);
}

// A view: its image, its policy, and for a probe the feedback form.
function viewFigure(result, probe, index) {
  const caption = el('figcaption', { class: 'policy', text: policyText(result.policy) + (result.cutout ? ' · cutout' : '') });
  const figure = el('figure', { class: 'view', dataset: { policy: JSON.stringify(result.policy) } },
    el('img', { class: 'pixelated', src: dataUrl(result.content_type, result.data),
      alt: `${probe ? 'probe' : 'strong'} view ${result.sample}` }), caption);
  if (probe) {
    const id = `proximity-${index}`;
    const input = el('input', { type: 'number', id, min: 0, max: 1, step: 0.01, value: 1 });
    const button = el('button', { type: 'button', class: 'small send', text: 'Send feedback',
      onclick: () => sendFeedback(result.policy, input, button) });
    figure.append(el('div', { class: 'feedback' }, el('label', { for: id, text: 'Proximity: 1 right, 0 wrong' }),
      input, button));
  }
  return figure;
}

async function draw(route, button) {
  if (!current) {
    showError(new Error('Make or choose a state first.'));
    return;
  }
  if (!image) {
    showError(new Error('Choose an image first.'));
    $('#image').focus();
    return;
  }
  const fields = { image, seed: $('#seed').value, samples: $('#samples').value };
  const doc = await withBusy(button, $('#results'), $('#status'), route === 'probe' ? 'Probing' : 'Drawing', () =>
    api(`/v1/ctaugment/${current.id}/${route}`, { method: 'POST', body: toForm(fields) }));
  if (!doc) return;
  $('#seed').value = doc.seed;
  $('#views').replaceChildren(...doc.results.map((r, i) => viewFigure(r, route === 'probe', i)));
  $('#views').dataset.route = route;
}

async function start() {
  await initShell();
  dropZone($('#image-drop'), $('#image'), ([f]) => { image = f; thumbnails($('#image-thumb'), [f]); });
  $('#controls').addEventListener('submit', (event) => { event.preventDefault(); draw('augment', $('#augment')); });
  $('#probe').addEventListener('click', () => draw('probe', $('#probe')));
  $('#show').addEventListener('change', () => showState(current));
  $('#state').addEventListener('change', () => loadStates($('#state').value).catch(showError));
  $('#new-state').addEventListener('click', async () => {
    const doc = await withBusy($('#new-state'), null, $('#status'), 'Making a state', () =>
      api('/v1/ctaugment', { method: 'POST' }));
    if (doc) await loadStates(doc.id).catch(showError);
  });
  $('#delete-state').addEventListener('click', async () => {
    const id = current.id;
    const done = await withBusy($('#delete-state'), null, $('#status'), 'Deleting', () =>
      api(`/v1/ctaugment/${id}`, { method: 'DELETE' }).then(() => true));
    if (done) {
      $('#views').replaceChildren();
      await loadStates().catch(showError);
    }
  });
  await loadStates().catch(showError);
  document.body.dataset.ready = 'true';
}

start();
