// The Augment page: images in, a preset, a saved policy or a policy (op list or JSON), samples out
// with their traces; same seed again, downloads, copy-as-curl, and "Save as…" (POST /v1/policies).
// A policy handed over in the address (#policy=..., loadHandedPolicy) starts in the JSON editor.
import { api, curlCommand, isAudioPreset, listOps, listPresets, listSaved, toForm } from './api.js';
import {
  $, base64ToBlob, copyText, dataUrl, downloadBlob, dropZone, el, initShell, policyFields, policyPicker,
  required, samplingFields, seededRuns, showError, thumbnails, withBusy,
} from './ui.js';

const form = $('#controls');
const status = $('#status');
const output = $('#output');
let files = [];
let picker = null;
policyFields({ toJson: true });
samplingFields({ samples: true });

function fields(seed) {
  return {
    image: files,
    policy: picker.value(),
    samples: $('#samples').value,
    seed: seed ?? $('#seed').value,
    format: $('#format').value,
    color: $('#color').value,
  };
}

function traceText(trace) {
  if (!trace || trace.length === 0) return 'no op applied';
  return trace.map((step) => {
    const { op, ...args } = step;
    const list = Object.entries(args).map(([k, v]) => `${k}=${typeof v === 'number' ? +v.toFixed(4) : JSON.stringify(v)}`);
    return `${op}(${list.join(', ')})`;
  }).join('\n');
}

function render(doc) {
  const groups = files.map((file, input) => {
    const items = doc.results.filter((r) => r.input === input);
    return el('div', { class: 'input-row' },
      el('h3', { text: `Image ${input + 1}: ${file.name}` }),
      el('div', { class: 'grid' },
        el('figure', { class: 'original' },
          el('img', { src: URL.createObjectURL(file), alt: `input ${input + 1}` }),
          el('figcaption', { text: 'input' })),
        items.map((r) => {
          const traceId = `trace-${r.input}-${r.sample}-${r.view ?? 0}`;
          const name = `sample ${r.sample + 1}${r.view !== undefined ? ` view ${r.view}` : ''}`;
          const ext = r.content_type.split('/')[1];
          return el('figure', { class: 'sample', tabindex: 0, 'aria-describedby': traceId,
            dataset: { input: r.input, sample: r.sample } },
          el('img', { src: dataUrl(r.content_type, r.data), alt: `${name} of image ${input + 1}`,
            width: r.width, height: r.height }),
          el('pre', { class: 'trace', id: traceId, text: traceText(r.trace) }),
          el('figcaption', {}, el('span', { text: `${name} · ${r.width}×${r.height}` }),
            el('button', { type: 'button', class: 'small', text: 'Download',
              'aria-label': `Download ${name} of image ${input + 1}`,
              onclick: () => downloadBlob(base64ToBlob(r.data, r.content_type),
                `${file.name.replace(/\.[^.]*$/, '')}-seed${doc.seed}-${r.sample}${r.view !== undefined ? `-v${r.view}` : ''}.${ext}`) })));
        })));
  });
  output.dataset.runs = Number(output.dataset.runs || 0) + 1;
  output.replaceChildren(el('p', { class: 'hint', id: 'seed-used', dataset: { seed: doc.seed } },
    `Seed ${doc.seed}: the same seed, images and policy give the same samples.`), ...groups);
}

// The image presets, then the saved policies (their help says who saved them and when).
async function policyChoices() {
  const [presets, saved] = await Promise.all([listPresets(), listSaved()]);
  return presets.filter((p) => !isAudioPreset(p.name)).concat(saved.map((s) => ({
    name: s.name, help: `Saved policy${s.owner ? ` of ${s.owner}` : ''}, ${s.updated}` })));
}

// "Save as…": the preset's name or the editor's document, saved under the name typed; an error
// (a taken name, a bad document) shows under the control.
async function savePolicy(event) {
  const button = event.currentTarget;
  const name = $('#save-name').value.trim();
  const note = $('#save-status');
  note.classList.remove('invalid');
  $('#save-name').removeAttribute('aria-invalid');
  button.disabled = true;
  try {
    if (!name) throw new Error('Type a name to save the policy as.');
    let policy = picker.presetName();
    if (picker.mode !== 'preset') {
      try {
        policy = JSON.parse(picker.value());
      } catch (err) {
        throw new Error(`The policy is not JSON: ${err.message}`);
      }
    }
    await api('/v1/policies', { method: 'POST', body: { name, policy } });
    picker.setPresets(await policyChoices(), name);
    picker.setMode('preset');
    note.textContent = `Saved as ${name}: choose it as a preset here, or name it in any policy.`;
  } catch (err) {
    note.classList.add('invalid');
    $('#save-name').setAttribute('aria-invalid', 'true');
    note.textContent = err.message;
  } finally {
    button.disabled = false;
  }
}

// Another page hands a policy document over in the address, #policy=<the document as
// URI-encoded JSON> (the Search page's "Open the best policy in Augment"): it goes into the JSON
// editor, which validates it as a typed one.
function loadHandedPolicy() {
  const handed = /^#policy=(.*)$/s.exec(location.hash);
  if (!handed) return;
  try {
    picker.editor.set(JSON.parse(decodeURIComponent(handed[1])));
    picker.setMode('json');
  } catch (err) {
    showError(new Error(`The policy in the address is not JSON: ${err.message}`));
  }
}

async function start() {
  await initShell();
  dropZone($('#image-drop'), $('#images'), (chosen) => {
    files = chosen;
    thumbnails($('#image-thumbs'), files);
  });
  seededRuns('Augmenting', {
    ready: () => required(files.length > 0, 'Choose at least one image first.', $('#images')),
    request: (seed) => api('/v1/augment', { method: 'POST', body: toForm(fields(seed)) }),
    render,
  });
  $('#copy-curl').addEventListener('click', (event) =>
    copyText(curlCommand('/v1/augment', fields()), event.currentTarget));
  $('#download-policy').addEventListener('click', async (event) => {
    let doc = null;
    if (picker.mode === 'preset') {
      doc = await withBusy(event.currentTarget, null, status, 'Fetching the preset', () =>
        api(`/v1/policies/${encodeURIComponent(picker.presetName())}`).then((d) => d.policy));
    } else {
      try {
        doc = JSON.parse(picker.value());
      } catch (err) {
        showError(new Error(`The policy is not JSON: ${err.message}`));
      }
    }
    if (doc) {
      downloadBlob(new Blob([JSON.stringify(doc, null, 2)], { type: 'application/json' }),
        `${picker.mode === 'preset' ? picker.presetName() : 'policy'}.json`);
    }
  });
  try {
    const [presets, imageOps] = await Promise.all([policyChoices(), listOps('image')]);
    picker = policyPicker(form, {
      presets,
      ops: imageOps,
      defaultPreset: 'randaugment',
      defaultDoc: { seq: [{ op: 'Rotate', level: 0.5 }] },
    });
    $('#preset-to-json').addEventListener('click', () => {
      picker.editor.set({ preset: picker.presetName() });
      picker.setMode('json');
      $('#policy-json').focus();
    });
    $('#save-as').addEventListener('click', savePolicy);
    loadHandedPolicy();
  } catch (err) {
    showError(err);
  }
  document.body.dataset.ready = 'true';
}

start();
