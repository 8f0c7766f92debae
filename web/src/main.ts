/**
 * The browser app's page: file handling, the NiiVue viewer and the progress UI. Segmentation itself
 * runs in a Web Worker (src/browser/segment-worker.ts) on WebGPU, or on the CPU reference backend
 * when the browser has no WebGPU, so the page stays responsive and Cancel can stop it at once.
 *
 * For tests and curious users the page reports its state on <body data-state> (idle, loading,
 * running, done, error) and the backend that ran on #backend-used[data-backend].
 */
import { Niivue, NVImage } from '@niivue/niivue';
import type { ComputeBackend, ModelBytes, SegmentResult } from '../../src/browser/segment.js';
import type { SegmentRequest, WorkerMessage } from '../../src/browser/protocol.js';
import { readImage } from '../../src/browser/image.js';
import { isInputError } from '../../src/browser/errors.js';
import { weightsFormat } from '../../src/io/weights-format.js';
import { manifestChannels, ModelFolderError, validateManifest, type ModelManifest } from '../../src/infer/model-manifest.js';
import { ENSEMBLE_FORMAT, manifestFormat, validateEnsembleManifest } from '../../src/infer/ensemble-manifest.js';
import { ensembleView, pickedModel, type PickedModel } from '../../src/browser/model-folder.js';
import { LABEL_COLORS } from '../../src/infer/label-colors.js';

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from index.html`);
  return el as T;
};

const ui = {
  gpuStatus: $('gpu-status'),
  drop: $('drop'),
  dropText: $('drop-text'),
  imageInput: $<HTMLInputElement>('image-input'),
  sample: $<HTMLButtonElement>('sample'),
  sampleNote: $('sample-note'),
  viewerEmpty: $('viewer-empty'),
  bundled: $<HTMLInputElement>('model-bundled'),
  custom: $<HTMLInputElement>('model-custom'),
  bundledName: $('bundled-name'),
  bundledDescription: $('bundled-description'),
  customBox: $('custom-model'),
  folderInput: $<HTMLInputElement>('folder-input'),
  weightsInput: $<HTMLInputElement>('weights-input'),
  manifestInput: $<HTMLInputElement>('manifest-input'),
  tta: $<HTMLInputElement>('tta'),
  ttaLabel: $('tta-label'),
  segment: $<HTMLButtonElement>('segment'),
  cancel: $<HTMLButtonElement>('cancel'),
  progress: $<HTMLProgressElement>('progress'),
  stage: $('stage'),
  error: $('error'),
  results: $('results'),
  backendUsed: $('backend-used'),
  seconds: $('seconds'),
  volumes: $<HTMLTableElement>('volumes'),
  voxelSize: $('voxel-size'),
  download: $<HTMLButtonElement>('download'),
  canvas: $<HTMLCanvasElement>('viewer'),
  viewerNote: $('viewer-note'),
};

type PageState = 'idle' | 'loading' | 'running' | 'done' | 'error';

const state: {
  backend: ComputeBackend | null;
  image: { file: File; bytes: Uint8Array } | null;
  /** For an ensemble, `manifest` is the page's view (the ensemble's name and labels, the first member's settings) and `members` its folders. */
  bundled: {
    manifestText: string;
    manifest: ModelManifest;
    weightsName: string;
    weights?: Uint8Array;
    members?: { path: string; manifestText: string; weightsName: string; weights?: Uint8Array }[];
  } | null;
  /** A model folder the user picked (it takes precedence over single weights and model.json files). */
  folder: PickedModel | null;
  worker: Worker | null;
  result: { url: string; name: string } | null;
} = { backend: null, image: null, bundled: null, folder: null, worker: null, result: null };

function setState(s: PageState): void {
  document.body.dataset.state = s;
  const running = s === 'running';
  ui.segment.disabled = running;
  ui.cancel.disabled = !running;
}

function showError(message: string): void {
  ui.error.textContent = message;
  ui.error.hidden = false;
  setState('error');
}

function clearError(): void {
  ui.error.hidden = true;
  ui.error.textContent = '';
}

function describe(e: unknown): string {
  if (isInputError(e)) return e.message;
  return `Unexpected error: ${(e as Error)?.message ?? String(e)}`;
}

// ---------------------------------------------------------------------------------------------
// Viewer

let nv: Niivue | null = null;

async function viewer(): Promise<Niivue | null> {
  if (nv) return nv;
  try {
    const v = new Niivue({ backColor: [0, 0, 0, 1], show3Dcrosshair: true, isColorbar: false, loadingText: '', crosshairWidth: 0.5 });
    await v.attachToCanvas(ui.canvas);
    v.setSliceType(v.sliceTypeMultiplanar);
    nv = v;
  } catch (e) {
    ui.viewerNote.textContent = `The viewer needs WebGL2, which is not available here (${(e as Error).message}); segmentation and download still work.`;
  }
  return nv;
}

async function showImage(file: File): Promise<void> {
  const v = await viewer();
  if (!v) return;
  for (const vol of [...v.volumes]) v.removeVolume(vol);
  const img = await NVImage.loadFromFile({ file, name: file.name });
  v.addVolume(img);
  ui.viewerEmpty.hidden = true;
}

async function showLabels(bytes: Uint8Array, result: SegmentResult, manifest: ModelManifest): Promise<void> {
  const v = await viewer();
  if (!v) return;
  while (v.volumes.length > 1) v.removeVolume(v.volumes[v.volumes.length - 1]!);
  const file = new File([bytes as BlobPart], 'labels.nii.gz');
  const img = await NVImage.loadFromFile({ file, name: 'labels.nii.gz', opacity: 0.55 });
  const K = manifestChannels(manifest).outChannels;
  const ids = Array.from({ length: K }, (_, i) => i);
  const rgb = ids.map((i) => (i === 0 ? [0, 0, 0] : LABEL_COLORS[(i - 1) % LABEL_COLORS.length]!));
  img.setColormapLabel({
    R: rgb.map((c) => c[0]!),
    G: rgb.map((c) => c[1]!),
    B: rgb.map((c) => c[2]!),
    A: ids.map((i) => (i === 0 ? 0 : 255)),
    I: ids,
    labels: ids.map((i) => manifest.labels[String(i)] ?? `class ${i}`),
  });
  v.addVolume(img);
  if (result.focusMm) {
    try {
      v.scene.crosshairPos = v.mm2frac(result.focusMm);
    } catch {
      // The crosshair stays where it was; the overlay is still shown.
    }
  }
  v.updateGLVolume();
}

// ---------------------------------------------------------------------------------------------
// Inputs

async function takeImage(file: File | undefined): Promise<void> {
  if (!file) return;
  clearError();
  ui.results.hidden = true;
  state.image = null;
  ui.dropText.textContent = file.name;
  setState('loading');
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const vol = await readImage(bytes, file.name); // a clear message now rather than after the model loads
    state.image = { file, bytes };
    ui.stage.textContent = `${file.name}: ${vol.shape.join(' × ')} voxels${vol.channels > 1 ? `, ${vol.channels} channels` : ''}`;
    setState('idle');
    await showImage(file);
  } catch (e) {
    ui.dropText.textContent = 'Drop a NIfTI image here (.nii, .nii.gz) or click to choose one';
    showError(isInputError(e) ? `${describe(e)}\nPlease choose a NIfTI image (.nii or .nii.gz).` : describe(e));
  }
}

ui.imageInput.addEventListener('change', () => void takeImage(ui.imageInput.files?.[0]));

/** The build bundles one held-out case (sample/files.json); without it the button stays hidden. */
async function loadSampleInfo(): Promise<void> {
  try {
    const res = await fetch('sample/files.json');
    if (!res.ok) return;
    const info = (await res.json()) as { image: string; description?: string };
    ui.sample.hidden = false;
    ui.sample.dataset.image = info.image;
    ui.sampleNote.textContent = info.description ?? '';
  } catch {
    // No sample in this build: the page works the same with the user's own images.
  }
}

/** An image that came another way (sample, drop) replaces the picked one: the picker must not keep naming the old file. */
function forgetPickedFile(): void {
  ui.imageInput.value = '';
}

async function trySample(): Promise<void> {
  const name = ui.sample.dataset.image;
  if (!name) return;
  clearError();
  ui.sample.disabled = true;
  try {
    const res = await fetch(`sample/${name}`);
    if (!res.ok) throw new Error(`sample/${name}: HTTP ${res.status}`);
    const file = new File([await res.arrayBuffer()], name);
    forgetPickedFile();
    await takeImage(file);
  } catch (e) {
    showError(`The sample could not be loaded (${(e as Error).message}).`);
  } finally {
    ui.sample.disabled = false;
  }
}
ui.sample.addEventListener('click', () => void trySample());
for (const ev of ['dragenter', 'dragover'] as const) {
  ui.drop.addEventListener(ev, (e) => {
    e.preventDefault();
    ui.drop.classList.add('over');
  });
}
ui.drop.addEventListener('dragleave', () => ui.drop.classList.remove('over'));
ui.drop.addEventListener('drop', (e) => {
  e.preventDefault();
  ui.drop.classList.remove('over');
  const file = e.dataTransfer?.files[0];
  if (file) forgetPickedFile();
  void takeImage(file);
});
// A file dropped anywhere else must not make the browser navigate away from the app.
window.addEventListener('dragover', (e) => e.preventDefault());
window.addEventListener('drop', (e) => e.preventDefault());

function updateModelChoice(): void {
  ui.customBox.hidden = !ui.custom.checked;
  void updateTta();
}
ui.bundled.addEventListener('change', updateModelChoice);
ui.custom.addEventListener('change', updateModelChoice);
ui.manifestInput.addEventListener('change', () => void updateTta());
ui.folderInput.addEventListener('change', () => void takeFolder());

/** Reads the picked folder's model.json now, so a folder that is not a model folder is named at once. */
async function takeFolder(): Promise<void> {
  clearError();
  state.folder = null;
  const files = [...(ui.folderInput.files ?? [])].map((file) => ({ path: file.webkitRelativePath || file.name, file }));
  if (!files.length) return void updateTta();
  try {
    state.folder = await pickedModel(files);
    ui.folderInput.dataset.model = state.folder.view.name;
    setState('idle');
    await updateTta();
  } catch (e) {
    delete ui.folderInput.dataset.model;
    showError(describe(e));
  }
}
ui.weightsInput.addEventListener('change', () => {
  clearError();
  const f = ui.weightsInput.files?.[0];
  if (!f) return;
  try {
    weightsFormat(f.name);
    setState('idle');
  } catch (e) {
    showError(describe(e));
  }
});

async function currentManifest(): Promise<{ text: string; name: string; manifest: ModelManifest }> {
  if (ui.custom.checked && state.folder) return { text: '', name: `${state.folder.name}/model.json`, manifest: state.folder.view };
  const own = ui.custom.checked ? ui.manifestInput.files?.[0] : undefined;
  if (own) {
    const text = await own.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new Error(`${own.name}: not valid JSON (${(e as Error).message})`);
    }
    if (manifestFormat(json) === ENSEMBLE_FORMAT) throw new ModelFolderError(`${own.name} describes an ensemble: choose its whole folder under “Model folder”`);
    return { text, name: own.name, manifest: validateManifest(json, own.name) };
  }
  if (!state.bundled) throw new Error('the bundled model could not be loaded');
  return { text: state.bundled.manifestText, name: 'model.json (bundled)', manifest: state.bundled.manifest };
}

async function updateTta(): Promise<void> {
  try {
    const { manifest } = await currentManifest();
    const axes = manifest.inference.mirrorAxes ?? [];
    ui.tta.disabled = axes.length === 0;
    // Start from the model's own default (model.json inference.tta), as `uxnet predict` does.
    ui.tta.checked = axes.length > 0 && !!manifest.inference.tta;
    ui.ttaLabel.textContent = axes.length
      ? `Mirroring test-time augmentation (flips along axis ${axes.join(', ')}, as trained; ${2 ** axes.length}× slower)`
      : 'Mirroring test-time augmentation (not offered: the model was not trained with flips)';
  } catch (e) {
    if (ui.custom.checked && ui.manifestInput.files?.[0]) showError(describe(e));
  }
}

async function loadBundled(): Promise<void> {
  try {
    const files = (await (await fetch('model/files.json')).json()) as { manifest: string; weights?: string; members?: { path: string; manifest: string; weights: string }[] };
    const manifestText = await (await fetch(`model/${files.manifest}`)).text();
    let manifest: ModelManifest;
    if (files.members) {
      // An ensemble: the page shows the ensemble's name and labels; the members are fetched (and checked) by the worker's loadModel.
      const ens = validateEnsembleManifest(JSON.parse(manifestText), 'bundled model.json');
      const members = await Promise.all(
        files.members.map(async (m) => ({ path: m.path, manifestText: await (await fetch(`model/${m.manifest}`)).text(), weightsName: m.weights })),
      );
      const views = members.map((m) => validateManifest(JSON.parse(m.manifestText), `bundled ${m.path}/model.json`));
      manifest = ensembleView(ens, views);
      state.bundled = { manifestText, manifest, weightsName: '', members };
    } else {
      manifest = validateManifest(JSON.parse(manifestText), 'bundled model.json');
      state.bundled = { manifestText, manifest, weightsName: files.weights! };
    }
    ui.bundledName.textContent = manifest.name;
    const classes = Object.entries(manifest.labels)
      .filter(([k]) => k !== '0')
      .map(([, n]) => n)
      .join(', ');
    ui.bundledDescription.textContent = `${manifest.description ?? ''} Labels: ${classes}.`;
    await updateTta();
  } catch (e) {
    ui.bundledName.textContent = 'unavailable';
    ui.bundled.disabled = true;
    ui.custom.checked = true;
    updateModelChoice();
    showError(`The bundled model could not be loaded (${(e as Error).message}); load your own weights and model.json.`);
  }
}

async function modelBytes(): Promise<{ key: string; bytes: ModelBytes; manifest: ModelManifest }> {
  const m = await currentManifest();
  if (ui.custom.checked && state.folder) return { key: state.folder.key, manifest: m.manifest, bytes: await state.folder.bytes() };
  if (ui.custom.checked) {
    const w = ui.weightsInput.files?.[0];
    if (!w) throw new Error('Choose a model folder or a weights file (.safetensors or .pth), or select the bundled model.');
    weightsFormat(w.name);
    const key = `custom:${w.name}:${w.size}:${w.lastModified}|${m.name}:${m.text.length}`;
    return { key, manifest: m.manifest, bytes: { manifestText: m.text, manifestName: m.name, weights: new Uint8Array(await w.arrayBuffer()), weightsName: w.name } };
  }
  const b = state.bundled!;
  if (b.members) {
    const members: ModelBytes[] = [];
    for (const mem of b.members) {
      mem.weights ??= new Uint8Array(await (await fetch(`model/${mem.weightsName}`)).arrayBuffer());
      members.push({ manifestText: mem.manifestText, manifestName: `${mem.path}/model.json (bundled)`, weights: mem.weights, weightsName: mem.weightsName });
    }
    return { key: 'bundled', manifest: m.manifest, bytes: { manifestText: b.manifestText, manifestName: m.name, weights: new Uint8Array(0), weightsName: '', members } };
  }
  b.weights ??= new Uint8Array(await (await fetch(`model/${b.weightsName}`)).arrayBuffer());
  return { key: 'bundled', manifest: m.manifest, bytes: { manifestText: b.manifestText, manifestName: m.name, weights: b.weights, weightsName: b.weightsName } };
}

// ---------------------------------------------------------------------------------------------
// Backend detection

async function detectWebGPU(): Promise<string | null> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) return 'this browser does not provide WebGPU (navigator.gpu is missing)';
  try {
    const adapter = await gpu.requestAdapter();
    if (!adapter) return 'the browser offers WebGPU but found no usable GPU adapter';
  } catch (e) {
    return `requesting a WebGPU adapter failed (${(e as Error).message})`;
  }
  return null;
}

async function initBackend(): Promise<void> {
  const why = await detectWebGPU();
  if (!why) {
    state.backend = 'webgpu';
    ui.gpuStatus.dataset.state = 'webgpu';
    ui.gpuStatus.textContent = 'WebGPU is available: segmentation runs on your GPU.';
    return;
  }
  ui.gpuStatus.dataset.state = 'none';
  ui.gpuStatus.textContent = `WebGPU is not available: ${why}. Segmentation can still run on the CPU in a background thread; it is much slower (minutes per image).`;
  const b = document.createElement('button');
  b.id = 'use-cpu';
  b.type = 'button';
  b.textContent = 'Use the CPU';
  b.addEventListener('click', () => {
    state.backend = 'reference';
    b.disabled = true;
    b.textContent = 'CPU selected';
    clearError();
    if (document.body.dataset.state === 'error') setState('idle');
  });
  ui.gpuStatus.append(b);
}

// ---------------------------------------------------------------------------------------------
// Segmentation

function newWorker(): Worker {
  return new Worker(new URL('../../src/browser/segment-worker.ts', import.meta.url), { type: 'module', name: 'uxnet-segment' });
}

function stopWorker(): void {
  state.worker?.terminate();
  state.worker = null;
}

function caseName(name: string): string {
  return name.replace(/\.nii(\.gz)?$/i, '');
}

async function segment(): Promise<void> {
  clearError();
  if (!state.image) return showError('Choose a NIfTI image first (.nii or .nii.gz).');
  if (!state.backend) return showError('WebGPU is not available here: click “Use the CPU” above to segment on the CPU.');
  ui.results.hidden = true;
  setState('running');
  ui.progress.removeAttribute('value');
  ui.stage.textContent = 'Preparing the model…';
  let model;
  try {
    model = await modelBytes();
  } catch (e) {
    return showError(describe(e));
  }
  const image = state.image;
  const t0 = performance.now();
  state.worker ??= newWorker();
  const worker = state.worker;
  const req: SegmentRequest = {
    type: 'segment',
    backend: state.backend,
    modelKey: model.key,
    model: model.bytes,
    image: image.bytes.slice(),
    imageName: image.file.name,
    tta: ui.tta.checked && !ui.tta.disabled,
  };
  worker.onmessage = (ev: MessageEvent<WorkerMessage>) => {
    if (worker !== state.worker) return; // cancelled
    const m = ev.data;
    if (m.type === 'stage') ui.stage.textContent = `${m.stage[0]!.toUpperCase()}${m.stage.slice(1)}…`;
    else if (m.type === 'progress') {
      ui.progress.max = m.total;
      ui.progress.value = m.done;
      ui.stage.textContent = `Segmenting: window ${m.done} of ${m.total}`;
    } else if (m.type === 'error') {
      if (!m.input) stopWorker(); // a fresh worker for the next try
      showError(m.input ? m.message : `Segmentation failed: ${m.message}`);
    } else if (m.type === 'result') {
      void finish(m.result, m.backend, m.device, model.manifest, image.file.name, (performance.now() - t0) / 1000);
    }
  };
  worker.onerror = (ev) => {
    if (worker !== state.worker) return;
    stopWorker();
    showError(`The segmentation worker failed: ${ev.message || 'unknown error'}`);
  };
  worker.postMessage(req, [req.image.buffer as ArrayBuffer]);
}

async function finish(result: SegmentResult, backend: ComputeBackend, device: string, manifest: ModelManifest, inputName: string, seconds: number): Promise<void> {
  ui.progress.max = 1;
  ui.progress.value = 1;
  ui.stage.textContent = `Done: ${result.shape.join(' × ')} labels on the input grid (network saw ${result.networkShape.join(' × ')}).${result.warnings.map((w) => ` Warning: ${w}.`).join('')}`;
  ui.backendUsed.textContent = backend === 'webgpu' ? `WebGPU (${device})` : device;
  ui.backendUsed.dataset.backend = backend;
  ui.seconds.textContent = seconds.toFixed(1);
  const body = ui.volumes.tBodies[0]!;
  body.replaceChildren(
    ...result.classes.map((c) => {
      const tr = document.createElement('tr');
      tr.dataset.label = String(c.id);
      tr.dataset.voxels = String(c.voxels);
      tr.dataset.ml = String(c.ml);
      const name = document.createElement('td');
      const sw = document.createElement('span');
      sw.className = 'swatch';
      sw.style.background = `rgb(${c.rgb.join(',')})`;
      name.append(sw, `${c.id} ${c.name}`);
      const vox = document.createElement('td');
      vox.textContent = c.voxels.toLocaleString('en-US');
      const ml = document.createElement('td');
      ml.textContent = c.ml.toFixed(3);
      tr.append(name, vox, ml);
      return tr;
    }),
  );
  ui.voxelSize.textContent = `Volume = voxel count × ${result.voxelMm3.toPrecision(4)} mm³ per voxel (from the image header).`;
  if (state.result) URL.revokeObjectURL(state.result.url);
  state.result = { url: URL.createObjectURL(new Blob([result.labelsNifti as BlobPart], { type: 'application/gzip' })), name: `${caseName(inputName)}_labels.nii.gz` };
  ui.results.hidden = false;
  setState('done');
  try {
    await showLabels(result.labelsNifti, result, manifest);
  } catch (e) {
    ui.viewerNote.textContent = `The overlay could not be shown: ${(e as Error).message}`;
  }
  document.body.dataset.overlay = 'shown';
}

ui.segment.addEventListener('click', () => void segment());
ui.cancel.addEventListener('click', () => {
  // Terminating the worker stops it mid-computation; the next run starts a fresh one.
  stopWorker();
  ui.progress.max = 1;
  ui.progress.value = 0;
  ui.stage.textContent = 'Cancelled.';
  setState('idle');
});
ui.download.addEventListener('click', () => {
  if (!state.result) return;
  const a = document.createElement('a');
  a.href = state.result.url;
  a.download = state.result.name;
  a.click();
});

setState('loading');
void Promise.all([initBackend(), loadBundled(), loadSampleInfo()]).then(() => {
  if (document.body.dataset.state === 'loading') setState('idle');
  document.body.dataset.ready = 'true';
});
