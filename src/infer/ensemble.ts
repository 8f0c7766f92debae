/**
 * Ensemble folders on disk (the format is described in ./ensemble-manifest.ts): loading a folder
 * that may be a model or an ensemble, and writing an ensemble from existing model folders.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/fs.js';
import { loadModelFolder, ModelFolderError, type LoadedModel } from './model-folder.js';
import {
  checkMemberFormat,
  checkMembers,
  ENSEMBLE_FORMAT,
  manifestFormat,
  validateEnsembleManifest,
  validMemberPath,
  type EnsembleManifest,
  type LoadedEnsemble,
  type Segmenter,
} from './ensemble-manifest.js';

export * from './ensemble-manifest.js';

async function readManifestJson(dir: string): Promise<{ json: unknown; path: string }> {
  const path = join(dir, 'model.json');
  if (!existsSync(dir)) throw new ModelFolderError(`model folder '${dir}' does not exist`);
  if (!statSync(dir).isDirectory()) throw new ModelFolderError(`model '${dir}' is a file; give the folder that holds model.json and weights.safetensors`);
  if (!existsSync(path)) throw new ModelFolderError(`${dir} is not a model folder: model.json is missing`);
  try {
    return { json: JSON.parse(await readFile(path, 'utf8')), path };
  } catch (e) {
    // A file that cannot be read is an OS error the CLI reports itself; anything else is bad JSON.
    if ((e as NodeJS.ErrnoException).code) throw e;
    throw new ModelFolderError(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

/** Loads a model folder or an ensemble folder (every member built on the current backend). */
export async function loadSegmenter(dir: string): Promise<Segmenter> {
  const { json, path } = await readManifestJson(dir);
  if (manifestFormat(json) !== ENSEMBLE_FORMAT) return loadModelFolder(dir);
  const manifest = validateEnsembleManifest(json, path);
  const members: LoadedModel[] = [];
  try {
    for (const m of manifest.members) {
      const mdir = join(dir, m.path);
      checkMemberFormat((await readManifestJson(mdir)).json, join(mdir, 'model.json'));
      members.push(await loadModelFolder(mdir));
    }
    checkMembers(manifest, members, path);
  } catch (e) {
    for (const m of members) m.model.dispose();
    throw e;
  }
  return { manifest, members, dir } satisfies LoadedEnsemble;
}

/**
 * Writes DIR as an ensemble of existing model folders: each is copied to DIR/<name>/ (model.json,
 * weights and anything else in it), so the ensemble is self-contained; model.json is written last,
 * so a folder without it is an unfinished copy.
 */
export async function writeEnsembleFolder(
  dir: string,
  members: { name: string; from: string }[],
  info: { name: string; description?: string; training?: Record<string, unknown> },
): Promise<EnsembleManifest> {
  if (!members.length) throw new Error('an ensemble needs at least one member');
  let labels: Record<string, string> | null = null;
  await mkdir(dir, { recursive: true });
  await rm(join(dir, 'model.json'), { force: true });
  for (const m of members) {
    if (!validMemberPath(m.name) || m.name.includes('/')) throw new Error(`member name '${m.name}' must be a plain folder name`);
    const { json, path } = await readManifestJson(m.from);
    checkMemberFormat(json, path);
    const l = (json as { labels: Record<string, string> }).labels;
    if (!labels) labels = l;
    else if (JSON.stringify(l) !== JSON.stringify(labels))
      throw new ModelFolderError(`${path}: labels ${JSON.stringify(l)} differ from the first member's ${JSON.stringify(labels)}`);
    const target = join(dir, m.name);
    await mkdir(target, { recursive: true });
    for (const f of await readdir(m.from, { withFileTypes: true })) {
      if (f.isFile()) await writeFileAtomic(join(target, f.name), await readFile(join(m.from, f.name)));
    }
  }
  const manifest: EnsembleManifest = {
    format: ENSEMBLE_FORMAT,
    name: info.name,
    ...(info.description ? { description: info.description } : {}),
    labels: labels!,
    members: members.map((m) => ({ path: m.name })),
    ...(info.training ? { training: info.training } : {}),
  };
  await writeFileAtomic(join(dir, 'model.json'), new TextEncoder().encode(JSON.stringify(manifest, null, 2) + '\n'));
  return manifest;
}
