import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { readNiftiFile, decodeFloat32, decodeRaw } from '../io/nifti/index.js';
import { writeFileAtomic } from '../io/fs.js';
import type { Case } from './dataset.js';
import { loadCase } from './dataset.js';
import { runSteps, type Sample, type StepSpec } from './pipeline.js';
import { saveVolume } from './save.js';
import { volume, type VoxelData } from './volume.js';
import { mat4 } from '../io/nifti/mat4.js';
import type { z } from 'zod';
import { parseWithSchema } from '../io/schema.js';
import { CacheEntrySchema } from './plan-schema.js';

/** One preprocessed case on disk: uncompressed NIfTI (fast to re-read), image float32, label compact int. */
export type CacheEntry = z.output<typeof CacheEntrySchema>;

export function stepsHash(steps: readonly StepSpec[]): string {
  return createHash('sha256').update(JSON.stringify(steps)).digest('hex').slice(0, 16);
}

/**
 * Runs the deterministic chain on one case and writes it to `dir` (atomically). Entries whose files
 * already exist for the same chain hash are reused, so an interrupted run resumes where it stopped.
 */
export async function cacheCase(c: Case, steps: readonly StepSpec[], dir: string): Promise<CacheEntry> {
  const h = stepsHash(steps);
  const imagePath = join(dir, `${c.id}.${h}.image.nii`);
  const labelPath = c.label ? join(dir, `${c.id}.${h}.label.nii`) : undefined;
  const metaPath = join(dir, `${c.id}.${h}.json`);
  if (existsSync(imagePath) && existsSync(metaPath) && (!labelPath || existsSync(labelPath))) {
    const stored = parseWithSchema(CacheEntrySchema, JSON.parse(readFileSync(metaPath, 'utf8')), metaPath);
    // The meta file records where its volumes were written; a cache folder moved or copied since (a run
    // folder renamed, a crossval moved) still holds them, so point the entry at this folder's files.
    return { ...stored, image: imagePath, ...(labelPath ? { label: labelPath } : {}) };
  }
  await mkdir(dir, { recursive: true });
  const { sample } = runSteps(await loadCase(c), steps);
  // Cached grids carry their true affine (crops included), so they overlay the input in a viewer.
  await saveVolume(imagePath, sample.image, { affine: sample.image.gridAffine });
  if (labelPath && sample.label) await saveVolume(labelPath, sample.label, { label: true, affine: sample.label.gridAffine });
  const entry: CacheEntry = {
    id: c.id,
    split: c.split,
    shape: sample.image.shape,
    channels: sample.image.channels,
    image: imagePath,
    ...(labelPath ? { label: labelPath } : {}),
    ...(sample.foreground ? { foreground: sample.foreground } : {}),
    ops: sample.image.ops,
  };
  await writeFileAtomic(metaPath, new TextEncoder().encode(JSON.stringify(entry)));
  return entry;
}

/** Reads a cached case back as a Sample (channels-last NIfTI -> channel-first volume). */
export async function readCached(e: CacheEntry): Promise<Sample> {
  const img = await readNiftiFile(e.image);
  const image = volume(decodeFloat32(img, { channelFirst: true }), e.shape, mat4(Array.from(img.affine)), e.channels);
  let label;
  if (e.label) {
    const l = await readNiftiFile(e.label);
    label = volume(decodeRaw(l) as VoxelData, e.shape, mat4(Array.from(l.affine)), 1);
  }
  return { image, label };
}
