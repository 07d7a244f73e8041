// The affinity-diversity scatter (Gontijo-Lopes et al. 2020, Figure 1) as SVG, from an
// affinity-diversity job's result.scatter (server/job_affinity_diversity.c): affinity on x,
// diversity on y, a point per policy coloured by its gain on the diverging scale scatter.png uses
// (server/job_chart.c: red at -gain_scale, white at 0, blue at +gain_scale), with the scale as a
// colour bar, grey lines through the clean model's (1, 1), and each point named.
import { fit, svg, tickLabel as label } from './svg.js';

const W = 560;
const H = 360;
const LEFT = 56;
const RIGHT = 96; // the colour bar and its labels
const TOP = 16;
const BOTTOM = 44;
const RED = [215, 70, 60];
const BLUE = [66, 110, 200];

// The colour of t in [-1, 1], as job_chart.c's diverging().
function diverging(t) {
  const end = t < 0 ? RED : BLUE;
  const a = Math.min(Math.abs(t), 1);
  return `rgb(${end.map((c) => Math.round(255 + a * (c - 255))).join(', ')})`;
}

// The chart for scatter = {points: [{name, affinity, diversity, gain}], gain_scale}.
export function scatterChart({ points, gain_scale: scale }) {
  const shown = points.filter((p) => Number.isFinite(p.affinity) && Number.isFinite(p.diversity));
  const [x0, x1] = fit(shown.map((p) => p.affinity), 1);
  const [y0, y1] = fit(shown.map((p) => p.diversity), 1);
  const plotW = W - LEFT - RIGHT;
  const plotH = H - TOP - BOTTOM;
  const px = (v) => LEFT + ((v - x0) / (x1 - x0)) * plotW;
  const py = (v) => TOP + plotH - ((v - y0) / (y1 - y0)) * plotH;
  const axes = [
    svg('line', { x1: LEFT, y1: TOP, x2: LEFT, y2: TOP + plotH, stroke: 'black' }),
    svg('line', { x1: LEFT, y1: TOP + plotH, x2: LEFT + plotW, y2: TOP + plotH, stroke: 'black' }),
    svg('line', { x1: px(1), y1: TOP, x2: px(1), y2: TOP + plotH, stroke: '#aaa' }),
    svg('line', { x1: LEFT, y1: py(1), x2: LEFT + plotW, y2: py(1), stroke: '#aaa' }),
    svg('text', { x: LEFT + plotW / 2, y: H - 6, 'text-anchor': 'middle' }, 'affinity'),
    svg('text', { x: 14, y: TOP + plotH / 2, 'text-anchor': 'middle', transform: `rotate(-90 14 ${TOP + plotH / 2})` }, 'diversity'),
  ];
  for (const v of [x0, 1, x1]) {
    axes.push(svg('text', { x: px(v), y: TOP + plotH + 16, 'text-anchor': 'middle', class: 'tick' }, label(v)));
  }
  for (const v of [y0, 1, y1]) {
    axes.push(svg('text', { x: LEFT - 6, y: py(v) + 4, 'text-anchor': 'end', class: 'tick' }, label(v)));
  }
  const dots = shown.map((p) => svg('g', { class: 'point' },
    svg('circle', {
      cx: px(p.affinity), cy: py(p.diversity), r: 6, fill: diverging(Number.isFinite(p.gain) ? p.gain / scale : 0),
      stroke: 'black', 'data-name': p.name, 'data-gain': p.gain,
    }, svg('title', {}, `${p.name}: affinity ${label(p.affinity)}, diversity ${label(p.diversity)}, gain ${label(p.gain)}`)),
    svg('text', { x: px(p.affinity) + 9, y: py(p.diversity) - 7, class: 'tick' }, p.name)));
  // The colour bar: +scale at the top, -scale at the bottom.
  const barX = W - RIGHT + 24;
  const gradient = svg('linearGradient', { id: 'gain-scale', x1: 0, y1: 0, x2: 0, y2: 1 },
    svg('stop', { offset: '0', 'stop-color': diverging(1) }),
    svg('stop', { offset: '0.5', 'stop-color': diverging(0) }),
    svg('stop', { offset: '1', 'stop-color': diverging(-1) }));
  const bar = [
    svg('defs', {}, gradient),
    svg('rect', { x: barX, y: TOP, width: 12, height: plotH, fill: 'url(#gain-scale)', stroke: '#666' }),
    svg('text', { x: barX + 16, y: TOP + 10, class: 'tick' }, `+${label(scale)}`),
    svg('text', { x: barX + 16, y: TOP + plotH / 2 + 4, class: 'tick' }, '0'),
    svg('text', { x: barX + 16, y: TOP + plotH, class: 'tick' }, `-${label(scale)}`),
    svg('text', { x: barX + 6, y: H - 6, 'text-anchor': 'middle' }, 'gain'),
  ];
  return svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'scatter', role: 'img', 'aria-label': 'Affinity against diversity, coloured by accuracy gain', id: 'scatter' },
    ...axes, ...dots, ...bar);
}
