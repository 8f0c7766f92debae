import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readdir, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { loadImage, NiftiError, VolumeError } from '../data/load.js';
import { saveVolume } from '../data/save.js';
import { ModelFolderError } from '../infer/model-folder.js';
import { disposeSegmenter, loadSegmenter, segmentVolume, type Segmenter } from '../infer/ensemble.js';
import { confine } from './confine.js';
import { PermanentJobError } from './errors.js';
import { modelDigest } from './job-id.js';
import type { PredictJobData } from './schema.js';

/** Where a worker remembers which job wrote which output, and the output's sha256 (a Redis hash). */
export interface OutputRecords {
  get(output: string): Promise<string | null>;
  set(output: string, record: string): Promise<void>;
}

export interface PredictJobContext {
  roots: readonly string[] | null;
  records: OutputRecords;
}

export interface PredictJobResult {
  case: string;
  output: string;
  sha256: string;
  seconds: number;
  /** The identical output was already there (an earlier attempt finished writing it). */
  skipped: boolean;
}

export async function fileSha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * Loaded models (or ensembles), by folder: a worker loads each once, and concurrent jobs share one load
 * (the map holds the promise). Two at most, so memory stays bounded.
 */
const models = new Map<string, { digest: string; loading: Promise<Segmenter> }>();
const MAX_MODELS = 2;

function dispose(entry: { loading: Promise<Segmenter> }): void {
  entry.loading.then(
    (m) => disposeSegmenter(m),
    () => {},
  );
}

async function modelFor(dir: string, digest: string): Promise<Segmenter> {
  const hit = models.get(dir);
  if (hit && hit.digest === digest) return hit.loading;
  if (hit) {
    dispose(hit);
    models.delete(dir);
  }
  while (models.size >= MAX_MODELS) {
    const [oldest, m] = models.entries().next().value!;
    dispose(m);
    models.delete(oldest);
  }
  const loading = loadSegmenter(dir).catch((e: unknown) => {
    models.delete(dir);
    if (e instanceof ModelFolderError) throw new PermanentJobError(e.message);
    throw e;
  });
  models.set(dir, { digest, loading });
  return loading;
}

/** Temporary files a killed attempt left beside the output (writeFileAtomic's `<name>.tmp-<pid>-<ms>`). */
async function removeStaleTemps(output: string): Promise<void> {
  const dir = dirname(output);
  const prefix = `${basename(output)}.tmp-`;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  await Promise.all(names.filter((n) => n.startsWith(prefix)).map((n) => unlink(join(dir, n)).catch(() => {})));
}

/**
 * One case, exactly as `uxnet predict` computes and writes it (same functions, same header), so the
 * output is byte-identical. At-least-once delivery means a case may run twice: the write is atomic
 * (temporary file + rename), and an output this job already wrote completely is left alone.
 */
export async function runPredictJob(d: PredictJobData, jobId: string, ctx: PredictJobContext): Promise<PredictJobResult> {
  const t0 = Date.now();
  const input = confine(d.input, ctx.roots, 'input');
  const output = confine(d.output, ctx.roots, 'output');
  const modelDir = confine(d.model, ctx.roots, 'model');
  if (existsSync(output)) {
    const rec = await ctx.records.get(output);
    if (rec) {
      const r = JSON.parse(rec) as { jobId?: string; sha256?: string };
      if (r.jobId === jobId) {
        const sha256 = await fileSha256(output);
        if (sha256 === r.sha256) return { case: d.case, output, sha256, seconds: (Date.now() - t0) / 1000, skipped: true };
      }
    }
  }
  await removeStaleTemps(output);
  if (!existsSync(join(modelDir, 'model.json'))) throw new PermanentJobError(`model ${d.model} has no model.json`);
  const digest = await modelDigest(modelDir);
  if (digest !== d.modelDigest) throw new PermanentJobError(`model ${d.model} changed since the job was submitted (its weights or model.json differ); resubmit`);
  const loaded = await modelFor(modelDir, digest);
  let image;
  try {
    image = await loadImage(input);
  } catch (e) {
    if (e instanceof NiftiError || e instanceof VolumeError) throw new Error(`${d.input}: ${e.message}`);
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${d.input} does not exist`);
    throw e;
  }
  const o = d.options;
  const pred = await segmentVolume(loaded, image, { overlap: o.overlap, mode: o.mode, swBatchSize: o.swBatch, tta: o.tta, fast: o.fast });
  await mkdir(dirname(output), { recursive: true });
  // The same call and description as `uxnet predict`: the bytes must not depend on how a case was run.
  await saveVolume(output, pred.labels, { label: true, description: `uxnet3d ${loaded.manifest.name}` });
  const sha256 = await fileSha256(output);
  await ctx.records.set(output, JSON.stringify({ jobId, sha256 }));
  return { case: d.case, output, sha256, seconds: (Date.now() - t0) / 1000, skipped: false };
}
