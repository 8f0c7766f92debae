/**
 * The browser app's compute thread: reads the image, builds the model (cached while the model stays
 * the same) and segments on the backend the page asks for. Running here keeps the page responsive
 * (the reference backend computes for minutes), and cancelling is terminating the worker.
 */
import { disposeSegmenter, type Segmenter } from '../infer/ensemble-manifest.js';
import type { SegmentRequest, WorkerMessage } from './protocol.js';
import { isInputError, loadModel, readImage, segment, useBackend, type ComputeBackend } from './segment.js';

interface WorkerScope {
  onmessage: ((ev: MessageEvent<SegmentRequest>) => void) | null;
  postMessage(msg: WorkerMessage, transfer?: Transferable[]): void;
}
const scope = globalThis as unknown as WorkerScope;

let cached: { key: string; backend: ComputeBackend; loaded: Segmenter } | null = null;

function post(msg: WorkerMessage, transfer: Transferable[] = []): void {
  scope.postMessage(msg, transfer);
}

async function run(req: SegmentRequest): Promise<void> {
  post({ type: 'stage', stage: req.backend === 'webgpu' ? 'opening WebGPU' : 'starting the CPU backend' });
  const device = await useBackend(req.backend);
  post({ type: 'ready', backend: req.backend, device });
  post({ type: 'stage', stage: `reading ${req.imageName}` });
  const image = await readImage(req.image, req.imageName);
  if (!cached || cached.key !== req.modelKey || cached.backend !== req.backend) {
    if (cached) disposeSegmenter(cached.loaded);
    cached = null;
    post({ type: 'stage', stage: 'loading the model' });
    cached = { key: req.modelKey, backend: req.backend, loaded: await loadModel(req.model) };
  }
  post({ type: 'stage', stage: 'segmenting' });
  const result = await segment(cached.loaded, image, { tta: req.tta, name: req.imageName, onProgress: (done, total) => post({ type: 'progress', done, total }) });
  post({ type: 'result', result, backend: req.backend, device }, [result.labelsNifti.buffer as ArrayBuffer]);
}

scope.onmessage = (ev) => {
  run(ev.data).catch((e: unknown) => {
    const input = isInputError(e);
    post({ type: 'error', message: input ? (e as Error).message : `${(e as Error)?.name ?? 'Error'}: ${(e as Error)?.message ?? String(e)}`, input });
  });
};
