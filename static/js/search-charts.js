// The Search page's charts, drawn as SVG from the trials' rows (trials.jsonl's, or a finished
// search's result.trials: {trial, params, value, state, ...}), so they follow a running search:
// the best value so far after each trial, and RandAugment's N x M heatmap.
import { fit, heatLegend, magma, svg, tickLabel } from './svg.js';

const W = 560;
const H = 300;
const LEFT = 60;
const RIGHT = 16;
const TOP = 16;
const BOTTOM = 44;

// Whether a row has a value (a failed trial's is null).
export const scored = (row) => typeof row.value === 'number' && Number.isFinite(row.value);

// The points of the best-so-far curve: after each trial (in trial order) that has a value or
// follows one, the largest value so far; trials before the first value have none.
function bestSoFar(rows) {
  const points = [];
  let best = -Infinity;
  for (const row of [...rows].sort((a, b) => a.trial - b.trial)) {
    if (scored(row)) best = Math.max(best, row.value);
    if (best > -Infinity) points.push({ trial: row.trial, best });
  }
  return points;
}

// Axis lines from the plot's corner, the two labels and the ticks: [[value, position], ...].
function axes(plotW, plotH, xLabel, yLabel, xTicks, yTicks) {
  const bottom = TOP + plotH;
  return [
    svg('line', { x1: LEFT, y1: TOP, x2: LEFT, y2: bottom, stroke: 'currentColor' }),
    svg('line', { x1: LEFT, y1: bottom, x2: LEFT + plotW, y2: bottom, stroke: 'currentColor' }),
    svg('text', { x: LEFT + plotW / 2, y: H - 6, 'text-anchor': 'middle' }, xLabel),
    svg('text', { x: 14, y: TOP + plotH / 2, 'text-anchor': 'middle', transform: `rotate(-90 14 ${TOP + plotH / 2})` }, yLabel),
    ...xTicks.map(([text, x]) => svg('text', { x, y: bottom + 16, 'text-anchor': 'middle', class: 'tick' }, text)),
    ...yTicks.map(([text, y]) => svg('text', { x: LEFT - 6, y: y + 4, 'text-anchor': 'end', class: 'tick' }, text)),
  ];
}

// Every trial number up to 10 trials, else the first, the middle and the last.
const trialTicks = (last) => (last <= 10 ? Array.from({ length: last + 1 }, (_, t) => t) : [0, Math.round(last / 2), last]);

// The best value so far against the trial number: a step line through a point per trial.
export function curveChart(rows, valueName) {
  const points = bestSoFar(rows);
  const plotW = W - LEFT - RIGHT;
  const plotH = H - TOP - BOTTOM;
  const last = rows.reduce((a, r) => Math.max(a, r.trial), 1);
  const [y0, y1] = fit(points.map((p) => p.best));
  const px = (t) => LEFT + (t / last) * plotW;
  const py = (v) => TOP + plotH - ((v - y0) / (y1 - y0)) * plotH;
  const ends = points.length ? [points[0].best, points.at(-1).best] : [];
  const parts = axes(plotW, plotH, 'trial', `best ${valueName} so far`,
    trialTicks(last).map((t) => [String(t), px(t)]),
    [...new Set(ends)].map((v) => [tickLabel(v), py(v)]));
  if (points.length) {
    const path = points.map((p, i) => `${i ? `H${px(p.trial)} V` : `M${px(p.trial)} `}${py(p.best)}`).join(' ');
    parts.push(svg('path', { d: path, fill: 'none', stroke: 'var(--bar)', 'stroke-width': 2 }));
    // A dot per trial, while they stay apart.
    if (points.length <= 200) {
      parts.push(...points.map((p) => svg('circle', { cx: px(p.trial), cy: py(p.best), r: 3.5, fill: 'var(--bar)',
        'data-trial': p.trial, 'data-value': p.best }, svg('title', {}, `after trial ${p.trial}: ${tickLabel(p.best)}`))));
    }
  }
  return svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart-svg', role: 'img', id: 'curve',
    'aria-label': `The best ${valueName} so far after each trial` }, ...parts);
}

// Whether the rows are of a RandAugment (N, M) space: every row's params are exactly /n and /m.
export function isNmGrid(rows) {
  return rows.length > 0 && rows.every((r) => r.params && Object.keys(r.params).sort().join(' ') === '/m /n');
}

// {ns, ms, cells: Map "n m" -> {mean, count}}: the values of n and m the trials took, ascending,
// and each cell's mean value over its trials with a value (a cell with none is left out).
function nmCells(rows) {
  const ns = [...new Set(rows.map((r) => r.params['/n']))].sort((a, b) => a - b);
  const ms = [...new Set(rows.map((r) => r.params['/m']))].sort((a, b) => a - b);
  const sums = new Map();
  for (const r of rows.filter(scored)) {
    const key = `${r.params['/n']} ${r.params['/m']}`;
    const cell = sums.get(key) || { sum: 0, count: 0 };
    sums.set(key, { sum: cell.sum + r.value, count: cell.count + 1 });
  }
  const cells = new Map([...sums].map(([key, c]) => [key, { mean: c.sum / c.count, count: c.count }]));
  return { ns, ms, cells };
}

// The N x M grid coloured by each cell's mean value (blank where no trial has one), with the
// value written in the cell and a legend of the colour scale.
export function heatmapChart(rows, valueName) {
  const { ns, ms, cells } = nmCells(rows);
  const means = [...cells.values()].map((c) => c.mean);
  const lo = means.reduce((a, v) => Math.min(a, v), Infinity);
  const hi = means.reduce((a, v) => Math.max(a, v), -Infinity);
  const t = (v) => (hi > lo ? (v - lo) / (hi - lo) : 0.5);
  const legendW = 70;
  const cellW = Math.min(72, (W - LEFT - RIGHT - legendW) / ms.length);
  const cellH = Math.min(44, (H - TOP - BOTTOM) / ns.length);
  const plotW = cellW * ms.length;
  const plotH = cellH * ns.length;
  const parts = [];
  for (const [i, n] of ns.entries()) {
    for (const [j, m] of ms.entries()) {
      const cell = cells.get(`${n} ${m}`);
      const x = LEFT + j * cellW;
      const y = TOP + i * cellH;
      const what = cell ? `${tickLabel(cell.mean)} (${cell.count} trial${cell.count > 1 ? 's' : ''})` : 'no value';
      parts.push(svg('rect', { x, y, width: cellW, height: cellH, class: 'cell', fill: cell ? magma(t(cell.mean)) : 'none',
        stroke: 'var(--border)', 'data-n': n, 'data-m': m, ...(cell ? { 'data-value': cell.mean } : {}) },
      svg('title', {}, `N ${n}, M ${m}: ${what}`)));
      if (cell && cellW >= 32) {
        parts.push(svg('text', { x: x + cellW / 2, y: y + cellH / 2 + 4, 'text-anchor': 'middle', class: 'tick',
          fill: t(cell.mean) > 0.6 ? 'black' : 'white' }, tickLabel(cell.mean)));
      }
    }
  }
  const bottom = TOP + plotH;
  parts.push(
    svg('text', { x: LEFT + plotW / 2, y: bottom + 34, 'text-anchor': 'middle' }, 'M (magnitude)'),
    svg('text', { x: 14, y: TOP + plotH / 2, 'text-anchor': 'middle', transform: `rotate(-90 14 ${TOP + plotH / 2})` }, 'N (ops)'),
    // Narrow columns (a random search over M's 31 bins) label every few.
    ...ms.map((m, j) => (j % Math.ceil(ms.length / 16) ? '' : svg('text', { x: LEFT + (j + 0.5) * cellW, y: bottom + 16,
      'text-anchor': 'middle', class: 'tick' }, String(m)))),
    ...ns.map((n, i) => svg('text', { x: LEFT - 6, y: TOP + (i + 0.5) * cellH + 4, 'text-anchor': 'end', class: 'tick' }, String(n))));
  // The legend: the scale from the lowest mean (bottom) to the highest (top).
  parts.push(...heatLegend({ x: LEFT + plotW + 20, top: TOP, height: plotH, lo, hi, shown: means.length > 0,
    label: valueName, labelY: bottom + 34 }));
  return svg('svg', { viewBox: `0 0 ${W} ${bottom + BOTTOM}`, class: 'chart-svg', role: 'img', id: 'heatmap',
    'aria-label': `RandAugment's ${valueName} by N and M` }, ...parts);
}
