import { open } from 'node:fs/promises';
import type { Module } from '../nn/module.js';
import { flushBatchNormStats } from '../nn/norm-layers.js';
import type { AdamW, AdamWStateDict } from './adamw.js';
import { readSafetensorsFile, writeSafetensorsFile, type RawTensor } from '../io/safetensors.js';

/** The safetensors metadata entry that holds the training state (step, config, history). */
const TRAIN_STATE_KEY = 'uxnet3d.train_state';
/**
 * A training checkpoint is ONE safetensors file: the model's parameters under their PyTorch names,
 * AdamW's moments under `optim.exp_avg.<name>` / `optim.exp_avg_sq.<name>`, and everything else
 * (step, config, plan, optimiser steps and hyper-parameters, metric history) as JSON in the
 * `uxnet3d.train_state` metadata entry. One file written by rename is atomic: a kill at any moment
 * leaves either the previous checkpoint or the new one, never a mix.
 */
export const CHECKPOINT_FORMAT = 'uxnet3d-checkpoint/1';

export interface TrainState<C = unknown, P = unknown> {
  /** Number of optimiser steps completed. */
  step: number;
  config: C;
  plan: P;
  history: Record<string, unknown>[];
  best: { step: number; metric: number } | null;
}

export interface LoadedCheckpoint<C = unknown, P = unknown> {
  state: TrainState<C, P>;
  model: Map<string, RawTensor>;
  optimizer: AdamWStateDict | null;
}

const OPT_M = 'optim.exp_avg.';
const OPT_V = 'optim.exp_avg_sq.';

/**
 * `extra`: training-only parameters (deep-supervision heads) saved beside the model's under `prefix`;
 * `loadCheckpoint` returns them among the model's tensors, for the caller to split off by that prefix.
 */
export async function saveCheckpoint(path: string, model: Module, optimizer: AdamW | null, state: TrainState, extra?: { prefix: string; module: Module }): Promise<void> {
  const entries: [string, { shape: readonly number[]; data: Float32Array }][] = [];
  for (const [name, t] of model.namedParameters()) entries.push([name, { shape: t.shape, data: await t.data() }]);
  if (extra) for (const [name, t] of extra.module.namedParameters()) entries.push([extra.prefix + name, { shape: t.shape, data: await t.data() }]);
  // BatchNorm running statistics (TransBTS) are state too.
  await flushBatchNormStats(model);
  entries.push(...model.namedStateBuffers());
  let optimMeta: unknown = null;
  if (optimizer) {
    const sd = await optimizer.stateDictAsync(); // asynchronous reads: works on WebGPU too
    const steps: Record<string, number> = {};
    for (const [name, s] of sd.state) {
      entries.push([OPT_M + name, { shape: s.shape, data: s.expAvg }]);
      entries.push([OPT_V + name, { shape: s.shape, data: s.expAvgSq }]);
      steps[name] = s.step;
    }
    optimMeta = { hyper: sd.hyper, steps };
  }
  await writeSafetensorsFile(path, entries, {
    format: CHECKPOINT_FORMAT,
    [TRAIN_STATE_KEY]: JSON.stringify(state),
    'uxnet3d.optimizer': JSON.stringify(optimMeta),
  });
}

export async function loadCheckpoint<C = unknown, P = unknown>(path: string): Promise<LoadedCheckpoint<C, P>> {
  const { tensors, metadata } = await readSafetensorsFile(path);
  if (metadata.format !== CHECKPOINT_FORMAT)
    throw new Error(`${path} is not a uxnet3d training checkpoint (format '${metadata.format ?? 'missing'}'); plain weights go to --init instead`);
  let state: TrainState<C, P>;
  let optimMeta: { hyper: AdamWStateDict['hyper']; steps: Record<string, number> } | null;
  try {
    state = JSON.parse(metadata[TRAIN_STATE_KEY] ?? 'null');
    optimMeta = JSON.parse(metadata['uxnet3d.optimizer'] ?? 'null');
  } catch {
    throw new Error(`${path}: checkpoint metadata is not valid JSON`);
  }
  if (!state || !Number.isInteger(state.step)) throw new Error(`${path}: checkpoint has no training state`);
  const model = new Map<string, RawTensor>();
  const m = new Map<string, RawTensor>();
  const v = new Map<string, RawTensor>();
  for (const [name, t] of tensors) {
    if (name.startsWith(OPT_M)) m.set(name.slice(OPT_M.length), t);
    else if (name.startsWith(OPT_V)) v.set(name.slice(OPT_V.length), t);
    else model.set(name, t);
  }
  let optimizer: AdamWStateDict | null = null;
  if (optimMeta) {
    const st: AdamWStateDict['state'] = new Map();
    for (const [name, step] of Object.entries(optimMeta.steps)) {
      const mm = m.get(name);
      const vv = v.get(name);
      if (!mm || !vv) throw new Error(`${path}: optimiser state for '${name}' is incomplete`);
      st.set(name, { step, shape: mm.shape, expAvg: mm.data, expAvgSq: vv.data });
    }
    optimizer = { hyper: optimMeta.hyper, state: st };
  }
  return { state, model, optimizer };
}

/** Step count stored in a checkpoint's metadata, read from the safetensors header alone (no tensors). */
export async function checkpointStep(path: string): Promise<number> {
  const f = await open(path, 'r');
  try {
    const len = Buffer.alloc(8);
    await f.read(len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE(0));
    const header = Buffer.alloc(n);
    await f.read(header, 0, n, 8);
    const meta = (JSON.parse(header.toString('utf8')) as { __metadata__?: Record<string, string> }).__metadata__ ?? {};
    const step = (JSON.parse(meta[TRAIN_STATE_KEY] ?? 'null') as { step?: number } | null)?.step;
    if (!Number.isInteger(step)) throw new Error(`${path}: checkpoint has no training state`);
    return step!;
  } finally {
    await f.close();
  }
}
