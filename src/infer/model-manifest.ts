import { CHANNEL_KEYS, createNetwork, resolveNetwork, type NetworkSpec, type SegmentationNetwork } from '../models/registry.js';
import { validateSteps, type StepSpec } from '../data/pipeline.js';
import type { RawTensorMap } from '../io/safetensors-format.js';
import type { BlendMode } from './sliding-window-geometry.js';

/**
 * A trained model is a folder of data, nothing implicit (nnU-Net style):
 *   model.json          network config, preprocessing chain, ROI, label names, inference defaults
 *   weights.safetensors the state dict under PyTorch's key names (F32, or F16 to halve the size)
 */
export const MODEL_FORMAT = 'uxnet3d-model/1';

export interface ModelManifest {
  format: typeof MODEL_FORMAT;
  name: string;
  description?: string;
  /**
   * The architecture: "uxnet" | "swin_unetr" | "unetr" with its constructor arguments in `networkArgs`,
   * or (older folders, still written for UX-Net) an object of UX-Net options. After validateManifest
   * a legacy object holds the normalised UX-Net config.
   */
  network: string | Record<string, unknown>;
  /** Constructor arguments (official snake_case or camelCase) when `network` is a name. */
  networkArgs?: Record<string, unknown>;
  /** Filled in by validateManifest: the resolved network (not part of the file). */
  spec?: NetworkSpec;
  preprocessing: {
    /** The deterministic chain applied to every input (the plan's validation chain). */
    steps: StepSpec[];
    /** Spacing used by `--fast` (coarser, e.g. 2x the plan's); absent = not offered. */
    fastPixdim?: [number, number, number];
  };
  inference: {
    roiSize: [number, number, number];
    overlap: number;
    mode: BlendMode;
    swBatchSize: number;
    /**
     * Axes the model was trained to be mirror-invariant along (its flip augmentation); `--tta` only
     * averages mirrorings along these. Mirroring along an axis never flipped in training gives
     * out-of-distribution inputs (and for left/right-specific labels, wrong ones). Default: none.
     */
    mirrorAxes?: number[];
  };
  /** Class index -> name, background included. */
  labels: Record<string, string>;
  /** Free-form provenance: training config, steps, validation metrics. */
  training?: Record<string, unknown>;
}

export class ModelFolderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelFolderError';
  }
}

export function validateManifest(m: unknown, where: string): ModelManifest {
  const o = m as Partial<ModelManifest>;
  if (!o || typeof o !== 'object') throw new ModelFolderError(`${where}: not a JSON object`);
  if (o.format !== MODEL_FORMAT) throw new ModelFolderError(`${where}: format is ${JSON.stringify(o.format)}, expected "${MODEL_FORMAT}"`);
  let spec: NetworkSpec;
  try {
    spec = resolveNetwork(o.network, o.networkArgs);
  } catch (e) {
    throw new ModelFolderError(`${where}: network: ${(e as Error).message}`);
  }
  const inf = o.inference;
  const roi = inf?.roiSize;
  if (!inf || !Array.isArray(roi) || roi.length !== 3 || !roi.every((d) => Number.isInteger(d) && d > 0)) {
    throw new ModelFolderError(`${where}: inference.roiSize must be three positive integers`);
  }
  const { inChannels, outChannels } = specChannels(spec);
  try {
    createNetwork(spec, { meta: true }).checkInputShape([1, inChannels, ...roi]);
  } catch (e) {
    throw new ModelFolderError(`${where}: inference.roiSize ${roi.join('x')} does not fit the network: ${(e as Error).message}`);
  }
  if (!(inf.overlap >= 0 && inf.overlap < 1)) throw new ModelFolderError(`${where}: inference.overlap must be in [0, 1)`);
  if (inf.mode !== 'gaussian' && inf.mode !== 'constant') throw new ModelFolderError(`${where}: inference.mode must be gaussian or constant`);
  if (!(Number.isInteger(inf.swBatchSize) && inf.swBatchSize >= 1)) throw new ModelFolderError(`${where}: inference.swBatchSize must be a positive integer`);
  if (inf.mirrorAxes !== undefined && !(Array.isArray(inf.mirrorAxes) && inf.mirrorAxes.every((a) => a === 0 || a === 1 || a === 2))) {
    throw new ModelFolderError(`${where}: inference.mirrorAxes must list spatial axes 0, 1 or 2`);
  }
  let steps: StepSpec[];
  try {
    steps = validateSteps(o.preprocessing?.steps ?? [], `${where}: preprocessing`);
  } catch (e) {
    throw new ModelFolderError((e as Error).message);
  }
  const labels = o.labels ?? {};
  if (Object.keys(labels).length !== outChannels) {
    throw new ModelFolderError(`${where}: labels names ${Object.keys(labels).length} classes but the network has ${outChannels} outputs`);
  }
  const network = spec.network === 'uxnet' && typeof o.network !== 'string' ? spec.args : o.network!;
  return { ...(o as ModelManifest), network, spec, preprocessing: { ...o.preprocessing, steps }, labels };
}

/** Input channels and classes of a network spec, whichever its spelling. */
export function specChannels(spec: NetworkSpec): { inChannels: number; outChannels: number } {
  const a = spec.args;
  const [inKey, , outKey] = CHANNEL_KEYS[spec.network];
  return { inChannels: a[inKey] as number, outChannels: a[outKey] as number };
}

/** Input channels and classes of a validated manifest. */
export function manifestChannels(m: ModelManifest): { inChannels: number; outChannels: number } {
  return specChannels(m.spec ?? resolveNetwork(m.network, m.networkArgs));
}

export interface LoadedModel {
  manifest: ModelManifest;
  model: SegmentationNetwork;
  /** Where it came from: the folder, or a description (browser: the file names). */
  dir: string;
}

/**
 * Builds the network of a validated manifest on the current backend and loads the weights strictly.
 * `names` say where manifest and weights came from, for the error message. This file has no file
 * system access (browser-safe); ./model-folder.ts reads folders.
 */
export async function buildModel(manifest: ModelManifest, weights: RawTensorMap, names: { manifest: string; weights: string }): Promise<SegmentationNetwork> {
  const model = createNetwork(manifest.spec ?? resolveNetwork(manifest.network, manifest.networkArgs));
  try {
    await model.loadStateDictAsync(weights, { strict: true });
  } catch (e) {
    model.dispose();
    throw new ModelFolderError(`${names.weights} does not fit ${names.manifest}: ${(e as Error).message}`);
  }
  model.eval();
  return model;
}
