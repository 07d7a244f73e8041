// SVG for the charts the pages draw themselves (js/scatter.js, js/search-charts.js,
// js/ctaugment.js): elements, the padded range of a set of values, a tick's label and the
// heatmaps' colour scale.

const NS = 'http://www.w3.org/2000/svg';

// svg('line', {x1: 0, ...}, child, ...): an SVG element with its attributes and children.
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

// [lo, hi] of the finite values (and ref, when given), widened by a tenth on each side (0.1 when
// all are one value), as server/job_chart.c's fit().
export function fit(values, ref) {
  const finite = values.filter(Number.isFinite);
  if (ref !== undefined) finite.push(ref);
  // reduce, not Math.min(...finite): a search's 100000 values are past what a call's arguments hold.
  let lo = finite.reduce((a, v) => Math.min(a, v), Infinity);
  let hi = finite.reduce((a, v) => Math.max(a, v), -Infinity);
  const pad = hi > lo ? (hi - lo) / 10 : 0.1;
  lo -= pad;
  hi += pad;
  return [lo, hi];
}

export const tickLabel = (v) => Number(v.toPrecision(3)).toString();

// The colour scale of the heatmaps: magma's stops (as .legend in style.css), dark for the
// lowest value, light for the highest, so the order of the values is the order of lightness.
export const MAGMA = [[0, 0, 4], [59, 15, 112], [140, 41, 129], [222, 73, 104], [254, 159, 109], [252, 253, 191]];

// The colour of t in [0, 1] on that scale.
export function magma(t) {
  const x = Math.min(Math.max(t, 0), 1) * (MAGMA.length - 1);
  const i = Math.min(Math.floor(x), MAGMA.length - 2);
  const f = x - i;
  return `rgb(${MAGMA[i].map((c, k) => Math.round(c + f * (MAGMA[i + 1][k] - c))).join(', ')})`;
}

// A heatmap's legend: the colour scale as a bar at x from top (hi, the lightest) down height
// (lo), its ends labelled when shown, and label under it at labelY. Its nodes, to append.
export function heatLegend({ x, top, height, lo, hi, shown, label, labelY }) {
  const stops = MAGMA.map((_, k) => svg('stop', { offset: String(k / (MAGMA.length - 1)), 'stop-color': magma(1 - k / (MAGMA.length - 1)) }));
  return [svg('defs', {}, svg('linearGradient', { id: 'heat-scale', x1: 0, y1: 0, x2: 0, y2: 1 }, ...stops)),
    svg('rect', { x, y: top, width: 12, height, fill: 'url(#heat-scale)', stroke: 'var(--border)', id: 'heat-legend' }),
    svg('text', { x: x + 16, y: top + 10, class: 'tick' }, shown ? tickLabel(hi) : ''),
    svg('text', { x: x + 16, y: top + height, class: 'tick' }, shown ? tickLabel(lo) : ''),
    svg('text', { x, y: labelY }, label)];
}
