// The web UI's browser tests: the real server on a loopback port, Debian's chromium driven
// headless by playwright-core, every page exercised and screenshotted.
//
//   node tests/browser/run.mjs BUILD/augserve OUT_DIR [NAME]
//
// NAME runs only the tests whose name contains it (all of them by default).
// Screenshots (desktop 1280 px and 360 px wide) go to OUT_DIR/ui-screenshots. Exits non-zero on
// the first failure, and when chromium is missing: docker/install-deps.sh installs it, so a
// machine without it is misconfigured, not a reason to skip.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { tinyPerceptualConfig, tinyPerceptualModel } from './onnx.mjs';

const CHROMIUM = process.env.AUGSERVE_CHROMIUM || '/usr/bin/chromium';
const source = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const fixtures = path.join(source, 'tests/parity/fixtures');
const [binary, outArg, only = ''] = process.argv.slice(2);
if (!binary || !outArg) {
  console.error('usage: node tests/browser/run.mjs AUGSERVE_BINARY OUT_DIR [NAME]');
  process.exit(2);
}
if (!fs.existsSync(CHROMIUM)) {
  console.error(`browser tests: ${CHROMIUM} is missing; install Debian's chromium (docker/install-deps.sh does)`);
  process.exit(1);
}
const shots = path.join(path.resolve(outArg), 'ui-screenshots');
fs.mkdirSync(shots, { recursive: true });

function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

// ---- The server -------------------------------------------------------------------------------

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'augserve-ui-'));
fs.mkdirSync(path.join(work, 'data'));
fs.mkdirSync(path.join(work, 'models/lpips-tiny'), { recursive: true });
fs.cpSync(path.join(fixtures, 'predict/tiny-cnn'), path.join(work, 'models/tiny-cnn'), { recursive: true });
fs.writeFileSync(path.join(work, 'models/lpips-tiny/model.onnx'), tinyPerceptualModel());
fs.writeFileSync(path.join(work, 'models/lpips-tiny/config.json'), JSON.stringify(tinyPerceptualConfig));

function startServer() {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AUGSERVE_')));
  const child = spawn(binary, ['--listen', '127.0.0.1:0', '--data-dir', path.join(work, 'data'),
    '--models-dir', path.join(work, 'models'), '--static-dir', path.join(source, 'static'),
    '--access-log', 'off', '--workers', '2', '--debug-routes', 'true'], { env, stdio: ['ignore', 'inherit', 'pipe'] });
  return new Promise((resolve, reject) => {
    let log = '';
    const timer = setTimeout(() => reject(new Error(`the server did not start in 15 s:\n${log}`)), 15000);
    child.on('exit', (code) => reject(new Error(`the server exited with ${code}:\n${log}`)));
    child.stderr.on('data', (chunk) => {
      log += chunk;
      for (const line of log.split('\n')) {
        try {
          const event = JSON.parse(line);
          const port = event.event === 'listening' && /on port (\d+)/.exec(event.message);
          if (port) {
            clearTimeout(timer);
            resolve({ child, base: `http://127.0.0.1:${port[1]}` });
          }
        } catch {
          // a partial line
        }
      }
    });
  });
}

// ---- Helpers run in the page ------------------------------------------------------------------

// A digest of an <img>'s decoded pixels, read back through a canvas.
function pixelDigest(img) {
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let h = 2166136261;
  for (const byte of data) h = Math.imul(h ^ byte, 16777619) >>> 0;
  return `${canvas.width}x${canvas.height}:${h.toString(16)}`;
}

async function samplePixels(page) {
  await page.waitForFunction(() => [...document.querySelectorAll('figure.sample img, figure.original img')]
    .every((img) => img.complete && img.naturalWidth > 0));
  return {
    input: await page.locator('figure.original img').first().evaluate(pixelDigest),
    samples: await page.locator('figure.sample img').evaluateAll((imgs, fn) =>
      imgs.map((img) => new Function(`return (${fn})`)()(img)), pixelDigest.toString()),
  };
}

// ---- A dataset archive, made here ---------------------------------------------------------------

// A width x height 24-bit BMP of one colour (a format with no checksum to compute).
function solidBmp(width, height, [r, g, b]) {
  const stride = (width * 3 + 3) & ~3;
  const out = Buffer.alloc(54 + stride * height);
  out.write('BM', 0, 'latin1');
  out.writeUInt32LE(out.length, 2);
  out.writeUInt32LE(54, 10);
  out.writeUInt32LE(40, 14);
  out.writeInt32LE(width, 18);
  out.writeInt32LE(height, 22);
  out.writeUInt16LE(1, 26);
  out.writeUInt16LE(24, 28);
  out.writeUInt32LE(stride * height, 34);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) out.set([b, g, r], 54 + y * stride + x * 3);
  }
  return out;
}

// A ustar archive of regular files: [[name, bytes]].
function tar(files) {
  const blocks = [];
  for (const [name, data] of files) {
    const header = Buffer.alloc(512);
    const field = (text, offset) => header.write(text, offset, 'latin1');
    field(name, 0);
    field('0000644\0', 100);
    field('0000000\0', 108);
    field('0000000\0', 116);
    field(`${data.length.toString(8).padStart(11, '0')}\0`, 124);
    field('00000000000\0', 136);
    field('        ', 148);
    field('0', 156);
    field('ustar\0' + '00', 257);
    const sum = header.reduce((a, b) => a + b, 0);
    field(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    blocks.push(header, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  return Buffer.concat([...blocks, Buffer.alloc(1024)]);
}

// A tar.gz of class folders top/<split>/<class>/<n>.bmp from layout {split: {class: count}}: 8x8
// BMPs, reddish for the first class and bluish for the second, a shade per image; then extra
// files [[name, bytes]].
function folderArchive(top, layout, extra = []) {
  const files = [];
  const images = [];
  for (const [split, classes] of Object.entries(layout)) {
    for (const [k, [name, n]] of Object.entries(classes).entries()) {
      for (let i = 0; i < n; i++) {
        const shade = 40 * i + (split === 'test' ? 20 : 0);
        const image = solidBmp(8, 8, k === 0 ? [220, shade, shade] : [shade, shade, 220]);
        files.push([`${top}/${split}/${name}/${i}.bmp`, image]);
        images.push({ split, label: name, image });
      }
    }
  }
  return { archive: zlib.gzipSync(tar([...files, ...extra])), images };
}

// pets.tar.gz: train has 3 cats and 2 dogs, test 1 cat and 2 dogs; and one file that is no PNG,
// which the import skips.
const pets = () => folderArchive('pets', { train: { cat: 3, dog: 2 }, test: { cat: 1, dog: 2 } },
  [['pets/train/cat/broken.png', Buffer.from('this is no PNG')]]);

// ---- The tests ----------------------------------------------------------------------------------

const PAGES = ['index.html', 'boxes.html', 'audio.html', 'similarity.html', 'models.html', 'datasets.html', 'jobs.html',
  'search.html', 'ctaugment.html'];
const tests = [];
const test = (name, fn, options = {}) => { if (name.includes(only)) tests.push({ name, fn, options }); };

test('every page loads without console errors, desktop and 360 px', async ({ open }) => {
  for (const width of [1280, 360]) {
    for (const name of PAGES) {
      const page = await open(name, width);
      assert(await page.locator('nav a[aria-current="page"]').count() === 1, `${name}: the current page is marked`);
      assert(await page.locator('#banner').isHidden(), `${name}: no error banner`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert(overflow <= 0, `${name} at ${width} px: the page is ${overflow} px wider than the window`);
      await page.close();
    }
  }
});

// A JavaScript value written as text where an element or a string belonged (`cond && el(...)`
// passed to append, a missing field interpolated): the words no label of the UI uses.
const STRAY_WORDS = /\b(false|true|undefined|null|NaN)\b/g;

async function assertNoStrayWords(page, where) {
  const text = await page.evaluate(() => document.body.innerText);
  const stray = text.match(STRAY_WORDS);
  assert(!stray, `${where}: the page shows ${JSON.stringify(stray)} as text`);
}

test('no page shows a stray false, true, undefined, null or NaN', async ({ open }) => {
  for (const name of PAGES) {
    const page = await open(name);
    await assertNoStrayWords(page, name);
    await page.close();
  }
});

test('augment: a preset gives the requested samples, unlike the input, and the same seed repeats them', async ({ open, shoot }) => {
  const page = await open('index.html');
  await page.setInputFiles('#images', path.join(fixtures, 'predict/photo.png'));
  await page.selectOption('#preset', 'trivialaugment-wide');
  await page.fill('#samples', '5');
  await page.click('#run');
  await page.waitForSelector('figure.sample');
  const first = await samplePixels(page);
  assert(first.samples.length === 5, `5 samples shown, got ${first.samples.length}`);
  // TrivialAugmentWide leaves a sample as it was when it draws Identity (1 of 14 ops) or a
  // magnitude bin that is a no-op, about 1 in 10 samples; so with a fresh seed each run, "4 of 5
  // differ" failed about 8% of runs, while "2 of 5" fails about 1 in 2000.
  const changed = first.samples.filter((d) => d !== first.input).length;
  assert(changed >= 2, `at least 2 of 5 samples differ from the input, ${changed} do`);
  const seed = await page.locator('#seed-used').getAttribute('data-seed');
  await page.hover('figure.sample');
  assert(await page.locator('figure.sample .trace').first().isVisible(), 'the trace shows on hover');
  await shoot(page, 'augment');

  const runs = () => page.$eval('#output', (o) => Number(o.dataset.runs));
  assert(await runs() === 1, 'one run rendered');
  await page.click('#again');
  await page.waitForFunction(() => document.querySelector('#output').dataset.runs === '2');
  assert(await page.locator('#seed-used').getAttribute('data-seed') === seed, 'the same seed was used');
  const again = await samplePixels(page);
  assert(JSON.stringify(again.samples) === JSON.stringify(first.samples), 'the same seed gives the same pixels');

  await page.fill('#seed', String(Number(seed) + 1));
  await page.click('#run');
  await page.waitForFunction(() => document.querySelector('#output').dataset.runs === '3');
  const other = await samplePixels(page);
  assert(JSON.stringify(other.samples) !== JSON.stringify(first.samples), 'another seed gives other pixels');
  await shoot(page, 'augment', 360);
  await assertNoStrayWords(page, 'index.html with samples');
  await page.close();
});

test('augment: the op list builds a valid policy; a broken policy names its node', async ({ open }) => {
  const page = await open('index.html');
  await page.check('input[name="mode"][value="ops"]');
  await page.waitForSelector('.op-row');
  await page.waitForFunction(() => document.querySelector('#policy-status').dataset.state === 'valid');
  assert((await page.inputValue('#policy-json')).includes('"seq"'), 'the op list is mirrored as JSON');

  await page.fill('#policy-json', JSON.stringify({ seq: [{ op: 'Rotate', degrees: 10 }, { op: 'Rotate', degrees: 999 }] }, null, 2));
  await page.waitForFunction(() => document.querySelector('#policy-status').dataset.state === 'invalid');
  const pointer = await page.locator('#policy-status').getAttribute('data-pointer');
  const text = await page.locator('#policy-status').textContent();
  assert(pointer === '/seq/1/degrees', `the error points at /seq/1/degrees, not ${pointer}`);
  assert(text.includes('/seq/1/degrees') && text.includes('[-360, 360]'), `the message names the node: ${text}`);
  await page.click('#policy-status button');
  const selected = await page.$eval('#policy-json', (t) => t.value.slice(t.selectionStart, t.selectionEnd));
  assert(selected === '999', `"Show node" selects the bad value, selected ${JSON.stringify(selected)}`);
  assert(await page.getAttribute('#policy-json', 'aria-invalid') === 'true', 'the editor is marked invalid');

  // Sent anyway, the API's 422 lands in the error banner.
  await page.setInputFiles('#images', path.join(fixtures, 'predict/photo.png'));
  await page.click('#run');
  await page.waitForSelector('#banner:not([hidden])');
  const banner = await page.locator('#banner').textContent();
  assert(banner.includes('invalid_policy') && banner.includes('/seq/1/degrees'), `the banner shows the envelope: ${banner}`);
  await page.close();
}, { allowErrors: /422/ });

test('augment: "Save as…" saves the document, lists it with the presets and augments by name; a taken name is refused inline', async ({ open, base }) => {
  const page = await open('index.html');
  await page.check('input[name="mode"][value="json"]');
  await page.fill('#policy-json', JSON.stringify({ op: 'Invert' }));
  await page.fill('#save-name', 'ui-invert');
  await page.click('#save-as');
  await page.waitForFunction(() => document.querySelector('#save-status').textContent.includes('Saved as ui-invert'));
  assert(await page.inputValue('#preset') === 'ui-invert', 'the saved policy is chosen in the preset list');
  const options = await page.$$eval('#preset option', (os) => os.map((o) => o.value));
  assert(options.includes('randaugment') && options.includes('ui-invert'), `presets and the saved one listed: ${options}`);
  const saved = await call(base, '/v1/policies/ui-invert');
  assert(JSON.stringify(saved.policy) === '{"op":"Invert"}', `the server holds the document: ${JSON.stringify(saved.policy)}`);

  // Augmenting with it by name: Invert, the only op, is each sample's trace.
  await page.setInputFiles('#images', path.join(fixtures, 'predict/photo.png'));
  await page.click('#run');
  await page.waitForSelector('figure.sample');
  const trace = await page.locator('figure.sample .trace').first().textContent();
  assert(trace === 'Invert()', `the sample's trace is Invert(), not ${trace}`);

  // The same name again: 409, shown under the control, the name marked.
  await page.click('#save-as');
  await page.waitForFunction(() => document.querySelector('#save-status').classList.contains('invalid'));
  const note = await page.locator('#save-status').textContent();
  assert(note.includes('saved already'), `the conflict is shown inline: ${note}`);
  assert(await page.getAttribute('#save-name', 'aria-invalid') === 'true', 'the name field is marked invalid');
  await call(base, '/v1/policies/ui-invert', { method: 'DELETE' });
  await page.close();
}, { allowErrors: /409/ });

test('boxes: drawn and pasted boxes come back moved on every sample', async ({ open, shoot }) => {
  const page = await open('boxes.html');
  await page.setInputFiles('#image', path.join(fixtures, 'predict/photo.png'));
  await page.waitForSelector('#stage img');
  const stage = await page.locator('#stage').boundingBox();
  await page.mouse.move(stage.x + stage.width * 0.1, stage.y + stage.height * 0.1);
  await page.mouse.down();
  await page.mouse.move(stage.x + stage.width * 0.45, stage.y + stage.height * 0.5, { steps: 4 });
  await page.mouse.up();
  assert(await page.locator('#stage .box').count() === 1, 'dragging draws a box');
  const drawn = JSON.parse(await page.inputValue('#boxes-json'));
  await page.fill('#boxes-json', JSON.stringify([...drawn, [35, 10, 55, 40]]));
  await page.click('#apply-boxes');
  assert(await page.locator('#stage .box').count() === 2, 'pasted boxes are drawn');
  await page.check('#send-masks');
  await page.selectOption('#preset', 'detection-v0');
  await page.fill('#seed', '11');
  await page.fill('#samples', '4');
  await page.click('#run');
  await page.waitForSelector('figure.sample');
  const counts = await page.locator('figure.sample').evaluateAll((fs) => fs.map((f) => [Number(f.dataset.boxes), f.querySelectorAll('.box').length]));
  assert(counts.length === 4, `4 samples, got ${counts.length}`);
  assert(counts.every(([n, shown]) => n === shown), 'every returned box is drawn');
  assert(counts.some(([n]) => n > 0), 'some boxes survive');
  assert(await page.locator('figure.sample canvas.mask').count() > 0, 'the returned masks are drawn');
  await shoot(page, 'boxes');
  await shoot(page, 'boxes', 360);
  await assertNoStrayWords(page, 'boxes.html with samples');
  await page.close();
});

test('audio: a clip gives the original and augmented spectrograms side by side', async ({ open, shoot }) => {
  const page = await open('audio.html');
  await page.setInputFiles('#audio', path.join(fixtures, 'audio/speech.wav'));
  await page.selectOption('#preset', 'specaugment-LD');
  await page.fill('#seed', '7');
  await page.click('#run');
  await page.waitForSelector('figure.spectrogram');
  await page.waitForFunction(() => [...document.querySelectorAll('figure.spectrogram img')].every((i) => i.complete && i.naturalWidth > 0));
  const figures = await page.locator('figure.spectrogram img').evaluateAll((imgs) => imgs.map((i) => [i.naturalWidth, i.naturalHeight]));
  assert(figures.length === 2, `two spectrograms, got ${figures.length}`);
  assert(figures.every(([w, h]) => w === 101 && h === 80), `101 frames x 80 mels each: ${JSON.stringify(figures)}`);
  const digests = await page.locator('figure.spectrogram img').evaluateAll((imgs, fn) =>
    imgs.map((img) => new Function(`return (${fn})`)()(img)), pixelDigest.toString());
  assert(digests[0] !== digests[1], 'SpecAugment changes the spectrogram');
  assert(await page.locator('figure.spectrogram audio').count() === 1, 'the original plays; SpecAugment leaves no waveform');
  await shoot(page, 'audio');

  await page.check('input[name="mode"][value="json"]');
  await page.fill('#policy-json', JSON.stringify({ seq: [{ op: 'Gain', db: -6 }] }));
  await page.waitForFunction(() => document.querySelector('#policy-status').dataset.state === 'valid');
  await page.click('#run');
  await page.waitForFunction(() => document.querySelectorAll('figure.spectrogram audio').length === 2);
  await shoot(page, 'audio', 360);
  await assertNoStrayWords(page, 'audio.html with spectrograms');
  await page.close();
});

test('similarity: every metric and the LPIPS map as a heatmap', async ({ open, shoot, base }) => {
  // Two 256x192 images, large enough for MS-SSIM, made by the server itself.
  const photo = fs.readFileSync(path.join(fixtures, 'predict/photo.png'));
  const make = async (policy) => {
    const form = new FormData();
    form.append('image', new Blob([photo], { type: 'image/png' }), 'photo.png');
    form.append('policy', JSON.stringify(policy));
    form.append('format', 'png');
    const r = await fetch(`${base}/v1/augment`, { method: 'POST', body: form, headers: { Accept: 'image/png' } });
    assert(r.ok, `making a fixture: ${r.status} ${r.ok ? "" : await r.text()}`);
    return Buffer.from(await r.arrayBuffer());
  };
  const resize = { op: 'Resize', height: 192, width: 256, interpolation: 'bilinear' };
  const a = await make(resize);
  const b = await make({ seq: [resize, { op: 'GaussianBlur', sigma: 2 }] });
  const page = await open('similarity.html');
  await page.setInputFiles('#image-a', { name: 'a.png', mimeType: 'image/png', buffer: a });
  await page.setInputFiles('#image-b', { name: 'b.png', mimeType: 'image/png', buffer: b });
  await page.click('#run');
  await page.waitForSelector('#metrics table');
  for (const metric of ['lpips', 'ssim', 'ms_ssim', 'psnr', 'l2']) {
    const value = await page.locator(`tr[data-metric="${metric}"] td.num`).textContent();
    assert(Number.isFinite(Number(value)), `${metric} has a value: ${value}`);
  }
  await page.waitForSelector('#overlay canvas.heat');
  const lit = await page.$eval('#overlay canvas.heat', (c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) n += d[i] > 0;
    return n;
  });
  assert(lit > 0, 'the heatmap has visible pixels');
  await shoot(page, 'similarity');
  await shoot(page, 'similarity', 360);
  await assertNoStrayWords(page, 'similarity.html with scores');
  await page.close();
});

test('models: the repository is listed, predict and pseudo-label show bars', async ({ open, shoot }) => {
  const page = await open('models.html');
  await page.waitForSelector('tr[data-model="tiny-cnn"]');
  assert(await page.locator('tr[data-model="lpips-tiny"]').count() === 1, 'every model is listed');
  await page.setInputFiles('#images', [path.join(fixtures, 'predict/photo.png'), path.join(fixtures, 'predict/gray.png')]);
  await page.fill('#top-k', '3');
  await page.click('#run');
  await page.waitForSelector('figure.prediction');
  const perImage = await page.locator('figure.prediction').evaluateAll((fs) => fs.map((f) => f.querySelectorAll('.bars li').length));
  assert(JSON.stringify(perImage) === '[3,3]', `3 bars per image, got ${JSON.stringify(perImage)}`);
  const labels = await page.locator('figure.prediction .bars .label').allTextContents();
  assert(labels.every((l) => ['apple', 'banana', 'cherry', 'date', 'elderberry'].includes(l)), `labels from labels.txt: ${labels}`);
  const widths = await page.locator('figure.prediction').first().locator('.fill').evaluateAll((fs) => fs.map((f) => f.getBoundingClientRect().width));
  assert(widths[0] > 0 && widths[0] >= widths[1] && widths[1] >= widths[2], `bars ordered by probability: ${widths}`);
  await shoot(page, 'models');

  await page.check('input[name="task"][value="pseudo-label"]');
  await page.fill('#seed', '5');
  await page.click('#run');
  await page.waitForSelector('figure.prediction .badge');
  await shoot(page, 'models', 360);
  await assertNoStrayWords(page, 'models.html with predictions');
  await page.close();
});

// Records every value #job-percent shows, with the job's state at that moment, in window.seen.
function watchProgress() {
  window.seen = [];
  new MutationObserver(() => window.seen.push({
    fraction: Number(document.querySelector('#job-percent').dataset.fraction),
    state: document.querySelector('#job-view').dataset.state,
  })).observe(document.querySelector('#job-percent'), { attributes: true, attributeFilter: ['data-fraction'] });
}

// Starts a job of the debug kind count from the Jobs page's JSON form; resolves to its id.
async function startCount(page, params) {
  await page.selectOption('#kind', 'count');
  await page.fill('#params', JSON.stringify(params));
  await page.click('#start');
  await page.waitForFunction(() => /^#[0-9a-f]{24}$/.test(location.hash));
  return page.evaluate(() => location.hash.slice(1));
}

test('jobs: a job started from the page is followed live over SSE, with the key, to its result', async ({ open, shoot }) => {
  const page = await open('jobs.html');
  // The server has no keys and ignores this one; the page must still send it on every request,
  // the event stream included, which an EventSource could not.
  await page.evaluate(() => sessionStorage.setItem('augserve-key', 'key-for-the-test'));
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  const streams = [];
  page.on('request', (r) => { if (r.url().endsWith('/events')) streams.push(r.headers().authorization); });
  await page.evaluate(watchProgress);
  const id = await startCount(page, { units: 5, unit_ms: 300 });
  await page.waitForSelector('#job-view[data-state="succeeded"]', { timeout: 15000 });
  assert(streams.length >= 1 && streams.every((h) => h === 'Bearer key-for-the-test'),
    `the event stream was asked for with the key: ${JSON.stringify(streams)}`);
  const seen = await page.evaluate(() => window.seen);
  // count checkpoints after each of its 5 units: progress 0.2 ... 1, at most 4 events a second.
  const live = seen.filter((s) => s.state === 'running' && s.fraction > 0 && s.fraction < 1);
  assert(new Set(live.map((s) => s.fraction)).size >= 2, `progress moved while running: ${JSON.stringify(seen)}`);
  assert(live.every((s) => [0.2, 0.4, 0.6, 0.8].includes(s.fraction)), `fractions are units / 5: ${JSON.stringify(live)}`);
  assert(await page.textContent('#job-percent') === '100%', 'the bar ends full');
  const log = await page.locator('#job-log li').allTextContents();
  for (const state of ['state queued', 'state running: attempt 1', 'state succeeded']) {
    assert(log.includes(state), `the log shows "${state}": ${JSON.stringify(log)}`);
  }
  // The result as a table: 1 + 2 + 3 + 4 + 5.
  await page.waitForSelector('#job-result tr[data-key="total"]');
  assert(await page.textContent('#job-result tr[data-key="total"] td') === '15', 'total 15 in the result table');
  assert(await page.textContent('#job-result tr[data-key="units"] td') === '5', 'units 5 in the result table');
  assert(await page.locator('#job-metrics td').first().textContent() === 'total', 'the metric is shown');
  await page.waitForSelector('#job-artifacts [data-artifact="units.csv"]');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-artifact="units.csv"]')]);
  const csv = fs.readFileSync(await download.path(), 'utf8');
  assert(csv === 'unit,attempt\n1,1\n2,1\n3,1\n4,1\n5,1\n', `units.csv downloads whole: ${JSON.stringify(csv)}`);
  assert(await page.locator(`#jobs tr[data-job="${id}"][data-state="succeeded"]`).count() === 1, 'the list row follows');
  await shoot(page, 'jobs');
  await shoot(page, 'jobs', 360);
  await assertNoStrayWords(page, 'jobs.html with a result');
  await page.close();
});

test('jobs: a long job is cancelled from the page and ends cancelled', async ({ open }) => {
  const page = await open('jobs.html');
  await page.evaluate(watchProgress);
  const id = await startCount(page, { units: 600, unit_ms: 100 });
  await page.waitForFunction(() => window.seen.some((s) => s.state === 'running' && s.fraction > 0), null, { timeout: 10000 });
  await page.click('#cancel');
  await page.waitForSelector('#job-view[data-state="cancelled"]', { timeout: 5000 });
  assert(await page.isDisabled('#cancel'), 'cancel is disabled once cancelled');
  const fraction = Number(await page.getAttribute('#job-percent', 'data-fraction'));
  assert(fraction > 0 && fraction < 0.5, `stopped early: ${fraction}`);
  const log = await page.locator('#job-log li').allTextContents();
  assert(log.at(-1) === 'state cancelled', `the log ends with the cancellation: ${JSON.stringify(log)}`);
  await page.selectOption('#state-filter', 'cancelled');
  await page.waitForSelector(`#jobs tr[data-job="${id}"]`);
  assert(await page.locator('#jobs tbody tr').evaluateAll((rows) => rows.every((r) => r.dataset.state === 'cancelled')),
    'the filter shows cancelled jobs only');
  await page.close();
});

// The class counts table (#counts) as {class: {split: count}}.
async function classCounts(page) {
  return page.$eval('#counts', (table) => {
    const splits = [...table.tHead.rows[0].cells].slice(1).map((c) => c.textContent);
    return Object.fromEntries([...table.tBodies[0].rows].map((tr) =>
      [tr.dataset.class, Object.fromEntries(splits.map((s, i) => [s, Number(tr.cells[i + 1].textContent)]))]));
  });
}

test('datasets: an archive is uploaded with progress, imported, shown per split, split and deleted', async ({ open, shoot }) => {
  const page = await open('datasets.html');
  await page.evaluate(() => {
    window.uploaded = [];
    new MutationObserver(() => window.uploaded.push(Number(document.querySelector('#upload-percent').dataset.fraction)))
      .observe(document.querySelector('#upload-percent'), { attributes: true, attributeFilter: ['data-fraction'] });
  });
  await page.setInputFiles('#archive', { name: 'pets.tar.gz', mimeType: 'application/gzip', buffer: pets().archive });
  assert(await page.inputValue('#name') === 'pets', 'the name comes from the file');
  await page.click('#upload');
  await page.waitForSelector('#import-area[data-state="ready"]', { timeout: 20000 });
  const uploaded = await page.evaluate(() => window.uploaded);
  assert(uploaded.at(-1) === 1 && await page.textContent('#upload-percent') === '100%', `the upload reached 100%: ${uploaded}`);
  assert(uploaded.every((f, i) => i === 0 || f >= uploaded[i - 1]), `upload progress only grows: ${uploaded}`);
  await page.waitForSelector('#dataset-view[data-state="ready"]');
  const id = await page.evaluate(() => location.hash.slice(1));
  assert(await page.locator(`#datasets tr[data-dataset="${id}"][data-state="ready"]`).count() === 1, 'listed as ready');

  const expected = { cat: { test: 1, train: 3 }, dog: { test: 2, train: 2 }, total: { test: 3, train: 5 } };
  const counts = await classCounts(page);
  assert(JSON.stringify(counts) === JSON.stringify(expected), `class counts per split: ${JSON.stringify(counts)}`);
  const skipped = await page.locator('#skipped-files tbody td:first-child').allTextContents();
  assert(skipped.length === 1 && skipped[0].endsWith('broken.png'), `the broken file is listed as skipped: ${skipped}`);

  await page.selectOption('#image-split', 'train');
  await page.waitForFunction(() => document.querySelector('#images').dataset.split === 'train' &&
    [...document.querySelectorAll('#images img')].every((i) => i.complete && i.naturalWidth > 0));
  const captions = await page.locator('#images figcaption span:first-child').allTextContents();
  assert(JSON.stringify(captions.sort()) === JSON.stringify(['cat', 'cat', 'cat', 'dog', 'dog']), `train's thumbnails: ${captions}`);
  const colours = await page.locator('#images img').evaluateAll((imgs) => imgs.map((img) => {
    const c = document.createElement('canvas');
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    c.getContext('2d').drawImage(img, 0, 0);
    const [r, , b] = c.getContext('2d').getImageData(c.width >> 1, c.height >> 1, 1, 1).data;
    return [img.closest('figure').querySelector('figcaption span').textContent, r > b ? 'red' : 'blue'];
  }));
  assert(colours.every(([label, colour]) => (label === 'cat') === (colour === 'red')), `cats are red, dogs blue: ${JSON.stringify(colours)}`);
  await shoot(page, 'datasets');

  await page.fill('#split-name', 'few');
  await page.selectOption('#split-from', 'train');
  await page.check('input[name="split-by"][value="per_class"]');
  await page.fill('#split-amount', '1');
  await page.click('#make-split');
  await page.waitForSelector('#counts th:text-is("few")');
  const after = await classCounts(page);
  assert(after.cat.few === 1 && after.dog.few === 1 && after.total.few === 2, `one image per class: ${JSON.stringify(after)}`);
  // The other 3 of train's 5 become the unlabeled rest.
  assert(after['(unlabeled)']['few-rest'] === 3 && after.cat['few-rest'] === 0 && after.total['few-rest'] === 3,
    `the rest, unlabeled: ${JSON.stringify(after)}`);
  await page.waitForFunction(() => document.querySelector('#images').dataset.split === 'few');
  assert(await page.locator('#images figure').count() === 2, 'the new split\'s two thumbnails are shown');
  await shoot(page, 'datasets', 360);
  await assertNoStrayWords(page, 'datasets.html with a dataset');

  await page.click('#delete');
  await page.waitForSelector('#dataset-view', { state: 'hidden' });
  // Gone from the list: the list is fetched again after the view hides, so its row goes when
  // that answer comes (a timeout fails the test).
  await page.waitForSelector(`#datasets tr[data-dataset="${id}"]`, { state: 'detached' });
  await page.close();
});

// A call of the API from the test itself: the parsed answer, or a thrown error with the body.
async function call(base, route, { method = 'GET', body, type = 'application/json' } = {}) {
  const r = await fetch(`${base}${route}`, { method, body: typeof body === 'object' && !(body instanceof Buffer) ? JSON.stringify(body) : body,
    headers: body ? { 'Content-Type': type } : {} });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${route}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

test('datasets: an archive with no image fails its import, and the page says why', async ({ open }) => {
  const page = await open('datasets.html');
  const junk = zlib.gzipSync(tar([['junk/a/broken.png', Buffer.from('this is no PNG')]]));
  await page.setInputFiles('#archive', { name: 'junk.tar.gz', mimeType: 'application/gzip', buffer: junk });
  await page.click('#upload');
  await page.waitForSelector('#import-area[data-state="failed"]', { timeout: 20000 });
  const error = await page.textContent('#import-error');
  assert(await page.isVisible('#import-error') && error.includes('no usable image') && error.includes('junk/a/broken.png'),
    `the error names the skipped file: ${error}`);
  await page.waitForSelector('#dataset-view[data-state="failed"]');
  assert(await page.textContent('#dataset-error') === error, 'the dataset view shows the error too');
  const id = await page.evaluate(() => location.hash.slice(1));
  assert(await page.locator(`#datasets tr[data-dataset="${id}"][data-state="failed"]`).count() === 1, 'listed as failed');
  assert(await page.isHidden('#ready-parts'), 'no classes, images or splits are offered');
  await page.close();
});

// Imports a dataset through the API and waits until it is ready: its document.
async function importDataset(base, name, archive) {
  const imported = await call(base, `/v1/datasets?name=${name}`, { method: 'POST', body: archive, type: 'application/gzip' });
  let dataset = imported;
  for (let i = 0; i < 100 && dataset.state === 'importing'; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    dataset = await call(base, `/v1/datasets/${imported.id}`);
  }
  assert(dataset.state === 'ready', `${name} imported: ${JSON.stringify(dataset)}`);
  return dataset;
}

// What /v1/predict says of folderArchive's images (16 at most): each one's top class and its
// probability, the independent expectation of the job kinds' numbers.
async function predictTop(base, images) {
  assert(images.length <= 16, 'one request of max_inputs images');
  const form = new FormData();
  form.append('model', 'tiny-cnn');
  for (const [i, p] of images.entries()) form.append('image', new Blob([p.image], { type: 'image/bmp' }), `${i}.bmp`);
  const predicted = await (await fetch(`${base}/v1/predict`, { method: 'POST', body: form })).json();
  return predicted.results.map((r) => ({ truth: images[r.input].label, label: r.predictions[0].label, prob: r.predictions[0].prob }));
}

// Chooses the model, dataset and split of the Jobs page's form.
async function chooseData(page, datasetId) {
  await page.selectOption('#model', 'tiny-cnn');
  await page.selectOption('#dataset', datasetId);
  await page.selectOption('#split', 'test');
}

// Clicks Start and waits for the job to end as `state`; resolves to its id.
async function startAndWait(page, state) {
  const before = await page.evaluate(() => location.hash);
  await page.click('#start');
  await page.waitForFunction((old) => /^#[0-9a-f]{24}$/.test(location.hash) && location.hash !== old, before);
  await page.waitForSelector(`#job-view[data-state="${state}"]`, { timeout: 30000 });
  await page.waitForSelector('#job-result-area:not([hidden])');
  return page.evaluate(() => location.hash.slice(1));
}

test('datasets: an archive past the server\'s max_dataset_bytes is refused before it is sent', async ({ open }) => {
  const page = await open('datasets.html');
  assert(await page.textContent('#archive-cap') === 'At most 4 GiB.', 'the default cap (4294967296) is shown');
  // A server with a 100-byte cap: GET /v1 as this one answers it, but for the cap.
  await page.route('**/v1', async (route) => {
    const info = await (await route.fetch()).json();
    await route.fulfill({ json: { ...info, limits: { ...info.limits, max_dataset_bytes: 100 } } });
  });
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  assert(await page.textContent('#archive-cap') === 'At most 100 bytes.', 'the cap comes from GET /v1');
  const posts = [];
  page.on('request', (r) => { if (r.method() === 'POST') posts.push(r.url()); });
  await page.setInputFiles('#archive', { name: 'pets.tar.gz', mimeType: 'application/gzip', buffer: pets().archive });
  await page.click('#upload');
  await page.waitForSelector('#banner:not([hidden])');
  const banner = await page.textContent('#banner');
  assert(banner.includes('pets.tar.gz is') && banner.includes('at most 100 bytes'), `the banner says why: ${banner}`);
  assert(posts.length === 0, `nothing was sent: ${posts}`);
  await page.close();
});

test('datasets: the thumbnails of a split come 48 to a page', async ({ open, base }) => {
  const many = folderArchive('many', { all: { red: 50 } });
  const dataset = await importDataset(base, 'many', many.archive);
  const page = await open(`datasets.html#${dataset.id}`);
  const shown = async () => {
    await page.waitForFunction(() => [...document.querySelectorAll('#images img')].every((i) => i.complete && i.naturalWidth > 0));
    return { count: await page.locator('#images figure').count(), text: await page.textContent('#page-text'),
      prev: await page.isDisabled('#prev-page'), next: await page.isDisabled('#next-page') };
  };
  let now = await shown();
  assert(JSON.stringify(now) === JSON.stringify({ count: 48, text: '1–48 of 50', prev: true, next: false }), `page 1: ${JSON.stringify(now)}`);
  await page.click('#next-page');
  await page.waitForSelector('#images[data-offset="48"]');
  now = await shown();
  assert(JSON.stringify(now) === JSON.stringify({ count: 2, text: '49–50 of 50', prev: false, next: true }), `page 2: ${JSON.stringify(now)}`);
  await page.click('#prev-page');
  await page.waitForSelector('#images[data-offset="0"]');
  assert((await shown()).count === 48, 'back to page 1');
  await page.close();
});

test('jobs: evaluate from its form gives the model\'s accuracy; a dataset a job waits for cannot be deleted', async ({ open, shoot, base }) => {
  // Classes named as tiny-cnn's labels, so the job matches them by name: it takes the reddish
  // images for bananas and the bluish ones for no apple, so some answers are right, some wrong.
  const fruit = folderArchive('fruit', { test: { banana: 4, apple: 4 } });
  const dataset = await importDataset(base, 'fruit', fruit.archive);
  const right = (await predictTop(base, fruit.images)).filter((p) => p.label === p.truth).length;
  assert(right > 0 && right < 8, `/v1/predict gets some but not all of fruit right: ${right} of 8`);

  // The one runner busy, so the evaluate job waits, queued, naming the dataset.
  const blocker = await call(base, '/v1/jobs', { method: 'POST', body: { kind: 'count', params: { units: 600, unit_ms: 100 } } });
  const page = await open('jobs.html');
  await page.selectOption('#kind', 'evaluate');
  await chooseData(page, dataset.id);
  await page.click('#start');
  await page.waitForFunction(() => /^#[0-9a-f]{24}$/.test(location.hash));
  await page.waitForSelector('#job-view[data-state="queued"]');

  const other = await open(`datasets.html#${dataset.id}`);
  await other.waitForSelector('#dataset-view[data-state="ready"]');
  await other.click('#delete');
  await other.waitForSelector('#banner:not([hidden])');
  const banner = await other.textContent('#banner');
  assert(banner.includes('409'), `the banner shows the refusal: ${banner}`);
  assert(await other.isVisible('#dataset-view'), 'the dataset stays shown');
  await other.close();

  await call(base, `/v1/jobs/${blocker.id}`, { method: 'DELETE' });
  await page.waitForSelector('#job-view[data-state="succeeded"]', { timeout: 30000 });
  await page.waitForSelector('#job-result tr[data-key="count"]');
  assert(await page.textContent('#job-result tr[data-key="count"] td') === '8', 'all 8 images counted');
  const top1 = Number(await page.textContent('#job-result tr[data-key="top1"] td'));
  assert(Math.abs(top1 - right / 8) < 1e-3, `top-1 ${top1} is /v1/predict's ${right} of 8`);
  const perClass = await page.locator('#job-result table[data-result="per_class"] tbody tr').evaluateAll((rows) =>
    rows.map((r) => [...r.cells].slice(0, 2).map((c) => c.textContent)));
  assert(JSON.stringify(perClass) === '[["apple","4"],["banana","4"]]', `per-class counts: ${JSON.stringify(perClass)}`);
  await page.waitForFunction(() => [...document.querySelectorAll('#job-charts img')].some((i) => i.complete && i.naturalWidth > 0));
  assert(await page.locator('#job-charts figcaption').allTextContents().then((t) => t.includes('reliability.png')), 'the reliability chart is shown');
  await shoot(page, 'jobs-evaluate');
  await assertNoStrayWords(page, 'jobs.html with an evaluation');
  await page.close();
}, { allowErrors: /409/ });

// Fills the train form's epochs, batch (2) and output, starts the job and waits for its success:
// its id and the params the server got.
async function trainFromForm(page, base, epochs, output) {
  await page.fill('#epochs', String(epochs));
  await page.fill('#batch', '2');
  await page.fill('#output', output);
  const id = await startAndWait(page, 'succeeded');
  return { id, params: (await call(base, `/v1/jobs/${id}`)).params };
}

test('jobs: train from its form registers a model, shown per epoch; the model is then fine-tuned from the form', async ({ open, shoot, base }) => {
  const dataset = await importDataset(base, 'pets-train', pets().archive);
  const page = await open('jobs.html');
  await page.selectOption('#kind', 'train');
  assert(await page.isHidden('#model-field'), 'train takes its model from its own fields');
  await page.selectOption('#dataset', dataset.id);
  await page.selectOption('#split', 'train');
  await page.selectOption('#val-split', 'test');
  assert(await page.inputValue('#classes') === '2', 'classes preset from the dataset');
  await page.selectOption('#arch', 'small-cnn');
  await page.fill('#size', '8');
  const { params } = await trainFromForm(page, base, 2, 'pets-cnn');
  assert(params.model.arch === 'small-cnn' && params.model.classes === 2 && params.model.size === 8 && params.val_split === 'test' &&
    params.optimizer.nesterov === true && params.schedule.name === 'cosine', `the form's params: ${JSON.stringify(params)}`);
  const epochs = await page.locator('#epochs tbody tr').evaluateAll((rows) => rows.map((r) => r.cells[0].textContent));
  assert(JSON.stringify(epochs) === '["1","2"]', `a row per epoch: ${JSON.stringify(epochs)}`);
  assert((await page.locator('#epochs thead th').allTextContents()).includes('val_accuracy'), 'the epochs show val_accuracy');
  await page.waitForFunction(() => [...document.querySelectorAll('#job-charts img')].some((i) => i.complete && i.naturalWidth > 0));
  assert((await page.locator('#job-charts figcaption').allTextContents()).includes('loss.png'), 'the loss curve is shown');
  const models = (await call(base, '/v1/models')).models.map((m) => m.name);
  assert(models.includes('pets-cnn'), `the model is registered: ${models}`);
  await shoot(page, 'jobs-train');
  await assertNoStrayWords(page, 'jobs.html with a train job');

  // The model just registered, fine-tuned as a linear probe with a new head.
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  await page.selectOption('#kind', 'train');
  await page.selectOption('#dataset', dataset.id);
  await page.selectOption('#split', 'train');
  await page.check('input[name="train-model"][value="repository"]');
  assert(await page.isHidden('#zoo-fields'), 'the zoo fields give way to the fine-tuning ones');
  await page.selectOption('#base-model', 'pets-cnn');
  await page.fill('#new-head', '2');
  await page.fill('#freeze', 'all-but-head');
  const { model } = (await trainFromForm(page, base, 1, 'pets-probe')).params;
  assert(model.name === 'pets-cnn' && model.classes === 2 && model.freeze === 'all-but-head', `fine-tuning's model: ${JSON.stringify(model)}`);
  assert((await call(base, '/v1/models')).models.some((m) => m.name === 'pets-probe'), 'the fine-tuned model is registered');
  await page.close();
});

test('jobs: affinity of Identity is exactly 0; accepted pseudo-labels become a split', async ({ open, shoot, base }) => {
  // Every class of tiny-cnn, so that any accepted pseudo-label is one of the dataset's classes.
  const orchard = folderArchive('orchard', { test: { banana: 2, apple: 2, cherry: 1, date: 1, elderberry: 1 } });
  const dataset = await importDataset(base, 'orchard', orchard.archive);
  const predicted = await predictTop(base, orchard.images);
  const right = predicted.filter((p) => p.label === p.truth).length;
  assert(right > 0, `/v1/predict gets some of orchard right: ${JSON.stringify(predicted)}`);

  const page = await open('jobs.html');
  await page.selectOption('#kind', 'affinity');
  await chooseData(page, dataset.id);
  await page.fill('#policies', JSON.stringify([{ op: 'Identity' }, { op: 'Invert' }]));
  await page.fill('#draws', '2');
  await startAndWait(page, 'succeeded');
  const clean = Number(await page.textContent('#job-result tr[data-key="clean_accuracy"] td'));
  assert(Math.abs(clean - right / 7) < 1e-3, `clean accuracy ${clean} is /v1/predict's ${right} of 7`);
  const identity = await page.locator('#job-result table[data-result="policies"] tbody tr', { hasText: 'Identity' })
    .evaluate((tr) => Object.fromEntries([...tr.cells].map((c) => [c.dataset.column, c.textContent])));
  assert(identity['affinity mean'] === '0' && identity['affinity std'] === '0' && identity['ratio mean'] === '1',
    `Identity moves nothing: ${JSON.stringify(identity)}`);
  await page.waitForFunction(() => [...document.querySelectorAll('#job-charts img')].some((i) => i.alt.includes('affinity.png') && i.naturalWidth > 0));
  await shoot(page, 'jobs-affinity');
  await assertNoStrayWords(page, 'jobs.html with affinities');

  // "Every image op at a level": params {"policies": "ops", "level"}, Identity first and still 0.
  await page.check('input[name="policies-mode"][value="ops"]');
  assert(await page.isHidden('#policies-list') && await page.isVisible('#level'), 'the level replaces the list');
  await page.fill('#level', '0.3');
  await page.fill('#draws', '1');
  await startAndWait(page, 'succeeded');
  assert(await page.textContent('#job-params tr[data-key="policies"] td') === 'ops' &&
    await page.textContent('#job-params tr[data-key="level"] td') === '0.3', 'sent as "ops" at level 0.3');
  const names = await page.locator('#job-result table[data-result="policies"] td[data-column="name"]').allTextContents();
  assert(names.length > 2 && names[0] === 'Identity' && names.some((n) => n.endsWith('@0.3')), `every op: ${names}`);
  assert(await page.textContent('#job-result table[data-result="policies"] tbody tr:first-child td[data-column="affinity mean"]') === '0',
    'Identity is 0 among the ops');

  // tiny-cnn is sure of itself on solid colours: a threshold this close to 1 accepts some only.
  await page.selectOption('#kind', 'pseudo-label');
  await chooseData(page, dataset.id);
  await page.fill('#threshold', '0.99999');
  await page.fill('#as-split', 'pseudo');
  await startAndWait(page, 'succeeded');
  const accepted = predicted.filter((p) => p.prob >= 0.99999);
  assert(accepted.length > 0 && accepted.length < 7, `the threshold splits orchard: ${JSON.stringify(predicted)}`);
  assert(await page.textContent('#job-result tr[data-key="accepted"] td') === String(accepted.length),
    `accepted as /v1/predict's confident answers: ${accepted.length}`);
  await page.close();

  const view = await open(`datasets.html#${dataset.id}`);
  await view.waitForSelector('#counts th:text-is("pseudo")');
  const counts = await classCounts(view);
  for (const label of ['apple', 'banana', 'cherry', 'date', 'elderberry']) {
    const want = accepted.filter((p) => p.label === label).length;
    assert(counts[label].pseudo === want, `${label}: ${counts[label].pseudo} in the pseudo split, ${want} predicted confidently`);
  }
  await view.close();
});

// Opens the Jobs page on the form of `kind`, a kind with the training fields, checks it hides the
// fields `hidden`, and fills them in for small-cnn at 8 px trained on the dataset's train split
// for 3 steps of batches of 2.
async function trainingForm(open, kind, datasetId, hidden) {
  const page = await open('jobs.html');
  await page.selectOption('#kind', kind);
  for (const id of hidden) assert(await page.isHidden(id), `${kind} has no ${id}`);
  await page.selectOption('#dataset', datasetId);
  await page.selectOption('#split', 'train');
  await page.selectOption('#arch', 'small-cnn');
  await page.fill('#size', '8');
  await page.fill('#epochs', '3');
  await page.selectOption('#budget-unit', 'steps');
  await page.fill('#batch', '2');
  return page;
}

test('jobs: diversity from its form scores Identity exactly 1 over steps; the page asks for a policy', async ({ open, base }) => {
  const dataset = await importDataset(base, 'pets-diversity', pets().archive);
  const page = await trainingForm(open, 'diversity', dataset.id, ['#model-field', '#val-split-field', '#output-field', '#ema-field']);
  await page.fill('#policy', '');
  await page.click('#start');
  await page.waitForSelector('#banner:not([hidden])');
  assert((await page.textContent('#banner')).includes('Give the policy whose diversity is measured'), 'no policy: the page asks for one');
  await page.fill('#policy', JSON.stringify({ op: 'Identity' }));
  const id = await startAndWait(page, 'succeeded');
  const { params } = await call(base, `/v1/jobs/${id}`);
  assert(params.steps === 3 && params.policy.op === 'Identity' && !('val_split' in params) && !('output' in params) &&
    !('ema' in params), `the form's params: ${JSON.stringify(params)}`);
  assert(await page.textContent('#job-result tr[data-key="diversity"] td') === '1', 'Identity is exactly 1');
  await assertNoStrayWords(page, 'jobs.html with a diversity job');
  await page.close();
});

test('jobs: self-training from its form: the teacher labels the unlabeled split as /v1/predict does, the student is registered', async ({ open, base }) => {
  // Every class of tiny-cnn (a teacher has exactly the dataset's classes), two of each to train on.
  const layout = { train: { apple: 2, banana: 2, cherry: 2, date: 2, elderberry: 2 },
    test: { apple: 1, banana: 1, cherry: 1, date: 1, elderberry: 1 } };
  const orchard = folderArchive('orchard', layout);
  const dataset = await importDataset(base, 'orchard-st', orchard.archive);
  await call(base, `/v1/datasets/${dataset.id}/splits`, { method: 'POST',
    body: { name: 'labeled', from: 'train', per_class: 1, seed: 1, rest: 'unlabeled' } });

  const page = await trainingForm(open, 'self-training', dataset.id, ['#model-field']);
  assert(await page.isVisible('#teachers'), 'the teachers replace the model select');
  await page.selectOption('#split', 'labeled');
  await page.selectOption('#val-split', 'test');
  await page.selectOption('#teachers', ['tiny-cnn']);
  await page.selectOption('#unlabeled-split', 'unlabeled');
  await page.fill('#st-threshold', '0');
  await page.fill('#output', 'orchard-student');
  const id = await startAndWait(page, 'succeeded');
  const job = await call(base, `/v1/jobs/${id}`);
  const p = job.params;
  assert(JSON.stringify(p.teacher) === '["tiny-cnn"]' && p.unlabeled_split === 'unlabeled' && p.labels === 'soft' &&
    p.temperature === 1 && p.threshold === 0 && p.rounds === 1 && !('per_class' in p), `the form's params: ${JSON.stringify(p)}`);
  assert(await page.textContent('#job-result tr[data-key="model"] td') === 'orchard-student-round1', 'the result names the student');
  assert((await call(base, '/v1/models')).models.some((m) => m.name === 'orchard-student-round1'), 'the student is registered');

  // The pseudo-labels are tiny-cnn's answers for those images: /v1/predict's top class, its probability.
  const byName = new Map();
  const seen = {};
  for (const image of orchard.images) {
    const key = `${image.split}/${image.label}`;
    seen[key] = (seen[key] || 0) + 1;
    byName.set(`${key}/${seen[key] - 1}.bmp`, image);
  }
  const lines = (await (await fetch(`${base}/v1/jobs/${id}/artifacts/round-1-pseudo-labels.jsonl`)).text()).trim().split('\n')
    .map((l) => JSON.parse(l));
  assert(lines.length === 5, `a line per unlabeled image: ${lines.length}`);
  const predicted = await predictTop(base, lines.map((l) => byName.get(l.file.split('/').slice(-3).join('/'))));
  for (const [i, l] of lines.entries()) {
    assert(l.label === predicted[i].label && Math.abs(l.confidence - predicted[i].prob) < 1e-5 && l.copies === 1,
      `${l.file}: ${JSON.stringify(l)}, /v1/predict ${JSON.stringify(predicted[i])}`);
  }
  assert(job.result.rounds[0].pseudo.kept === 5 && job.result.rounds[0].steps === 3, `every image kept, 3 steps: ${JSON.stringify(job.result.rounds[0])}`);
  await assertNoStrayWords(page, 'jobs.html with a self-training job');
  await page.close();
});

test('jobs: affinity-diversity from its form scores Identity 1, 1 and 0 and draws the scatter', async ({ open, shoot, base }) => {
  const dataset = await importDataset(base, 'pets-scores', pets().archive);
  const page = await trainingForm(open, 'affinity-diversity', dataset.id, ['#model-field', '#output-field', '#ema-field', '#draws-field']);
  assert(await page.isVisible('#policies'), 'the policies');
  await page.selectOption('#val-split', 'test');
  await page.fill('#policies', JSON.stringify([{ op: 'Identity' }, { op: 'Invert' }]));
  const id = await startAndWait(page, 'succeeded');
  const { params, result } = await call(base, `/v1/jobs/${id}`);
  assert(params.steps === 3 && !('epochs' in params) && params.val_split === 'test' && params.policies.length === 2 &&
    !('output' in params) && !('ema' in params) && !('draws' in params), `the form's params: ${JSON.stringify(params)}`);
  const identity = await page.locator('#job-result table[data-result="policies"] tbody tr', { hasText: 'Identity' })
    .evaluate((tr) => Object.fromEntries([...tr.cells].map((c) => [c.dataset.column, c.textContent])));
  assert(identity.affinity === '1' && identity.diversity === '1' && identity.gain === '0', `Identity scores 1, 1, 0: ${JSON.stringify(identity)}`);

  // The scatter: a point per policy coloured by its gain on the diverging scale (white at 0,
  // towards red (215, 70, 60) below and blue (66, 110, 200) above), Identity on the grey lines
  // through the clean model's (1, 1).
  const points = await page.locator('#scatter circle').evaluateAll((cs) => cs.map((c) => ({
    name: c.dataset.name, fill: c.getAttribute('fill'), cx: Number(c.getAttribute('cx')), cy: Number(c.getAttribute('cy')) })));
  assert(points.length === 2, `a point per policy: ${JSON.stringify(points)}`);
  const scale = result.scatter.gain_scale;
  for (const row of result.policies) {
    const t = Math.min(Math.abs(row.gain / scale), 1);
    const end = row.gain < 0 ? [215, 70, 60] : [66, 110, 200];
    const want = `rgb(${end.map((c) => Math.round(255 + t * (c - 255))).join(', ')})`;
    const point = points.find((p) => p.name === row.name);
    assert(point && point.fill === want, `${row.name} (gain ${row.gain} of ${scale}) is ${want}: ${JSON.stringify(point)}`);
  }
  const grey = await page.locator('#scatter line[stroke="#aaa"]').evaluateAll((ls) => ls.map((l) =>
    ['x1', 'y1', 'x2', 'y2'].map((a) => Number(l.getAttribute(a)))));
  const vertical = grey.find(([x1, , x2]) => x1 === x2);
  const horizontal = grey.find(([, y1, , y2]) => y1 === y2);
  const clean = points.find((p) => p.name === 'Identity');
  assert(clean.fill === 'rgb(255, 255, 255)' && clean.cx === vertical[0] && clean.cy === horizontal[1],
    `Identity is white at (1, 1): ${JSON.stringify({ clean, vertical, horizontal })}`);
  // 3 steps of 2 per epoch: two epochs per run, a row each, the clean run's first.
  const perEpoch = await page.locator('#epochs tbody tr').evaluateAll((rows) => rows.map((r) => `${r.cells[0].textContent} ${r.cells[1].textContent}`));
  assert(JSON.stringify(perEpoch) === '["clean 1","clean 2","policies/0 1","policies/0 2","policies/1 1","policies/1 2"]',
    `a row per run and epoch: ${JSON.stringify(perEpoch)}`);
  await page.waitForFunction(() => [...document.querySelectorAll('#job-charts img')].some((i) => i.alt.includes('scatter.png') && i.naturalWidth > 0));
  await shoot(page, 'jobs-affinity-diversity');
  await assertNoStrayWords(page, 'jobs.html with an affinity-diversity job');
  await page.close();
});

// ---- The Search page ----------------------------------------------------------------------------

// Seven solid-colour images of tiny-cnn's classes in a test split: a search's affinity scores
// the model on them.
const orchardImages = () => folderArchive('orchard', { test: { banana: 2, apple: 2, cherry: 1, date: 1, elderberry: 1 } });

// Fills the Search page's form for tiny-cnn on the dataset's test split; the space and the
// algorithm are the caller's.
async function searchForm(page, datasetId, { trials, seed }) {
  await page.fill('#trials', String(trials));
  await page.selectOption('#model', 'tiny-cnn');
  await page.selectOption('#dataset', datasetId);
  await page.selectOption('#val-split', 'test');
  await page.fill('#seed', String(seed));
}

// Clicks Start, waits for the search to end as `state` with its result shown; resolves to its id.
async function startSearch(page, state) {
  await page.click('#start');
  await page.waitForFunction(() => /^#[0-9a-f]{24}$/.test(location.hash));
  await page.waitForSelector(`#job-view[data-state="${state}"]`, { timeout: 30000 });
  await page.waitForSelector('#result-area:not([hidden])');
  return page.evaluate(() => location.hash.slice(1));
}

// The leaderboard's rows as shown: [{trial, value, state, best}], best first.
function leaderboardRows(page) {
  return page.locator('#trials tbody tr').evaluateAll((rows) => rows.map((r) => ({
    trial: Number(r.dataset.trial), value: Number(r.dataset.value), state: r.dataset.state, best: r.classList.contains('best') })));
}

test('search: a random search from the form fills the leaderboard live; its best is the result\'s and the curve only rises', async ({ open, shoot, base }) => {
  const dataset = await importDataset(base, 'orchard-search', orchardImages().archive);
  const page = await open('search.html');
  // Every row count the leaderboard shows, with the search's state then.
  await page.evaluate(() => {
    window.seen = [];
    new MutationObserver(() => window.seen.push({ rows: document.querySelectorAll('#trials tbody tr').length,
      state: document.querySelector('#job-view').dataset.state }))
      .observe(document.querySelector('#leaderboard'), { childList: true, subtree: true });
  });
  // Blurring each image at 256 px makes a trial last about 0.2 s, so the search runs long enough
  // for the page to show it filling; Solarize's threshold is the searched value.
  await page.check('input[name="space-mode"][value="document"]');
  await page.fill('#space-doc', JSON.stringify({ seq: [{ op: 'Resize', height: 256, width: 256 }, { op: 'GaussianBlur', sigma: 4 },
    { op: 'Solarize', threshold: { $search: { int: [0, 256] } } }] }));
  await page.selectOption('#algorithm', 'random');
  await searchForm(page, dataset.id, { trials: 8, seed: 3 });
  await page.fill('#more-params', '{"batch_size": 4}');
  const id = await startSearch(page, 'succeeded');
  const { params, result } = await call(base, `/v1/jobs/${id}`);
  assert(params.algorithm === 'random' && params.objective === 'affinity' && params.budget.trials === 8 && params.batch_size === 4 &&
    params.splits.val === 'test' && params.model === 'tiny-cnn' && params.seed === 3 && !('save_as' in params),
  `the form's params: ${JSON.stringify(params)}`);

  const seen = await page.evaluate(() => window.seen);
  assert(seen.some((s) => s.state === 'running' && s.rows > 0 && s.rows < 8), `rows shown while it ran: ${JSON.stringify(seen)}`);
  assert(seen.every((s, i) => i === 0 || s.rows >= seen[i - 1].rows || s.rows === 0), `the rows only grow: ${JSON.stringify(seen)}`);
  const rows = await leaderboardRows(page);
  assert(rows.length === 8, `8 rows: ${JSON.stringify(rows)}`);
  const values = result.trials.map((t) => t.value);
  const best = Math.max(...values);
  assert(rows[0].best && rows.filter((r) => r.best).length === 1, `the first row alone is highlighted: ${JSON.stringify(rows)}`);
  assert(rows[0].value === best && rows[0].trial === result.best.trial, `the best row is the result's best (${best}, trial ${result.best.trial}): ${JSON.stringify(rows[0])}`);
  assert(rows.every((r, i) => i === 0 || r.value <= rows[i - 1].value), `sorted by value: ${JSON.stringify(rows)}`);
  // A trial run as a child job (its row's "job") links to it on the Jobs page.
  for (const t of result.trials.filter((r) => r.job)) {
    assert(await page.getAttribute(`#trials tr[data-trial="${t.trial}"] a`, 'href') === `jobs.html#${t.job}`, `trial ${t.trial} links to its job`);
  }

  // The curve: a point per trial at the largest value of the trials up to it.
  const points = await page.locator('#curve circle').evaluateAll((cs) => cs.map((c) => ({
    trial: Number(c.dataset.trial), value: Number(c.dataset.value), cy: Number(c.getAttribute('cy')) })));
  assert(points.length === 8, `8 points: ${JSON.stringify(points)}`);
  for (const [k, p] of points.entries()) {
    assert(p.trial === k && p.value === Math.max(...values.slice(0, k + 1)), `point ${k} is the best of trials 0..${k}: ${JSON.stringify(points)}`);
    assert(k === 0 || (p.value >= points[k - 1].value && p.cy <= points[k - 1].cy), `the curve never falls: ${JSON.stringify(points)}`);
  }
  assert(await page.isHidden('#heatmap-area'), 'no heatmap for a space that is not (n, m)');
  assert(await page.textContent('#result-table tr[data-key="best value"] td') === String(Number(best.toPrecision(4))), 'the result\'s best value');
  assert(await page.locator(`#searches tr[data-job="${id}"][data-state="succeeded"]`).count() === 1, 'listed as succeeded');
  await shoot(page, 'search');
  await shoot(page, 'search', 360);
  await assertNoStrayWords(page, 'search.html with a search');
  await page.close();
});

// A test split of 16 colours, each labelled as tiny-cnn classifies it: its clean accuracy is 1,
// and policies that change colours more cost more of it.
async function paletteDataset(base, name) {
  const images = Array.from({ length: 16 }, (_, i) => ({ label: String(i),
    image: solidBmp(8, 8, [(i * 97 + 31) % 256, (i * 57 + 200) % 256, (i * 151 + 7) % 256]) }));
  const files = (await predictTop(base, images)).map((p) => [`${name}/test/${p.label}/${p.truth}.bmp`, images[Number(p.truth)].image]);
  return importDataset(base, name, zlib.gzipSync(tar(files)));
}

test('search: a RandAugment grid draws its N x M heatmap, coloured in the order of the values', async ({ open, shoot, base }) => {
  const dataset = await paletteDataset(base, 'palette');
  const page = await open('search.html');
  await page.selectOption('#space-name', 'randaugment');
  await page.fill('#space-arg-n', '[1, 3]');
  await page.fill('#space-arg-m', '[0, 30]');
  await page.selectOption('#algorithm', 'grid');
  await searchForm(page, dataset.id, { trials: 10, seed: 1 });
  const id = await startSearch(page, 'succeeded');
  const { params, result } = await call(base, `/v1/jobs/${id}`);
  assert(JSON.stringify(params.space) === '{"space":"randaugment","n":[1,3],"m":[0,30]}' && params.algorithm === 'grid',
    `the form's space: ${JSON.stringify(params)}`);
  assert(result.trials.length === 4, `the grid's 4 points: ${JSON.stringify(result.trials)}`);
  assert(new Set(result.trials.map((t) => t.value)).size > 1, `the cells differ: ${JSON.stringify(result.trials)}`);

  const cells = await page.locator('#heatmap rect.cell').evaluateAll((rs) => rs.map((r) => ({
    n: Number(r.dataset.n), m: Number(r.dataset.m), value: Number(r.dataset.value), fill: r.getAttribute('fill') })));
  const key = (n, m) => `${n} ${m}`;
  assert(JSON.stringify(cells.map((c) => key(c.n, c.m)).sort()) === JSON.stringify(['1 0', '1 30', '3 0', '3 30']), `the 4 cells: ${JSON.stringify(cells)}`);
  for (const c of cells) {
    const trial = result.trials.find((t) => t.params['/n'] === c.n && t.params['/m'] === c.m);
    assert(c.value === trial.value, `cell ${key(c.n, c.m)} holds its trial's value ${trial.value}: ${c.value}`);
  }
  // The colour scale runs from dark to light: a larger value is a lighter cell, an equal one the same colour.
  const lightness = (fill) => {
    const [r, g, b] = fill.match(/\d+/g).map(Number);
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  for (const a of cells) {
    for (const b of cells) {
      if (a.value < b.value) assert(lightness(a.fill) < lightness(b.fill), `${JSON.stringify(a)} is darker than ${JSON.stringify(b)}`);
      if (a.value === b.value) assert(a.fill === b.fill, `${JSON.stringify(a)} and ${JSON.stringify(b)}: one colour`);
    }
  }
  assert(await page.locator('#heat-legend').count() === 1, 'a legend');
  await shoot(page, 'search-heatmap');
  await page.close();
});

test('search: a bad placeholder shows the server\'s error with its pointer, and no search starts', async ({ open, base }) => {
  const dataset = await importDataset(base, 'orchard-bad', orchardImages().archive);
  const searches = async () => (await call(base, '/v1/jobs?kind=search&limit=100')).jobs.length;
  const before = await searches();
  const page = await open('search.html');
  const posts = [];
  page.on('request', (r) => { if (r.method() === 'POST' && r.url().endsWith('/v1/jobs')) posts.push(r.url()); });
  await page.check('input[name="space-mode"][value="document"]');
  await searchForm(page, dataset.id, { trials: 3, seed: 0 });
  // Not JSON: the page says so and sends nothing.
  await page.fill('#space-doc', '{"op": "Rotate", ');
  await page.click('#start');
  await page.waitForSelector('#form-error:not([hidden])');
  assert((await page.textContent('#form-error')).includes('The space is not JSON'), 'the page refuses text that is not JSON');
  assert(posts.length === 0, 'nothing was sent');

  const space = JSON.stringify({ op: 'Rotate', degrees: { $search: { uniform: [0, 400] } } }, null, 2);
  await page.fill('#space-doc', space);
  await page.click('#start');
  await page.waitForFunction(() => document.querySelector('#form-error').dataset.field === 'space');
  const error = await page.textContent('#form-error');
  assert(await page.getAttribute('#form-error', 'data-pointer') === '/degrees', `the pointer: ${error}`);
  assert(error.includes('space at /degrees') && error.includes('[-360, 360]') && error.includes('422 unprocessable'),
    `the server's message, the field and the pointer: ${error}`);
  assert(await page.getAttribute('#space-doc', 'aria-invalid') === 'true', 'the document is marked');
  await page.click('#show-node');
  const selected = await page.$eval('#space-doc', (t) => t.value.slice(t.selectionStart, t.selectionEnd));
  assert(JSON.stringify(JSON.parse(selected)) === '{"$search":{"uniform":[0,400]}}', `the placeholder is selected: ${selected}`);
  assert(await page.isHidden('#banner'), 'the refusal is shown by the form, not the banner');

  // A named space's argument out of range: the argument's field is marked.
  await page.check('input[name="space-mode"][value="named"]');
  await page.selectOption('#space-name', 'randaugment');
  await page.fill('#space-arg-m', '[0, 99]');
  await page.click('#start');
  await page.waitForFunction(() => document.querySelector('#form-error').dataset.pointer === '/m');
  assert((await page.textContent('#form-error')).includes('[0, 30]') && await page.getAttribute('#space-arg-m', 'aria-invalid') === 'true',
    `m's field is marked with the server's message: ${await page.textContent('#form-error')}`);
  assert(await page.getAttribute('#space-doc', 'aria-invalid') === null, 'the earlier mark is cleared');
  // A param the form has no field for goes in the other params, which a refusal of it marks.
  await page.fill('#space-arg-m', '');
  await page.fill('#more-params', '{"batch_sizes": 4}');
  await page.click('#start');
  await page.waitForFunction(() => document.querySelector('#form-error').dataset.field === 'batch_sizes');
  assert(await page.getAttribute('#more-params', 'aria-invalid') === 'true', 'the other params are marked');
  assert(posts.length === 3 && await searches() === before, 'refused: no search was made');
  await page.close();
}, { allowErrors: /422/ });

test('search: an earlier search opens from the list, and its best policy opens in Augment and augments', async ({ open, base }) => {
  const dataset = await importDataset(base, 'orchard-best', orchardImages().archive);
  const space = { seq: [{ op: 'Resize', height: 32, width: 32 }, { op: 'Solarize', threshold: { $search: { choice: [0, 128, 256] } } }] };
  const job = await call(base, '/v1/jobs', { method: 'POST', body: { kind: 'search', params: { space, algorithm: 'grid',
    objective: 'affinity', budget: { trials: 3 }, dataset: dataset.id, splits: { val: 'test' }, model: 'tiny-cnn' } } });
  // The Jobs page sends a search to the Search page.
  const jobs = await open(`jobs.html#${job.id}`);
  await jobs.click('#job-links a[href^="search.html"]');
  await jobs.waitForSelector('#job-view[data-state="succeeded"] #trials');
  assert(jobs.url().endsWith(`search.html#${job.id}`), `the search's page: ${jobs.url()}`);
  await jobs.close();

  const page = await open('search.html');
  await page.click(`#searches tr[data-job="${job.id}"] a`);
  await page.waitForSelector('#job-view[data-state="succeeded"]');
  await page.waitForSelector('#result-area:not([hidden])');
  const { result } = await call(base, `/v1/jobs/${job.id}`);
  assert((await leaderboardRows(page)).length === 3, 'its 3 trials');
  assert(JSON.stringify(JSON.parse(await page.textContent('#best-policy'))) === JSON.stringify(result.best.policy), 'its best policy is shown');
  assert(await page.isDisabled('#cancel'), 'an ended search cannot be cancelled');

  await page.click('#open-best');
  await page.waitForURL(/index\.html#policy=/);
  await page.waitForSelector('body[data-ready="true"]');
  await page.waitForFunction(() => document.querySelector('#policy-status').dataset.state === 'valid');
  assert(JSON.stringify(JSON.parse(await page.inputValue('#policy-json'))) === JSON.stringify(result.best.policy),
    `the editor holds the best policy: ${await page.inputValue('#policy-json')}`);
  assert(await page.isChecked('input[name="mode"][value="json"]'), 'in the JSON mode');
  await page.setInputFiles('#images', path.join(fixtures, 'predict/photo.png'));
  await page.click('#run');
  await page.waitForSelector('figure.sample');
  const trace = await page.locator('figure.sample .trace').first().textContent();
  const threshold = result.best.policy.seq[1].threshold;
  const [resize, solarize] = trace.split('\n');
  assert(resize.startsWith('Resize(height=32, width=32') && solarize === `Solarize(threshold=${threshold})`,
    `the sample went through the best policy: ${trace}`);
  await page.close();
});

test('search: a running search is cancelled from its page and keeps the trials it finished', async ({ open, base }) => {
  const dataset = await importDataset(base, 'orchard-cancel', orchardImages().archive);
  // Trials of about 0.2 s, as above: 200 of them would run for a minute.
  const space = { seq: [{ op: 'Resize', height: 256, width: 256 }, { op: 'GaussianBlur', sigma: 4 },
    { op: 'Solarize', threshold: { $search: { int: [0, 256] } } }] };
  const job = await call(base, '/v1/jobs', { method: 'POST', body: { kind: 'search', params: { space, algorithm: 'random',
    objective: 'affinity', budget: { trials: 200 }, dataset: dataset.id, splits: { val: 'test' }, model: 'tiny-cnn' } } });
  const page = await open(`search.html#${job.id}`);
  await page.waitForSelector('#trials tbody tr', { timeout: 10000 });
  assert(await page.isEnabled('#cancel'), 'a running search can be cancelled');
  await page.click('#cancel');
  await page.waitForSelector('#job-view[data-state="cancelled"]', { timeout: 10000 });
  assert(await page.isDisabled('#cancel'), 'not twice');
  // Its files are listed once the trials were read the last time.
  await page.waitForSelector('#search-artifacts li');
  const rows = await page.locator('#trials tbody tr').count();
  const finished = (await (await fetch(`${base}/v1/jobs/${job.id}/artifacts/trials.jsonl`)).text()).trim().split('\n').length;
  assert(rows >= 1 && rows < 200 && rows === finished, `the ${finished} trials it finished: ${rows} rows`);
  const log = await page.locator('#job-log li').allTextContents();
  assert(log.at(-1) === 'state cancelled', `the log ends with the cancellation: ${JSON.stringify(log)}`);
  await page.close();
});

test('ctaugment: a new state shows its bins as a heatmap, draws views, and a probe\'s feedback changes the bins it used', async ({ open, shoot, base }) => {
  const page = await open('ctaugment.html');
  assert(await page.locator('#heatmap').count() === 0, 'no heatmap before a state is chosen');
  await page.click('#new-state');
  await page.waitForSelector('#heatmap rect.cell');
  const id = await page.locator('#state').inputValue();
  const cellValues = () => page.locator('#heatmap rect.cell').evaluateAll((cells) => cells.map((c) =>
    ({ op: c.dataset.op, arg: Number(c.dataset.arg), bin: Number(c.dataset.bin), value: Number(c.dataset.value) })));
  // 16 ops of one argument in 17 bins, posterize's 8, rescale's 17 and 6 (identity has none).
  let cells = await cellValues();
  assert(cells.length === 16 * 17 + 8 + 17 + 6, `a cell per bin: ${cells.length}`);
  assert(cells.every((c) => c.value === 1), 'a new state\'s rates are all 1');

  // Strong views: the policies the API draws for the same seed, each with its Cutout.
  await page.setInputFiles('#image', path.join(fixtures, 'predict/photo.png'));
  await page.fill('#seed', '7');
  await page.fill('#samples', '3');
  await page.click('#augment');
  await page.waitForSelector('figure.view img');
  await page.waitForFunction(() => [...document.querySelectorAll('figure.view img')].every((i) => i.complete && i.naturalWidth > 0));
  const shown = await page.locator('figure.view').evaluateAll((figs) => figs.map((f) => JSON.parse(f.dataset.policy)));
  const form = new FormData();
  form.append('image', new Blob([fs.readFileSync(path.join(fixtures, 'predict/photo.png'))], { type: 'image/png' }), 'photo.png');
  form.append('seed', '7');
  form.append('samples', '3');
  const direct = await (await fetch(`${base}/v1/ctaugment/${id}/augment`, { method: 'POST', body: form })).json();
  assert(JSON.stringify(shown) === JSON.stringify(direct.results.map((r) => r.policy)), `the views' policies: ${JSON.stringify(shown)}`);
  assert((await page.locator('figure.view figcaption').first().textContent()).endsWith('cutout'), 'a strong view says it was cut out');
  await shoot(page, 'ctaugment');

  // A probe, scored 0: exactly the bins its policy used, int(value * bins * 0.999), fall to 0.99.
  await page.click('#probe');
  await page.waitForSelector('figure.view .feedback button');
  const probe = JSON.parse(await page.locator('figure.view').first().getAttribute('data-policy'));
  const binsOf = (op, arg) => cells.filter((c) => c.op === op && c.arg === arg).length;
  const used = new Set(probe.flatMap(([op, values]) => values.map((v, arg) => `${op} ${arg} ${Math.floor(v * binsOf(op, arg) * 0.999)}`)));
  await page.fill('#proximity-0', '0');
  await page.click('figure.view .feedback button');
  await page.waitForFunction(() => document.querySelector('#state-info').textContent.startsWith('revision 1'));
  cells = await cellValues();
  const changed = cells.filter((c) => c.value !== 1).map((c) => `${c.op} ${c.arg} ${c.bin}`);
  assert(JSON.stringify(changed.sort()) === JSON.stringify([...used].sort()), `the bins changed: ${changed} (used: ${[...used]})`);
  assert(cells.filter((c) => c.value !== 1).every((c) => Math.abs(c.value - 0.99) < 1e-6), 'each to 0.99 * 1 + 0.01 * 0');

  // The probabilities: each row sums to 1.
  await page.selectOption('#show', 'probabilities');
  await page.waitForSelector('#heatmap[data-member="probabilities"]');
  const sums = new Map();
  for (const c of await cellValues()) sums.set(`${c.op} ${c.arg}`, (sums.get(`${c.op} ${c.arg}`) || 0) + c.value);
  assert([...sums.values()].every((s) => Math.abs(s - 1) < 1e-5), 'each row of probabilities sums to 1');
  await shoot(page, 'ctaugment', 360);
  await assertNoStrayWords(page, 'ctaugment.html with a state and views');

  // Deleted, it is gone from the list.
  await page.click('#delete-state');
  await page.waitForFunction(() => document.querySelector('#state').value === '');
  assert(await page.locator('#heatmap').count() === 0, 'no heatmap once the state is deleted');
  await page.close();
});

test('keyboard: Tab reaches the controls with a visible focus ring', async ({ open }) => {
  const page = await open('index.html');
  await page.keyboard.press('Tab');
  assert(await page.evaluate(() => document.activeElement.className) === 'skip', 'the first Tab reaches the skip link');
  for (let i = 0; i < 3; i++) await page.keyboard.press('Tab');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert(outline !== 'none', `the focused element has an outline (${outline})`);
  await page.close();
});

// ---- Running them -------------------------------------------------------------------------------

const userData = fs.mkdtempSync(path.join(os.tmpdir(), 'augserve-chromium-'));
let server = null;
let context = null;
let failed = 0;
try {
  server = await startServer();
  context = await chromium.launchPersistentContext(userData, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  for (const { name, fn, options } of tests) {
    const errors = [];
    const open = async (file, width = 1280) => {
      const page = await context.newPage();
      await page.setViewportSize({ width, height: width < 600 ? 740 : 900 });
      page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
      page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
      await page.goto(`${server.base}/${file}`);
      await page.waitForSelector('body[data-ready="true"]', { timeout: 10000 });
      return page;
    };
    const shoot = async (page, label, width = 1280) => {
      await page.setViewportSize({ width, height: width < 600 ? 740 : 900 });
      await page.screenshot({ path: path.join(shots, `${label}-${width}.png`), fullPage: true });
    };
    const started = Date.now();
    try {
      await fn({ open, shoot, base: server.base });
      const unexpected = errors.filter((e) => !(options.allowErrors && options.allowErrors.test(e)));
      assert(unexpected.length === 0, `no console errors:\n  ${unexpected.join('\n  ')}`);
      console.log(`ok   ${name} (${Date.now() - started} ms)`);
    } catch (err) {
      failed++;
      console.log(`FAIL ${name}\n     ${err.message}`);
    }
  }
} catch (err) {
  failed++;
  console.log(`FAIL setting up: ${err.stack || err.message}`);
} finally {
  await context?.close();
  if (server) {
    server.child.removeAllListeners('exit');
    server.child.kill('SIGTERM');
  }
  fs.rmSync(userData, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
}
console.log(failed ? `${failed} of ${tests.length} browser tests failed` : `all ${tests.length} browser tests passed; screenshots in ${shots}`);
process.exit(failed ? 1 : 0);
