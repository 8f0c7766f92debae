/**
 * The library's entry point for the main job: load a model folder once, segment NIfTI images (a
 * path or the file's bytes) with the same options as `uxnet predict`, get the label map as NIfTI
 * bytes plus the volume and its geometry. `uxnet predict` and `uxnet demo` call exactly this, so a
 * script and the CLI give the same labels.
 */
import { gzip } from 'node:zlib';
import { promisify } from 'node:util';
import { InputError } from '../engine/errors.js';
import { loadImage } from '../data/load.js';
import { niftiToVolume, volumeToNifti } from '../data/nifti-volume.js';
import type { Volume, VoxelData } from '../data/volume.js';
import { encodeNifti, parseNifti } from '../io/nifti/index.js';
import type { LoadedModel } from './model-folder.js';
import type { PredictOptions } from './predict.js';
import { manifestChannels } from './model-manifest.js';
import { disposeSegmenter, isEnsemble, loadSegmenter, segmentVolume, segmenterParameters, type AnyManifest, type Segmenter } from './ensemble.js';
import { checkImage } from './image-checks.js';

const gzipAsync = promisify(gzip);

export interface SegmentOptions {
  /** Mirroring test-time augmentation along the axes the model was trained to flip. */
  tta?: boolean;
  /** Sliding-window blending (default: the model's). */
  mode?: 'gaussian' | 'constant';
  /** Sliding-window overlap in [0, 1) (default: the model's). */
  overlap?: number;
  /** Windows per network call (default: the model's). */
  swBatchSize?: number;
  /** The model's coarser `fastPixdim` spacing: quicker, rougher. */
  fast?: boolean;
  /** Also return class probabilities on the input grid. */
  probabilities?: boolean;
  /** gzip the NIfTI bytes (default true: what a .nii.gz file holds). */
  gzip?: boolean;
  /** Name of the input in messages when bytes are given (default 'image'). */
  name?: string;
  onProgress?: (done: number, total: number) => void;
  /** Called with each warning as it arises (they are also returned in `warnings`). */
  onWarning?: (message: string) => void;
}

export interface SegmentResult {
  /** The label map as a NIfTI file's bytes, on the input's grid with its header geometry. */
  labelsNifti: Uint8Array;
  /** The same labels as a volume: data in (x, y, z) C order, shape, affine. */
  labels: Volume<VoxelData>;
  /** With `probabilities`: [classes, x, y, z] float32 on the input grid, and as NIfTI bytes (classes as the 4th axis). */
  probabilities?: Volume<VoxelData>;
  probabilitiesNifti?: Uint8Array;
  /** The input as it was segmented (non-finite voxels replaced), e.g. for overlays. */
  image: Volume<Float32Array>;
  /** Shape the network saw after the model's preprocessing. */
  networkShape: [number, number, number];
  warnings: string[];
}

/** A loaded model folder: the network on the current backend plus its manifest. */
/** A model folder or an ensemble folder (members' softmax probabilities averaged), ready to segment. */
export class SegmentationModel {
  constructor(readonly loaded: Segmenter) {}

  get manifest(): AnyManifest {
    return this.loaded.manifest;
  }

  /** The single models: the model itself, or an ensemble's members. */
  get members(): LoadedModel[] {
    return isEnsemble(this.loaded) ? this.loaded.members : [this.loaded];
  }

  get dir(): string {
    return this.loaded.dir;
  }

  /** Class index -> name, background included (from model.json). */
  get labelNames(): Record<string, string> {
    return this.loaded.manifest.labels;
  }

  numParameters(): number {
    return segmenterParameters(this.loaded);
  }

  /**
   * Throws an InputError for options this model cannot honour (e.g. `fast` without a fast spacing,
   * `tta` for a model never trained with flips, an overlap outside [0, 1)), so a caller can refuse
   * before reading or writing anything.
   */
  checkOptions(opts: SegmentOptions): void {
    for (const member of this.members) checkModelOptions(member, opts);
  }

  /** Segments one image: a NIfTI path, or a NIfTI file's bytes (gzip or not). */
  async segment(input: string | Uint8Array, opts: SegmentOptions = {}): Promise<SegmentResult> {
    this.checkOptions(opts);
    const name = typeof input === 'string' ? input : (opts.name ?? 'image');
    let image: Volume<Float32Array>;
    if (typeof input === 'string') image = await loadImage(input);
    else {
      if (input.byteLength === 0) throw new InputError(`${name}: the file is empty`);
      image = niftiToVolume(parseNifti(input, name), 'image') as Volume<Float32Array>;
    }
    const m = this.loaded.manifest;
    const inChannels = manifestChannels(this.members[0]!.manifest).inChannels;
    if (image.channels !== inChannels) throw new InputError(`${name}: the image has ${image.channels} channel(s) but model '${m.name}' expects ${inChannels}`);
    const checked = checkImage(image, name);
    for (const w of checked.warnings) opts.onWarning?.(w);
    const popts: PredictOptions = {
      overlap: opts.overlap,
      mode: opts.mode,
      swBatchSize: opts.swBatchSize,
      tta: opts.tta,
      fast: opts.fast,
      probabilities: opts.probabilities,
      onProgress: opts.onProgress,
    };
    const pred = await segmentVolume(this.loaded, checked.image, popts);
    const compress = opts.gzip ?? true;
    const encode = async (v: Volume<VoxelData>, label: boolean, description: string) => {
      const raw = encodeNifti(volumeToNifti(v, { label, description }));
      return compress ? new Uint8Array(await gzipAsync(raw, { level: 6 })) : raw;
    };
    const labelsNifti = await encode(pred.labels, true, `uxnet3d ${m.name}`);
    const probabilitiesNifti = pred.probabilities ? await encode(pred.probabilities, false, `uxnet3d ${m.name} probabilities`) : undefined;
    return {
      labelsNifti,
      labels: pred.labels,
      probabilities: pred.probabilities,
      probabilitiesNifti,
      image: checked.image,
      networkShape: pred.networkShape,
      warnings: checked.warnings,
    };
  }

  /** Frees the network's tensors (GPU memory on webgpu). */
  dispose(): void {
    disposeSegmenter(this.loaded);
  }
}

/**
 * Reads a model folder (model.json + weights.safetensors), builds the network on the current
 * backend and loads the weights strictly. Errors are InputErrors naming the file.
 */

/** The checks of SegmentationModel.checkOptions for one model folder. */
function checkModelOptions(loaded: LoadedModel, opts: SegmentOptions): void {
  const m = loaded.manifest;
  if (opts.fast && !m.preprocessing.fastPixdim) {
    throw new InputError(
      `--fast: model '${m.name}' offers no faster spacing (model.json has no preprocessing.fastPixdim${m.preprocessing.steps.some((s) => s.op === 'spacing') ? '' : ', and it does not resample at all'}); run without --fast`,
    );
  }
  if (opts.tta && !(m.inference.mirrorAxes ?? []).length) {
    throw new InputError(`--tta: model '${m.name}' was not trained with flips (inference.mirrorAxes is empty), so mirroring would not help it`);
  }
  if (opts.overlap !== undefined && !(opts.overlap >= 0 && opts.overlap < 1)) throw new InputError(`overlap must be in [0, 1), got ${opts.overlap}`);
  if (opts.mode !== undefined && opts.mode !== 'gaussian' && opts.mode !== 'constant') throw new InputError(`mode must be 'gaussian' or 'constant', got '${String(opts.mode)}'`);
  if (opts.swBatchSize !== undefined && !(Number.isInteger(opts.swBatchSize) && opts.swBatchSize >= 1))
    throw new InputError(`swBatchSize must be a positive integer, got ${opts.swBatchSize}`);
}

export async function loadModel(dir: string): Promise<SegmentationModel> {
  return new SegmentationModel(await loadSegmenter(dir));
}
