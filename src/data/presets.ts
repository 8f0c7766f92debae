import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { validateSteps, type StepSpec } from './pipeline.js';
import { gammaRange } from './transforms/random.js';
import type { Vec3 } from './volume.js';
import { InputError } from '../engine/errors.js';

/** A random step of a training tail (see random.ts for the semantics of each). */
export type RandomStepSpec =
  | { op: 'randCropByPosNegLabel'; spatialSize: Vec3; pos: number; neg: number; numSamples: number; imageThreshold: number; allowSmaller?: boolean }
  | { op: 'randShiftIntensity'; offsets: number; prob: number }
  | { op: 'randAffine'; prob: number; rotateRange: Vec3; scaleRange: Vec3 }
  | { op: 'randFlip'; prob: number; axes?: number[] }
  | { op: 'randRotate90'; prob: number; maxK?: number; axes?: [number, number] }
  | { op: 'randGamma'; prob: number; gamma: number | [number, number] };

export interface Preset {
  name: string;
  description?: string;
  modality?: string;
  numClasses?: number;
  roiSize: Vec3;
  /** The deterministic chain (MONAI's val_transforms after loading). */
  val: StepSpec[];
  /** The random tail appended to `val` for training. */
  train: RandomStepSpec[];
  /** `auto`: the val chain is planned from the dataset fingerprint. */
  auto?: boolean;
  planner?: Record<string, unknown>;
}

/** presets/ at the package root (this file is dist/src/data/presets.js once built). */
export const PRESET_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'presets');

export const BUILTIN_PRESETS = ['flare', 'amos', 'feta', 'auto'] as const;

const RANDOM_OPS = new Set(['randCropByPosNegLabel', 'randShiftIntensity', 'randAffine', 'randFlip', 'randRotate90', 'randGamma']);

export function parsePreset(json: unknown, where: string): Preset {
  const p = json as Partial<Preset>;
  if (!p || typeof p !== 'object' || typeof p.name !== 'string') throw new InputError(`${where}: a preset is a JSON object with a "name"`);
  const roi = p.roiSize ?? [96, 96, 96];
  if (!(Array.isArray(roi) && roi.length === 3 && roi.every((d) => Number.isInteger(d) && d > 0))) throw new InputError(`${where}: roiSize must be three positive integers`);
  const train = p.train ?? [];
  if (!Array.isArray(train)) throw new InputError(`${where}: "train" must be an array`);
  train.forEach((s, i) => {
    if (!RANDOM_OPS.has((s as { op?: string })?.op ?? '')) throw new InputError(`${where}: train step ${i} has unknown op ${JSON.stringify((s as { op?: string })?.op)} (known: ${[...RANDOM_OPS].join(', ')})`);
    if ((s as RandomStepSpec).op === 'randGamma') {
      try {
        gammaRange((s as { gamma: number | [number, number] }).gamma);
      } catch (e) {
        throw new InputError(`${where}: train step ${i}: ${(e as Error).message}`);
      }
    }
  });
  return { ...p, name: p.name, roiSize: roi as Vec3, val: validateSteps(p.val ?? [], `${where} (val)`), train } as Preset;
}

/** A built-in preset by name, or a preset JSON file by path. */
export function loadPreset(nameOrPath: string): Preset {
  const builtin = (BUILTIN_PRESETS as readonly string[]).includes(nameOrPath);
  const path = builtin ? join(PRESET_DIR, `${nameOrPath}.json`) : nameOrPath;
  if (!existsSync(path)) {
    throw new InputError(`unknown preset '${nameOrPath}': use one of ${BUILTIN_PRESETS.join(', ')} or the path of a preset JSON file`);
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new InputError(`preset file '${path}' is not valid JSON: ${(e as Error).message}`);
  }
  return parsePreset(json, path);
}
