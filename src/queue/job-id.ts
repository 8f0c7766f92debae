import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { validMemberPath } from '../infer/ensemble-manifest.js';
import type { CrossvalFoldJobData, CrossvalSummaryJobData, PredictJobData, TrainJobData } from './schema.js';

/** JSON with object keys sorted, so equal payloads hash equally whatever order they were built in. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** BullMQ ids may not be plain integers and ':' separates Redis key parts: keep a readable, safe stem. */
function stem(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 60) || 'job';
}

/**
 * Job ids are a hash of everything that determines the result (case, output, model content, options),
 * so submitting the same work twice adds nothing: BullMQ ignores an add whose id already exists.
 */
export function predictJobId(d: PredictJobData): string {
  return `predict-${stem(d.case)}-${sha256(canonicalJson(d)).slice(0, 20)}`;
}

export function trainJobId(d: TrainJobData): string {
  return `train-${stem(basename(d.config.outDir))}-${sha256(canonicalJson(d)).slice(0, 20)}`;
}

/**
 * What decides a crossval's results: the recipe without the backend and loader threads (they change
 * how fast, not what), the fold count, TTA and whether it re-makes weights. Resubmitting from a machine with another default
 * backend therefore finds the same jobs instead of queueing the folds again.
 */
function crossvalKey(d: CrossvalFoldJobData | CrossvalSummaryJobData): string {
  const { backend: _b, workers: _w, ...recipe } = d.config as Record<string, unknown>;
  // remakeWeights is absent unless asked for, so the ids of ordinary submissions do not change; a
  // re-make gets jobs of its own (the finished folds' completed jobs would make BullMQ ignore it).
  return canonicalJson({ recipe, folds: d.folds, tta: d.tta, remakeWeights: d.remakeWeights });
}

/** One id per run folder, fold and recipe: the fold's job whichever submission (all folds or --fold) adds it. */
export function crossvalFoldJobId(d: CrossvalFoldJobData): string {
  return `crossval-${stem(basename(d.config.outDir))}-fold${d.fold}-${sha256(`${crossvalKey(d)}|${d.fold}`).slice(0, 20)}`;
}

/** The summary of a submission: its id also covers which folds it waits for. */
export function crossvalSummaryJobId(d: CrossvalSummaryJobData): string {
  return `crossval-${stem(basename(d.config.outDir))}-summary-${sha256(`${crossvalKey(d)}|${d.run.join(',')}`).slice(0, 20)}`;
}

async function hashFile(h: ReturnType<typeof createHash>, path: string): Promise<void> {
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
}

const digestCache = new Map<string, { key: string; digest: string }>();

/**
 * The files that make a model folder: model.json and its weights (safetensors, else .pth, as
 * loadModelFolder looks them up); for an ensemble folder, its model.json and each member's files.
 */
async function modelFiles(dir: string): Promise<string[]> {
  const manifest = join(dir, 'model.json');
  let json: { members?: unknown } | null = null;
  try {
    json = JSON.parse(await readFile(manifest, 'utf8')) as { members?: unknown };
  } catch {
    // unreadable or not JSON: hash the file as it is; loading the model names the problem
  }
  const members = json && json.members && Array.isArray(json.members) ? (json.members as { path?: unknown }[]) : null;
  if (members && members.every((m) => validMemberPath(m?.path))) {
    const files = [manifest];
    for (const m of members) files.push(...(await modelFiles(join(dir, m.path as string))));
    return files;
  }
  const weights = ['weights.safetensors', 'weights.pth'].map((f) => join(dir, f)).find((f) => existsSync(f)) ?? join(dir, 'weights.safetensors');
  return [manifest, weights];
}

/**
 * sha256 over a model folder's model.json and weights (an ensemble's: every member's too). Cached by
 * size and mtime, so a worker hashes a model once, not once per job, yet notices when the folder is
 * replaced.
 */
export async function modelDigest(dir: string): Promise<string> {
  const files = await modelFiles(dir);
  const stats = await Promise.all(files.map((f) => stat(f)));
  const key = files.map((f, i) => `${f}:${stats[i]!.size}:${stats[i]!.mtimeMs}:${stats[i]!.ino}`).join('|');
  const hit = digestCache.get(dir);
  if (hit && hit.key === key) return hit.digest;
  const h = createHash('sha256');
  for (const f of files) {
    await hashFile(h, f);
    h.update('\0');
  }
  const digest = h.digest('hex');
  digestCache.set(dir, { key, digest });
  return digest;
}
