/**
 * A model folder the user picks in the browser (<input webkitdirectory> lists every file under the
 * chosen folder with its relative path): model.json beside weights.safetensors (or weights.pth), or an
 * ensemble folder whose model.json lists member folders. The lookup is loadModelFolder's and
 * loadSegmenter's in Node, so any folder `uxnet train` or `uxnet crossval` writes, of any network,
 * runs in the page as it is. Browser-safe: Blobs only, no file system.
 */
import { ENSEMBLE_FORMAT, manifestFormat, validateEnsembleManifest, type EnsembleManifest } from '../infer/ensemble-manifest.js';
import { ModelFolderError, validateManifest, type ModelManifest } from '../infer/model-manifest.js';
import type { ModelBytes } from './segment.js';

/** What the folder input gives: each file with its path below the chosen folder's parent ("folder/model.json"). */
export interface PickedFile {
  path: string;
  file: Blob;
}

export interface PickedModel {
  /** The chosen folder's name. */
  name: string;
  /** The page's view: the model's manifest, or for an ensemble its name and labels with the members' common settings. */
  view: ModelManifest;
  /** Identifies the folder's contents (sizes), so the worker reuses a model it already built. */
  key: string;
  /** Reads the weights (only when the user segments). */
  bytes(): Promise<ModelBytes>;
}

const WEIGHTS = ['weights.safetensors', 'weights.pth'];

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelFolderError(`${where}: not valid JSON (${(e as Error).message})`);
  }
}

/**
 * The page's view of an ensemble: its name and labels, the first member's preprocessing and window,
 * and mirroring TTA offered only when every member was trained with flips.
 */
export function ensembleView(ens: EnsembleManifest, members: ModelManifest[]): ModelManifest {
  const first = members[0]!;
  const axes = members.every((v) => (v.inference.mirrorAxes ?? []).length) ? first.inference.mirrorAxes : [];
  return {
    ...first,
    name: ens.name,
    description: ens.description ?? `ensemble of ${members.length} models`,
    labels: ens.labels,
    // TTA preselected as `uxnet predict` would run it: the ensemble's default, else any member's.
    inference: { ...first.inference, mirrorAxes: axes, tta: !!axes?.length && (ens.inference?.tta ?? members.some((v) => !!v.inference.tta)) },
  };
}

/** Reads a picked folder's model.json (and its members'); the weights are read later by `bytes()`. */
export async function pickedModel(files: readonly PickedFile[]): Promise<PickedModel> {
  if (!files.length) throw new ModelFolderError('the chosen folder is empty: choose the folder that holds model.json and weights.safetensors');
  const folder = files[0]!.path.split('/')[0]!;
  // Paths below the chosen folder: "fold_0/model.json" rather than "ensemble/fold_0/model.json".
  const byPath = new Map(files.map((f) => [f.path.split('/').slice(1).join('/'), f.file]));
  const at = (dir: string, name: string) => (dir ? `${dir}/${name}` : name);
  const where = (dir: string) => (dir ? `${folder}/${dir}` : folder);

  async function folderFiles(dir: string): Promise<{ text: string; json: unknown; weightsName: string; weights: Blob }> {
    const manifest = byPath.get(at(dir, 'model.json'));
    if (!manifest) throw new ModelFolderError(`${where(dir)} is not a model folder: model.json is missing`);
    const text = await manifest.text();
    const json = parseJson(text, `${where(dir)}/model.json`);
    const weightsName = WEIGHTS.find((w) => byPath.has(at(dir, w)));
    // An ensemble folder has no weights of its own; a plain model folder must.
    if (!weightsName && manifestFormat(json) !== ENSEMBLE_FORMAT) throw new ModelFolderError(`${where(dir)}: weights.safetensors is missing`);
    return { text, json, weightsName: weightsName ?? '', weights: weightsName ? byPath.get(at(dir, weightsName))! : new Blob([]) };
  }

  const top = await folderFiles('');
  const key = `folder:${folder}:${files.map((f) => `${f.path}=${f.file.size}`).join(',')}`;
  const asBytes = async (dir: string, f: { text: string; weightsName: string; weights: Blob }): Promise<ModelBytes> => ({
    manifestText: f.text,
    manifestName: `${where(dir)}/model.json`,
    weights: new Uint8Array(await f.weights.arrayBuffer()),
    weightsName: `${where(dir)}/${f.weightsName}`,
  });
  if (manifestFormat(top.json) !== ENSEMBLE_FORMAT) {
    const view = validateManifest(top.json, `${folder}/model.json`);
    return { name: folder, view, key, bytes: () => asBytes('', top) };
  }
  const ens = validateEnsembleManifest(top.json, `${folder}/model.json`);
  const members = await Promise.all(ens.members.map((m) => folderFiles(m.path)));
  const views = members.map((m, i) => validateManifest(m.json, `${where(ens.members[i]!.path)}/model.json`));
  return {
    name: folder,
    view: ensembleView(ens, views),
    key,
    bytes: async () => ({
      ...(await asBytes('', top)),
      members: await Promise.all(members.map((m, i) => asBytes(ens.members[i]!.path, m))),
    }),
  };
}
