import { InputError } from '../engine/errors.js';
import { runSteps, type StepSpec } from '../data/pipeline.js';
import { invert } from '../data/invert.js';
import type { Volume, VoxelData } from '../data/volume.js';
import { manifestChannels, type LoadedModel } from './model-manifest.js';
import { modelPredictor, slidingWindowInference } from './sliding-window.js';
import type { BlendMode } from './sliding-window-geometry.js';

export interface PredictOptions {
  overlap?: number;
  mode?: BlendMode;
  swBatchSize?: number;
  /** Mirroring test-time augmentation: average over the flips of the axes the model was trained with (model.json inference.mirrorAxes). */
  tta?: boolean;
  /** Resample to the model's coarser `fastPixdim` (quicker, less exact). */
  fast?: boolean;
  /** Also return class probabilities on the original grid (memory: classes × voxels float32). */
  probabilities?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface Prediction {
  /** Class map on the input's own grid, with its affine and header. */
  labels: Volume<VoxelData>;
  probabilities?: Volume<VoxelData>;
  /** Shape the network saw after preprocessing. */
  networkShape: [number, number, number];
}

/** Flips a channel-first [C, X, Y, Z] array along the given spatial axes (0..2), into `out`. */
export function flipAxes(src: Float32Array, channels: number, shape: readonly number[], axes: readonly number[], out: Float32Array = new Float32Array(src.length)): Float32Array {
  const [X, Y, Z] = shape as [number, number, number];
  const fx = axes.includes(0),
    fy = axes.includes(1),
    fz = axes.includes(2);
  for (let c = 0; c < channels; c++) {
    const base = c * X * Y * Z;
    for (let x = 0; x < X; x++) {
      const sx = fx ? X - 1 - x : x;
      for (let y = 0; y < Y; y++) {
        const sy = fy ? Y - 1 - y : y;
        const o = base + (x * Y + y) * Z;
        const s = base + (sx * Y + sy) * Z;
        if (fz) for (let z = 0; z < Z; z++) out[o + z] = src[s + Z - 1 - z]!;
        else out.set(src.subarray(s, s + Z), o);
      }
    }
  }
  return out;
}

/** In-place softmax over the channel axis of a [C, V] array (max-subtracted, float64 sums). */
export function softmaxChannels(a: Float32Array, channels: number): void {
  const v = a.length / channels;
  for (let i = 0; i < v; i++) {
    let m = -Infinity;
    for (let c = 0; c < channels; c++) m = Math.max(m, a[c * v + i]!);
    let s = 0;
    for (let c = 0; c < channels; c++) s += Math.exp(a[c * v + i]! - m);
    for (let c = 0; c < channels; c++) a[c * v + i] = Math.exp(a[c * v + i]! - m) / s;
  }
}

/** Per-voxel argmax over channels; ties go to the lower class, as torch.argmax does. */
export function argmaxChannels(a: Float32Array, channels: number): Uint8Array | Uint16Array {
  const v = a.length / channels;
  const out = channels <= 256 ? new Uint8Array(v) : new Uint16Array(v);
  for (let i = 0; i < v; i++) {
    let best = 0;
    let bv = a[i]!;
    for (let c = 1; c < channels; c++)
      if (a[c * v + i]! > bv) {
        bv = a[c * v + i]!;
        best = c;
      }
    out[i] = best;
  }
  return out;
}

/** Every subset of `axes` (the identity first): the mirrorings test-time augmentation averages. */
export function mirrorSets(axes: readonly number[]): number[][] {
  const sets: number[][] = [[]];
  for (const a of [...new Set(axes)].sort()) for (const s of [...sets]) sets.push([...s, a]);
  return sets;
}

export function preprocessingSteps(loaded: LoadedModel, fast: boolean): StepSpec[] {
  const steps = loaded.manifest.preprocessing.steps;
  if (!fast) return steps;
  const fastPixdim = loaded.manifest.preprocessing.fastPixdim;
  if (!fastPixdim) throw new InputError(`model '${loaded.manifest.name}' offers no --fast spacing (preprocessing.fastPixdim is not set)`);
  return steps.map((s) => (s.op === 'spacing' ? { ...s, pixdim: fastPixdim } : s));
}

/**
 * Segments one image: the model folder's preprocessing, sliding-window inference (logits blended as
 * MONAI does), softmax (averaged over the trained mirrorings with TTA), argmax, and the recorded steps undone so the
 * labels lie on the input's own grid.
 */
export async function predictVolume(loaded: LoadedModel, image: Volume<Float32Array>, opts: PredictOptions = {}): Promise<Prediction> {
  const { manifest } = loaded;
  if (image.channels !== manifestChannels(manifest).inChannels) {
    throw new InputError(`the image has ${image.channels} channel(s) but model '${manifest.name}' expects ${manifestChannels(manifest).inChannels}`);
  }
  const { sample } = runSteps({ image }, preprocessingSteps(loaded, !!opts.fast));
  const net = sample.image;
  const K = manifestChannels(manifest).outChannels;
  const vox = net.shape[0] * net.shape[1] * net.shape[2];
  const probs = await modelProbabilities(loaded, net, opts, opts.onProgress);
  if (probs.length !== K * vox) throw new Error(`internal: ${probs.length} probabilities for ${K} classes x ${vox} voxels`);
  const labels = invert({ data: argmaxChannels(probs, K), channels: 1 }, net, 'nearest');
  const probabilities = opts.probabilities ? invert({ data: probs, channels: K }, net, 'bilinear') : undefined;
  return { labels, probabilities, networkShape: net.shape };
}

/**
 * One model's softmax probabilities [K, D, H, W] on its preprocessed grid `net`: sliding window with
 * the model's settings (or the options' overrides), averaged over the trained mirrorings with TTA.
 * predictVolume and every ensemble member go through here, so a single-member ensemble predicts what
 * the member alone does.
 */
export async function modelProbabilities(
  loaded: LoadedModel,
  net: Volume<Float32Array>,
  opts: PredictOptions,
  progress?: (done: number, total: number) => void,
): Promise<Float32Array> {
  const { manifest, model } = loaded;
  const C = net.channels;
  const K = manifestChannels(manifest).outChannels;
  const predictor = modelPredictor(model);
  const mirrorAxes = manifest.inference.mirrorAxes ?? [];
  // Unset: the model's own default (model.json inference.tta).
  const tta = opts.tta ?? manifest.inference.tta ?? false;
  if (tta && mirrorAxes.length === 0)
    throw new InputError(`model '${manifest.name}' was not trained with flips (inference.mirrorAxes is empty), so mirroring test-time augmentation would not help it`);
  const mirrors = tta ? mirrorSets(mirrorAxes) : [[]];
  // Without TTA the blended logits buffer becomes the probabilities in place: the accumulator is
  // then the only full-size buffer. With TTA one more (the running sum) is needed.
  let probs: Float32Array | null = null;
  let flipped: Float32Array | undefined;
  let tmp: Float32Array | undefined;
  for (const [m, axes] of mirrors.entries()) {
    const input = axes.length ? (flipped = flipAxes(net.data, C, net.shape, axes, flipped)) : net.data;
    const { data } = await slidingWindowInference({ data: input, shape: [1, C, ...net.shape] }, manifest.inference.roiSize, predictor, {
      overlap: opts.overlap ?? manifest.inference.overlap,
      mode: opts.mode ?? manifest.inference.mode,
      swBatchSize: opts.swBatchSize ?? manifest.inference.swBatchSize,
      onProgress: progress ? (d, t) => progress(m * t + d, mirrors.length * t) : undefined,
    });
    softmaxChannels(data, K);
    const back = axes.length ? (tmp = flipAxes(data, K, net.shape, axes, tmp)) : data;
    if (!probs) probs = back === data ? data : back.slice();
    else for (let i = 0; i < probs.length; i++) probs[i] = probs[i]! + back[i]!;
  }
  if (mirrors.length > 1) for (let i = 0; i < probs!.length; i++) probs![i] = probs![i]! / mirrors.length;
  return probs!;
}
