import { createNetwork, resolveNetwork, type SegmentationNetwork } from '../models/registry.js';
import type { RawTensorMap } from '../io/safetensors-format.js';
import { parseWithSchema } from '../io/schema.js';
import { MODEL_FORMAT, MODEL_VERSION, ModelManifestSchema, specChannels, type ModelManifest } from './model-manifest-schema.js';

export { MODEL_FORMAT, MODEL_VERSION, ModelManifestSchema, specChannels, type ModelManifest };
import { InputError } from '../engine/errors.js';

/**
 * A trained model is a folder of data, nothing implicit (nnU-Net style):
 *   model.json          network config, preprocessing chain, ROI, label names, inference defaults
 *   weights.safetensors the state dict under PyTorch's key names (F32, or F16 to halve the size); a tensor outside F16's range stays F32
 */
// The format itself is ./model-manifest-schema.ts.

export class ModelFolderError extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'ModelFolderError';
  }
}

/** Validates a parsed model.json; errors name `where`, the field path and what was expected. */
export function validateManifest(m: unknown, where: string): ModelManifest {
  return parseWithSchema(ModelManifestSchema, m, where, (msg) => new ModelFolderError(msg));
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
