import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readWeightsFile } from '../io/weights.js';
import { buildModel, ModelFolderError, validateManifest, type LoadedModel } from './model-manifest.js';

// The manifest format and model building live in ./model-manifest.ts (browser-safe); this reads folders.
export * from './model-manifest.js';

/** Reads model.json and the weights, builds the network on the current backend and loads it strictly. */
export async function loadModelFolder(dir: string): Promise<LoadedModel> {
  const manifestPath = join(dir, 'model.json');
  if (!existsSync(manifestPath)) throw new ModelFolderError(`${dir} is not a model folder: model.json is missing`);
  let json: unknown;
  try {
    json = JSON.parse(await readFile(manifestPath, 'utf8'));
  } catch (e) {
    throw new ModelFolderError(`${manifestPath}: ${(e as Error).message}`);
  }
  const manifest = validateManifest(json, manifestPath);
  const weightsPath = ['weights.safetensors', 'weights.pth'].map((f) => join(dir, f)).find((p) => existsSync(p));
  if (!weightsPath) throw new ModelFolderError(`${dir}: weights.safetensors is missing`);
  const weights = await readWeightsFile(weightsPath);
  const model = await buildModel(manifest, weights, { manifest: manifestPath, weights: weightsPath });
  return { manifest, model, dir };
}
