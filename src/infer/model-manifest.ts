import { normalizeUXNetConfig, type UXNetConfig } from '../models/config.js';
import { UXNet } from '../models/uxnet.js';
import { validateSteps, type StepSpec } from '../data/pipeline.js';
import type { RawTensorMap } from '../io/safetensors-format.js';
import type { BlendMode } from './sliding-window-geometry.js';
import { InputError } from '../engine/errors.js';

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
  network: UXNetConfig;
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

export class ModelFolderError extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'ModelFolderError';
  }
}

export function validateManifest(m: unknown, where: string): ModelManifest {
  const o = m as Partial<ModelManifest>;
  if (!o || typeof o !== 'object') throw new ModelFolderError(`${where}: not a JSON object`);
  if (o.format !== MODEL_FORMAT) throw new ModelFolderError(`${where}: format is ${JSON.stringify(o.format)}, expected "${MODEL_FORMAT}"`);
  let network: UXNetConfig;
  try {
    network = normalizeUXNetConfig(o.network);
  } catch (e) {
    throw new ModelFolderError(`${where}: network: ${(e as Error).message}`);
  }
  const inf = o.inference;
  const roi = inf?.roiSize;
  if (!inf || !Array.isArray(roi) || roi.length !== 3 || !roi.every((d) => Number.isInteger(d) && d > 0 && d % 16 === 0)) {
    throw new ModelFolderError(`${where}: inference.roiSize must be three positive multiples of 16`);
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
  if (Object.keys(labels).length !== network.outChans) {
    throw new ModelFolderError(`${where}: labels names ${Object.keys(labels).length} classes but the network has ${network.outChans} outputs`);
  }
  return { ...(o as ModelManifest), network, preprocessing: { ...o.preprocessing, steps }, labels };
}

export interface LoadedModel {
  manifest: ModelManifest;
  model: UXNet;
  /** Where it came from: the folder, or a description (browser: the file names). */
  dir: string;
}

/**
 * Builds the network of a validated manifest on the current backend and loads the weights strictly.
 * `names` say where manifest and weights came from, for the error message. This file has no file
 * system access (browser-safe); ./model-folder.ts reads folders.
 */
export async function buildModel(manifest: ModelManifest, weights: RawTensorMap, names: { manifest: string; weights: string }): Promise<UXNet> {
  const model = new UXNet(manifest.network);
  try {
    await model.loadStateDictAsync(weights, { strict: true });
  } catch (e) {
    model.dispose();
    throw new ModelFolderError(`${names.weights} does not fit ${names.manifest}: ${(e as Error).message}`);
  }
  model.eval();
  return model;
}
