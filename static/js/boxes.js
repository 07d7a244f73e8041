// The Boxes and masks page: draw or paste boxes on one image, run a detection policy through
// POST /v1/augment with targets, and overlay the moved boxes (and masks) on every sample.
import { api, curlCommand, isAudioPreset, listPresets, toForm } from './api.js';
import {
  $, COLOURS, copyText, dataUrl, dropZone, el, fillPresets, greyPng, initShell, loadImage,
  required, samplingFields, seededRuns, showError,
} from './ui.js';

const stage = $('#stage');
const list = $('#box-list');
const json = $('#boxes-json');
const boxStatus = $('#boxes-status');
const presetSelect = $('#preset');
let file = null;
let image = null; // the loaded <img>, for its natural size
let boxes = []; // [{box: [x1, y1, x2, y2], label}]
samplingFields({ samples: true });

const colour = (i) => COLOURS[i % COLOURS.length];
const round1 = (v) => Math.round(v * 10) / 10;

// A box as an absolutely placed div, in percentages of an image of width x height.
function boxElement([x1, y1, x2, y2], width, height, i, label) {
  return el('div', { class: 'box', style: {
    left: `${(100 * x1) / width}%`, top: `${(100 * y1) / height}%`,
    width: `${(100 * (x2 - x1)) / width}%`, height: `${(100 * (y2 - y1)) / height}%`,
    '--c': colour(i),
  } }, el('span', { text: label ?? String(i) }));
}

function drawBoxes() {
  if (!image) return;
  for (const old of stage.querySelectorAll('.box')) old.remove();
  boxes.forEach((b, i) => stage.append(boxElement(b.box, image.naturalWidth, image.naturalHeight, i, b.label)));
  list.replaceChildren(...boxes.map((b, i) => el('li', { style: { '--c': colour(i) } },
    el('span', { class: 'swatch', 'aria-hidden': 'true' }),
    el('input', { type: 'text', value: b.label, 'aria-label': `Label of box ${i}`, size: 8,
      oninput: (event) => { b.label = event.target.value; syncJson(); drawBoxes(); } }),
    el('code', { text: b.box.map(round1).join(', ') }),
    el('button', { type: 'button', class: 'small', text: 'Remove', 'aria-label': `Remove box ${i}`,
      onclick: () => { boxes.splice(i, 1); syncJson(); drawBoxes(); } }))));
}

function syncJson() {
  json.value = JSON.stringify(boxes.map((b) => b.box.map(round1)));
  json.removeAttribute('aria-invalid');
  boxStatus.textContent = `${boxes.length} box${boxes.length === 1 ? '' : 'es'}.`;
}

function applyJson() {
  try {
    const parsed = JSON.parse(json.value);
    if (!Array.isArray(parsed) || !parsed.every((b) => Array.isArray(b) && b.length === 4 && b.every(Number.isFinite))) {
      throw new Error('give an array of [x_min, y_min, x_max, y_max] boxes');
    }
    boxes = parsed.map((box, i) => ({ box, label: boxes[i]?.label ?? `object ${i}` }));
    syncJson();
    drawBoxes();
  } catch (err) {
    json.setAttribute('aria-invalid', 'true');
    boxStatus.textContent = `Not boxes: ${err.message}`;
  }
}

// Drag to draw: pointer positions become image pixels.
function enableDrawing() {
  let start = null;
  let ghost = null;
  const toImage = (event) => {
    const r = stage.getBoundingClientRect();
    const clamp = (v, max) => Math.max(0, Math.min(max, v));
    return [clamp(((event.clientX - r.left) / r.width) * image.naturalWidth, image.naturalWidth),
      clamp(((event.clientY - r.top) / r.height) * image.naturalHeight, image.naturalHeight)];
  };
  const span = (a, b) => [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])];
  stage.addEventListener('pointerdown', (event) => {
    if (!image) return;
    start = toImage(event);
    stage.setPointerCapture(event.pointerId);
  });
  stage.addEventListener('pointermove', (event) => {
    if (!start) return;
    ghost?.remove();
    ghost = boxElement(span(start, toImage(event)), image.naturalWidth, image.naturalHeight, boxes.length, '');
    stage.append(ghost);
  });
  stage.addEventListener('pointerup', (event) => {
    if (!start) return;
    const box = span(start, toImage(event)).map(round1);
    start = null;
    ghost?.remove();
    ghost = null;
    if (box[2] - box[0] >= 1 && box[3] - box[1] >= 1) {
      boxes.push({ box, label: `object ${boxes.length}` });
      syncJson();
      drawBoxes();
    }
  });
}

// One mask per box, the box filled: 8-bit greyscale PNGs, nonzero inside. (One label map with
// mask_type=labels would be smaller, but the server binarises every mask part before it splits
// a label map, so a map of two or more labels is refused.)
function boxMasks() {
  const w = image.naturalWidth;
  const h = image.naturalHeight;
  return Promise.all(boxes.map(async ({ box }, i) => {
    const pixels = new Uint8Array(w * h);
    for (let y = Math.floor(box[1]); y < Math.min(h, Math.ceil(box[3])); y++) {
      pixels.fill(255, y * w + Math.floor(box[0]), y * w + Math.min(w, Math.ceil(box[2])));
    }
    return new File([await greyPng(w, h, pixels)], `mask${i}.png`, { type: 'image/png' });
  }));
}

async function fields(seed) {
  const withMasks = $('#send-masks').checked && boxes.length > 0;
  return {
    image: file,
    policy: presetSelect.value,
    targets: { boxes: boxes.map((b) => b.box), box_format: 'pascal_voc', labels: boxes.map((b) => b.label) },
    mask: withMasks ? await boxMasks() : null,
    min_visibility: $('#min-visibility').value,
    samples: $('#samples').value,
    seed: seed ?? $('#seed').value,
    format: 'png',
  };
}

// Tints each returned mask's nonzero pixels in its box's colour on one canvas over the sample.
async function drawMasks(canvas, objects) {
  const ctx = canvas.getContext('2d');
  const out = ctx.createImageData(canvas.width, canvas.height);
  for (const obj of objects.filter((o) => o.mask)) {
    const img = await loadImage(dataUrl('image/png', obj.mask));
    const scratch = new OffscreenCanvas(canvas.width, canvas.height).getContext('2d');
    scratch.drawImage(img, 0, 0);
    const mask = scratch.getImageData(0, 0, canvas.width, canvas.height).data;
    const c = colour(obj.index);
    const rgb = [1, 3, 5].map((k) => parseInt(c.slice(k, k + 2), 16));
    for (let p = 0; p < mask.length; p += 4) {
      if (mask[p]) out.data.set([...rgb, 110], p);
    }
  }
  ctx.putImageData(out, 0, 0);
}

function render(doc) {
  $('#output').replaceChildren(...doc.results.map((r) => {
    const t = r.targets || { objects: [], dropped: [] };
    const sampleStage = el('div', { class: 'stage' },
      el('img', { src: dataUrl(r.content_type, r.data), alt: `sample ${r.sample + 1}` }));
    if (t.objects.some((o) => o.mask)) {
      const canvas = el('canvas', { class: 'mask', width: r.width, height: r.height,
        style: { position: 'absolute', inset: '0', width: '100%', height: '100%' } });
      sampleStage.append(canvas);
      drawMasks(canvas, t.objects).catch(showError);
    }
    for (const o of t.objects) sampleStage.append(boxElement(o.box, r.width, r.height, o.index, String(o.label ?? o.index)));
    const dropped = t.dropped.map((d) => `${d.index} (${d.reason})`).join(', ');
    return el('figure', { class: 'sample', tabindex: 0, dataset: { boxes: t.objects.length, sample: r.sample },
      title: r.trace.map((s) => s.op).join(', ') || 'no op applied' },
    sampleStage,
    el('figcaption', {}, el('span', { text: `sample ${r.sample + 1}: ${t.objects.length} box${t.objects.length === 1 ? '' : 'es'}` +
      (dropped ? `, dropped ${dropped}` : '') }),
    el('span', { text: r.trace.map((s) => s.op).join(' → ') || 'no op' })));
  }));
}

async function start() {
  await initShell();
  dropZone($('#image-drop'), $('#image'), async ([chosen]) => {
    file = chosen;
    try {
      image = await loadImage(URL.createObjectURL(file));
    } catch (err) {
      showError(err);
      return;
    }
    image.alt = 'the image to draw boxes on';
    image.draggable = false;
    stage.replaceChildren(image);
    stage.hidden = false;
    $('#draw-hint').hidden = false;
    boxes = [];
    syncJson();
    drawBoxes();
  });
  enableDrawing();
  $('#apply-boxes').addEventListener('click', applyJson);
  $('#clear-boxes').addEventListener('click', () => { boxes = []; syncJson(); drawBoxes(); });
  seededRuns('Augmenting with boxes', {
    ready: () => required(file, 'Choose an image first.', $('#image')),
    request: async (seed) => api('/v1/augment', { method: 'POST', body: toForm(await fields(seed)) }),
    render,
  });
  $('#copy-curl').addEventListener('click', async (event) => {
    const button = event.currentTarget;
    copyText(curlCommand('/v1/augment', await fields()), button);
  });
  presetSelect.addEventListener('change', () => {
    $('#preset-help').textContent = presetSelect.selectedOptions[0]?.title || '';
  });
  try {
    const presets = await listPresets();
    const ordered = [...presets].sort((a, b) => Number(!a.name.startsWith('detection-')) - Number(!b.name.startsWith('detection-')));
    fillPresets(presetSelect, ordered, (name) => !isAudioPreset(name), 'detection-v0');
    $('#preset-help').textContent = presetSelect.selectedOptions[0]?.title || '';
  } catch (err) {
    showError(err);
  }
  document.body.dataset.ready = 'true';
}

start();
