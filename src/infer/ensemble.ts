/**
 * Ensemble folders on disk (the format is described in ./ensemble-manifest.ts): loading a folder
 * that may be a model or an ensemble, and writing an ensemble from existing model folders.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/fs.js';
import { loadModelFolder, ModelFolderError, validateManifest, type LoadedModel, type ModelManifest } from './model-folder.js';
import {
  checkMemberFormat,
  checkMembers,
  disposeSegmenter,
  ENSEMBLE_FORMAT,
  isEnsemble,
  segmenterDefaultTta,
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
 * The validated model.json of a model folder, or of an ensemble folder and each of its members, without
 * reading any weights (to say what a folder holds).
 */
export async function readSegmenterManifests(dir: string): Promise<{ ensemble: EnsembleManifest | null; members: ModelManifest[] }> {
  const { json, path } = await readManifestJson(dir);
  if (manifestFormat(json) !== ENSEMBLE_FORMAT) return { ensemble: null, members: [validateManifest(json, path)] };
  const ensemble = validateEnsembleManifest(json, path);
  const members: ModelManifest[] = [];
  for (const m of ensemble.members) {
    const r = await readManifestJson(join(dir, m.path));
    checkMemberFormat(r.json, r.path);
    members.push(validateManifest(r.json, r.path));
  }
  return { ensemble, members };
}

/**
 * Writes DIR as an ensemble of existing model folders: each is copied to DIR/<name>/ (model.json,
 * weights and anything else in it), so the ensemble is self-contained; model.json is written last,
 * so a folder without it is an unfinished copy.
 */
export async function writeEnsembleFolder(
  dir: string,
  members: { name: string; from: string }[],
  info: { name: string; description?: string; inference?: EnsembleManifest['inference']; training?: Record<string, unknown> },
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
      // a linked file (weights kept elsewhere) is copied as the file it points to, so the folder stands alone
      const isFile = f.isFile() || (f.isSymbolicLink() && statSync(join(m.from, f.name)).isFile());
      if (isFile) await writeFileAtomic(join(target, f.name), await readFile(join(m.from, f.name)));
    }
  }
  const manifest: EnsembleManifest = {
    format: ENSEMBLE_FORMAT,
    name: info.name,
    ...(info.description ? { description: info.description } : {}),
    labels: labels!,
    members: members.map((m) => ({ path: m.name })),
    ...(info.inference ? { inference: info.inference } : {}),
    ...(info.training ? { training: info.training } : {}),
  };
  await writeFileAtomic(join(dir, 'model.json'), new TextEncoder().encode(JSON.stringify(manifest, null, 2) + '\n'));
  return manifest;
}

/** A source folder's name for its members: the folder's, or its parent's where it is a run's `model` or `ensemble`. */
function sourceName(dir: string): string {
  const b = basename(resolve(dir));
  return b === 'model' || b === 'ensemble' ? basename(dirname(resolve(dir))) : b;
}

/**
 * The members of an ensemble made of these folders, checked as `loadSegmenter` would check the
 * result (formats, weights, labels, input channels) before anything is written: a model folder is one
 * member, named after its folder (a run's `RUN/model` after the run); an ensemble folder gives all of
 * its members, named SOURCE-MEMBER (the ensembles are flattened, since members cannot nest). Names
 * that repeat get -2, -3. `tta` is the mirroring default the new ensemble keeps: true when a source
 * mirrors by default and every member was trained with flips, else unset.
 */
export async function ensembleMembersOf(sources: string[]): Promise<{ members: { name: string; from: string }[]; labels: Record<string, string>; tta?: true }> {
  if (!sources.length) throw new ModelFolderError('an ensemble needs at least one model or ensemble folder');
  const loaded: Segmenter[] = [];
  try {
    const found: { name: string; from: string; model: LoadedModel }[] = [];
    let anyTta = false;
    for (const src of sources) {
      const s = await loadSegmenter(src);
      loaded.push(s);
      anyTta ||= segmenterDefaultTta(s);
      if (isEnsemble(s))
        s.members.forEach((m, i) =>
          found.push({ name: `${sourceName(src)}-${s.manifest.members[i]!.path.replace(/\//g, '-')}`, from: join(src, s.manifest.members[i]!.path), model: m }),
        );
      else found.push({ name: sourceName(src), from: src, model: s });
    }
    const seen = new Map<string, number>();
    const members = found.map((m) => {
      const n = (seen.get(m.name) ?? 0) + 1;
      seen.set(m.name, n);
      return { name: n === 1 ? m.name : `${m.name}-${n}`, from: m.from, model: m.model };
    });
    // a later name may equal an earlier one's suffixed form ("a-2" given twice): then number them all
    if (new Set(members.map((m) => m.name)).size !== members.length) members.forEach((m, i) => (m.name = `m${i}-${m.name}`));
    const labels = members[0]!.model.manifest.labels;
    const tta = anyTta && members.every((m) => (m.model.manifest.inference.mirrorAxes ?? []).length > 0) ? (true as const) : undefined;
    const manifest: EnsembleManifest = { format: ENSEMBLE_FORMAT, name: 'new', labels, members: members.map((m) => ({ path: m.name })) };
    for (const m of members) if (!validMemberPath(m.name)) throw new ModelFolderError(`'${m.from}': its folder name '${m.name}' cannot name a member`);
    checkMembers(
      manifest,
      members.map((m) => m.model),
      'the ensemble',
    );
    return { members: members.map(({ name, from }) => ({ name, from })), labels, ...(tta ? { tta } : {}) };
  } finally {
    for (const s of loaded) disposeSegmenter(s);
  }
}
