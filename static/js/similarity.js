// The Similarity page: two images through POST /v1/similarity with every metric, and LPIPS's
// per-pixel map (spatial=true) drawn as a heatmap over image A.
import { api, curlCommand, toForm } from './api.js';
import { $, copyText, dataUrl, dropZone, el, initShell, loadImage, showError, thumbnails, withBusy } from './ui.js';

const METRICS = {
  lpips: ['LPIPS', 'learned perceptual distance; 0 = identical, lower is closer'],
  ssim: ['SSIM', 'structural similarity; 1 = identical, higher is closer'],
  ms_ssim: ['MS-SSIM', 'SSIM over 5 scales; 1 = identical'],
  psnr: ['PSNR', 'dB; higher is closer, none (∞) for identical images'],
  l2: ['L2', 'mean squared difference of the 0-255 samples'],
};
// Stops of the inferno colour map, from 0 to 1.
const INFERNO = [[0, 0, 4], [59, 15, 112], [140, 41, 129], [222, 73, 104], [254, 159, 109], [252, 253, 191]];
let a = null;
let b = null;

function fields() {
  return { a, b, metrics: 'all', spatial: 'true', model: $('#model').value, channels: $('#channels').value,
    resize: $('#resize').checked ? 'true' : null };
}

function colour(t) {
  const x = Math.max(0, Math.min(1, t)) * (INFERNO.length - 1);
  const i = Math.min(INFERNO.length - 2, Math.floor(x));
  return INFERNO[i].map((c, k) => Math.round(c + (INFERNO[i + 1][k] - c) * (x - i)));
}

// The greyscale map (0 black .. 255 white = map_max) recoloured on a square-root scale, so
// small distances still show; the opacity slider blends it over image A.
async function drawHeatmap(mapBase64, width, height) {
  const img = await loadImage(dataUrl('image/png', mapBase64));
  const canvas = el('canvas', { class: 'heat', width, height, 'aria-hidden': 'true' });
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0, width, height);
  const pixels = ctx.getImageData(0, 0, width, height);
  for (let p = 0; p < pixels.data.length; p += 4) {
    const v = pixels.data[p] / 255;
    pixels.data.set([...colour(Math.sqrt(v)), 255], p);
  }
  ctx.putImageData(pixels, 0, 0);
  return canvas;
}

async function render(doc) {
  const rows = Object.entries(METRICS).map(([key, [name, meaning]]) => {
    const skipped = doc.skipped?.[key];
    const value = doc.metrics[key];
    const shown = key in doc.metrics ? (value === null ? '∞' : value.toFixed(4)) : '—';
    return el('tr', { dataset: { metric: key } }, el('th', { scope: 'row', text: name }),
      el('td', { class: 'num', text: shown }), el('td', { text: skipped ? `skipped: ${skipped}` : meaning }));
  });
  $('#metrics').replaceChildren(el('table', {},
    el('thead', {}, el('tr', {}, el('th', { text: 'metric' }), el('th', { text: 'value' }), el('th', { text: 'meaning' }))),
    el('tbody', {}, rows)), doc.model ? el('p', { class: 'hint', text: `LPIPS through model ${doc.model}.` }) : '');
  $('#map-area').hidden = !doc.map;
  if (!doc.map) return;
  const base = await loadImage(URL.createObjectURL(a));
  base.alt = 'image A';
  const heat = await drawHeatmap(doc.map, base.naturalWidth, base.naturalHeight);
  heat.style.opacity = $('#opacity').value;
  $('#overlay').replaceChildren(base, heat);
  $('#b-view').src = URL.createObjectURL(b);
  $('#map-caption').textContent = `image A with the LPIPS map (largest value ${doc.map_max.toFixed(4)})`;
  $('#legend-text').textContent = `dark: 0, bright: ${doc.map_max.toFixed(4)} (the map's largest value)`;
}

async function run() {
  if (!a || !b) {
    showError(new Error('Choose both images first.'));
    return;
  }
  const doc = await withBusy($('#run'), $('#results'), $('#status'), 'Comparing', () =>
    api('/v1/similarity', { method: 'POST', body: toForm(fields()) }));
  if (doc) await render(doc).catch(showError);
}

async function start() {
  await initShell();
  dropZone($('#a-drop'), $('#image-a'), ([f]) => { a = f; thumbnails($('#a-thumb'), [f]); });
  dropZone($('#b-drop'), $('#image-b'), ([f]) => { b = f; thumbnails($('#b-thumb'), [f]); });
  $('#controls').addEventListener('submit', (event) => { event.preventDefault(); run(); });
  $('#copy-curl').addEventListener('click', (event) =>
    copyText(curlCommand('/v1/similarity', fields()), event.currentTarget));
  $('#opacity').addEventListener('input', () => {
    const heat = $('#overlay canvas');
    if (heat) heat.style.opacity = $('#opacity').value;
  });
  try {
    const { models } = await api('/v1/models');
    for (const m of models.filter((m) => m.status === 'ready')) {
      $('#model').append(el('option', { value: m.name, text: m.name }));
    }
  } catch (err) {
    showError(err);
  }
  document.body.dataset.ready = 'true';
}

start();
