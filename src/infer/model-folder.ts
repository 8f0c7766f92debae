import { readFile } from 'node:fs/promises';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readWeightsFile } from '../io/weights.js';
import { buildModel, ModelFolderError, validateManifest, type LoadedModel, type ModelManifest } from './model-manifest.js';

// The manifest format and model building live in ./model-manifest.ts (browser-safe); this reads folders.
export * from './model-manifest.js';

/** The validated model.json of a model folder (its weights need not be there: e.g. for the architecture alone). */
export async function readModelManifest(dir: string): Promise<{ manifest: ModelManifest; manifestPath: string }> {
  const manifestPath = join(dir, 'model.json');
  if (!existsSync(dir)) throw new ModelFolderError(`model folder '${dir}' does not exist`);
  if (!statSync(dir).isDirectory()) throw new ModelFolderError(`model '${dir}' is a file; give the folder that holds model.json and weights.safetensors`);
  if (!existsSync(manifestPath)) throw new ModelFolderError(`${dir} is not a model folder: model.json is missing`);
  let text: string;
  try {
    text = await readFile(manifestPath, 'utf8');
  } catch (e) {
    throw new ModelFolderError(`${manifestPath}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ModelFolderError(`${manifestPath}: not valid JSON (${(e as Error).message})`);
  }
  return { manifest: validateManifest(json, manifestPath), manifestPath };
}

/** The weights file of a model folder (weights.safetensors, else weights.pth), or undefined when it has none. */
export function modelWeightsPath(dir: string): string | undefined {
  return ['weights.safetensors', 'weights.pth'].map((f) => join(dir, f)).find((p) => existsSync(p));
}

/** The validated model.json of a model folder and the path of its weights (not read yet). */
export async function readModelFolder(dir: string): Promise<{ manifest: ModelManifest; manifestPath: string; weightsPath: string }> {
  const { manifest, manifestPath } = await readModelManifest(dir);
  const weightsPath = modelWeightsPath(dir);
  if (!weightsPath) throw new ModelFolderError(`${dir}: weights.safetensors is missing`);
  return { manifest, manifestPath, weightsPath };
}

/** Reads model.json and the weights, builds the network on the current backend and loads it strictly. */
export async function loadModelFolder(dir: string): Promise<LoadedModel> {
  const { manifest, manifestPath, weightsPath } = await readModelFolder(dir);
  const weights = await readWeightsFile(weightsPath);
  const model = await buildModel(manifest, weights, { manifest: manifestPath, weights: weightsPath });
  return { manifest, model, dir };
}
