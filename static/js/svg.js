// SVG for the charts the pages draw themselves (js/scatter.js, js/search-charts.js): elements,
// the padded range of a set of values, and a tick's label.

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
