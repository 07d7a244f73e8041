// The Audio page: a clip (uploaded or recorded), an audio policy, and the original and augmented
// log-mel spectrograms side by side (POST /v1/augment/audio's png), with both clips to play when
// the policy leaves a waveform.
import { api, curlCommand, isAudioPreset, listOps, listPresets, toForm } from './api.js';
import {
  $, base64ToBlob, copyText, dataUrl, dropZone, el, initShell, policyFields, policyPicker, required,
  samplingFields, showError, withBusy,
} from './ui.js';

const form = $('#controls');
const recordButton = $('#record');
// The original: a gain of 0 dB changes no sample, so the server decodes, resamples and renders
// the clip exactly as it does before the policy's ops.
const ORIGINAL = { op: 'Gain', db: 0 };
let clip = null;
let picker = null;
let recorder = null;
policyFields({ jsonLabel: 'Graph (JSON)' });
samplingFields();

function setClip(file) {
  clip = file;
  $('#clip-name').textContent = `Clip: ${file.name} (${Math.round(file.size / 1024)} KiB)`;
}

function fields(policy) {
  return { audio: clip, policy, seed: $('#seed').value, n_mels: $('#n-mels').value, output: 'json' };
}

// 16-bit PCM WAV of an AudioBuffer's first channel: browsers record WebM/Opus, which the
// server does not read, so recordings are decoded here and sent as WAV.
function wavFromBuffer(buffer) {
  const samples = buffer.getChannelData(0);
  const out = new DataView(new ArrayBuffer(44 + 2 * samples.length));
  const text = (offset, s) => [...s].forEach((c, i) => out.setUint8(offset + i, c.charCodeAt(0)));
  text(0, 'RIFF');
  out.setUint32(4, 36 + 2 * samples.length, true);
  text(8, 'WAVEfmt ');
  out.setUint32(16, 16, true);
  out.setUint16(20, 1, true);
  out.setUint16(22, 1, true);
  out.setUint32(24, buffer.sampleRate, true);
  out.setUint32(28, 2 * buffer.sampleRate, true);
  out.setUint16(32, 2, true);
  out.setUint16(34, 16, true);
  text(36, 'data');
  out.setUint32(40, 2 * samples.length, true);
  samples.forEach((s, i) => out.setInt16(44 + 2 * i, Math.round(Math.max(-1, Math.min(1, s)) * 32767), true));
  return new Blob([out], { type: 'audio/wav' });
}

async function toggleRecording() {
  if (recorder) {
    recorder.stop();
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.addEventListener('dataavailable', (event) => chunks.push(event.data));
    recorder.addEventListener('stop', async () => {
      stream.getTracks().forEach((t) => t.stop());
      recorder = null;
      recordButton.textContent = 'Record';
      recordButton.setAttribute('aria-pressed', 'false');
      try {
        const context = new AudioContext();
        const decoded = await context.decodeAudioData(await new Blob(chunks).arrayBuffer());
        context.close();
        setClip(new File([wavFromBuffer(decoded)], 'recording.wav', { type: 'audio/wav' }));
      } catch (err) {
        showError(new Error(`The recording could not be decoded: ${err.message}`));
      }
    });
    recorder.start();
    recordButton.textContent = 'Stop recording';
    recordButton.setAttribute('aria-pressed', 'true');
  } catch (err) {
    showError(new Error(`Recording is not available: ${err.message}`));
  }
}

function panel(title, result, note) {
  return el('figure', { class: 'spectrogram', dataset: { frames: result.frames, mels: result.mels } },
    el('img', { src: dataUrl('image/png', result.png), class: 'pixelated',
      alt: `${title}: log-mel spectrogram, ${result.frames} frames by ${result.mels} mel bands` }),
    el('figcaption', { text: `${title} · ${result.frames} frames × ${result.mels} mels · ${(result.length / result.sample_rate).toFixed(2)} s` }),
    result.wav
      ? el('audio', { controls: true, src: URL.createObjectURL(base64ToBlob(result.wav, 'audio/wav')),
        'aria-label': `Play the ${title.toLowerCase()} clip` })
      : el('p', { class: 'hint', text: note }));
}

async function run() {
  if (!required(clip, 'Choose or record a clip first.', $('#audio'))) return;
  const docs = await withBusy($('#run'), $('#results'), $('#status'), 'Augmenting the clip', () =>
    Promise.all([
      api('/v1/augment/audio', { method: 'POST', body: toForm(fields(ORIGINAL)) }),
      api('/v1/augment/audio', { method: 'POST', body: toForm(fields(picker.value())) }),
    ]));
  if (!docs) return;
  const [original, augmented] = docs.map((d) => d.results[0]);
  $('#output').replaceChildren(panel('Original', original, ''),
    panel('Augmented', augmented, 'This policy changes the spectrogram, not the waveform: there is no audio to play.'));
  $('#trace').textContent = `seed ${docs[1].seed}\n` +
    augmented.trace.map(({ op, ...args }) => `${op} ${JSON.stringify(args)}`).join('\n');
}

async function start() {
  await initShell();
  dropZone($('#audio-drop'), $('#audio'), ([file]) => setClip(file));
  if (!window.MediaRecorder || !navigator.mediaDevices) {
    recordButton.disabled = true;
    recordButton.title = 'Recording needs a secure origin (https or localhost) and MediaRecorder';
  }
  recordButton.addEventListener('click', toggleRecording);
  form.addEventListener('submit', (event) => { event.preventDefault(); run(); });
  $('#copy-curl').addEventListener('click', (event) =>
    copyText(curlCommand('/v1/augment/audio', fields(picker.value())), event.currentTarget));
  try {
    const [presets, ops] = await Promise.all([listPresets(), listOps('audio')]);
    picker = policyPicker(form, {
      presets: presets.filter((p) => isAudioPreset(p.name)),
      ops,
      defaultPreset: 'specaugment-LD',
      defaultDoc: { seq: [{ op: 'Noise', snr_db: 10 }, { op: 'FrequencyMask', F: 27, count: 2 }] },
    });
  } catch (err) {
    showError(err);
  }
  document.body.dataset.ready = 'true';
}

start();
