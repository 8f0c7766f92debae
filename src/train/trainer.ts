import { appendFile, mkdir, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { tensor } from '../engine/creation.js';
import { tidy } from '../engine/scope.js';
import type { SegmentationNetwork } from '../models/registry.js';
import { AdamW } from './adamw.js';
import { DiceCELoss } from './dice-ce-loss.js';
import { learningRate, type ScheduleConfig } from './schedule.js';
import { saveCheckpoint, type TrainState } from './checkpoint.js';
import { renderCurvesSvg, smooth } from './curves.js';
import { writeFileAtomic } from '../io/fs.js';
import type { TrainHandlers } from './events.js';
import type { DeepSupervisionHeads } from './deep-supervision.js';

/** One training batch, NCDHW float32 image and [N,1,D,H,W] float class-index label. */
export interface Batch {
  image: Float32Array;
  label: Float32Array;
  shape: readonly [number, number, number, number, number];
}

/**
 * Where batches come from. `batch(step)` must depend only on (its seed, step), not on how many
 * batches were drawn before: that is what makes `--resume` continue exactly like an uninterrupted run.
 */
export interface BatchSource {
  batch(step: number): Promise<Batch>;
}

/** Result of one validation pass: mean Dice per foreground class (and anything else worth logging). */
export interface ValidationResult {
  dicePerClass: number[];
  extra?: Record<string, number>;
}

export interface TrainerOptions {
  steps: number;
  lr: number;
  weightDecay: number;
  schedule: ScheduleConfig;
  valEvery: number;
  /** Save `last` every this many steps (and at every validation). */
  saveEvery: number;
  outDir: string;
  /** Everything needed to rebuild the run: stored in checkpoints. */
  config: unknown;
  plan: unknown;
  handlers?: TrainHandlers;
  /** When aborted, the loop finishes the step in progress, saves `last` and returns with `stopped`. */
  signal?: AbortSignal;
  /**
   * Deep supervision: heads on the decoder's lower levels whose weighted DiceCE is added to the loss (the
   * model must have `forwardDecoder`). They train with the model and are saved in `last` checkpoints only.
   */
  deepSupervision?: DeepSupervisionHeads;
}

export interface TrainerResult {
  steps: number;
  best: { step: number; metric: number } | null;
  seconds: number;
  /** Steps completed: `steps` unless the run was stopped early through the signal. */
  completed: number;
  stopped: boolean;
}

/** Checkpoint and optimiser names of the deep-supervision heads' parameters. */
export const DS_PREFIX = 'ds.';

interface HistoryEntry extends Record<string, unknown> {
  step: number;
}

/**
 * The official training loop (DiceCE + AdamW, validation by sliding window, best/last checkpoints),
 * with a JSONL metrics log, SVG curves and atomic checkpoints; progress is reported to the handlers.
 */
export class Trainer {
  readonly optimizer: AdamW;
  readonly loss = new DiceCELoss();
  private history: HistoryEntry[] = [];
  private best: { step: number; metric: number } | null = null;
  private startStep = 0;

  constructor(
    readonly model: SegmentationNetwork,
    readonly source: BatchSource,
    readonly validate: ((model: SegmentationNetwork, step: number) => Promise<ValidationResult>) | null,
    readonly opts: TrainerOptions,
  ) {
    const ds = opts.deepSupervision;
    if (ds && !model.forwardDecoder) throw new Error('deep supervision needs a network with forwardDecoder');
    const params = [...model.namedParameters(), ...(ds ? ds.namedParameters().map(([k, t]) => [DS_PREFIX + k, t] as [string, typeof t]) : [])];
    this.optimizer = new AdamW(params, { lr: opts.lr, weightDecay: opts.weightDecay });
  }

  /** Continues from a loaded checkpoint's state (the model and optimiser must already hold its tensors). */
  resumeFrom(state: TrainState): void {
    this.startStep = state.step;
    this.history = state.history as HistoryEntry[];
    this.best = state.best;
  }

  private state(step: number): TrainState {
    return { step, config: this.opts.config, plan: this.opts.plan, history: this.history, best: this.best };
  }

  private async writeCurves(): Promise<void> {
    const losses = this.history.filter((h) => typeof h.loss === 'number').map((h) => ({ step: h.step, value: h.loss as number }));
    const dice = this.history.filter((h) => typeof h.val_mean_dice === 'number').map((h) => ({ step: h.step, value: h.val_mean_dice as number }));
    const svg = renderCurvesSvg('uxnet3d training', [
      { name: 'training loss (DiceCE, moving average)', points: smooth(losses, 20), color: '#1f77b4', axis: 'left' },
      { name: 'validation mean foreground Dice', points: dice, color: '#d62728', axis: 'right' },
    ]);
    const path = join(this.opts.outDir, 'curves.svg');
    await writeFile(`${path}.tmp`, svg);
    await rename(`${path}.tmp`, path);
  }

  private async saveLast(done: number): Promise<void> {
    const path = join(this.opts.outDir, 'checkpoint_last.safetensors');
    await saveCheckpoint(path, this.model, this.optimizer, this.state(done), this.opts.deepSupervision ? { prefix: DS_PREFIX, module: this.opts.deepSupervision } : undefined);
    await this.writeCurves();
    this.opts.handlers?.onCheckpoint?.({ step: done, kind: 'last', path });
  }

  async run(): Promise<TrainerResult> {
    const { outDir, steps, signal } = this.opts;
    const h = this.opts.handlers ?? {};
    await mkdir(outDir, { recursive: true });
    const logPath = join(outDir, 'metrics.jsonl');
    // The log restarts from the checkpoint's history, so steps logged after the last checkpoint by a
    // killed run are dropped instead of appearing twice once they are trained again.
    await writeFileAtomic(logPath, new TextEncoder().encode(this.history.map((e) => JSON.stringify(e) + '\n').join('')));
    const t0 = Date.now();
    h.onStart?.({ startStep: this.startStep, totalSteps: steps });
    let done = this.startStep;
    let saved = this.startStep;
    for (let step = this.startStep; step < steps && !signal?.aborted; step++) {
      const tStep = Date.now();
      const b = await this.source.batch(step);
      const lr = learningRate(this.opts.lr, step, steps, this.opts.schedule);
      this.optimizer.lr = lr;
      const ds = this.opts.deepSupervision;
      const terms = tidy(() => {
        const x = tensor(b.image, b.shape);
        const y = tensor(b.label, [b.shape[0], 1, b.shape[2], b.shape[3], b.shape[4]]);
        if (ds) {
          const out = this.model.forwardDecoder!(x);
          const r = ds.loss(this.loss, out.logits, out.decoder, y, b.label, [b.shape[0], b.shape[2], b.shape[3], b.shape[4]]);
          r.loss.backward();
          return { ...r.main, total: r.loss };
        }
        const r = this.loss.forward(this.model.forward(x), y);
        r.loss.backward();
        return { ...r, total: null };
      });
      this.optimizer.step();
      this.optimizer.zeroGrad();
      const [loss, dice, ce, total] = await Promise.all([terms.loss.data(), terms.dice.data(), terms.ce.data(), terms.total?.data()]);
      for (const t of [terms.loss, terms.dice, terms.ce, terms.total]) t?.dispose();
      const optimised = total?.[0] ?? loss[0]!;
      if (!Number.isFinite(optimised)) throw new Error(`training diverged at step ${step + 1}: loss is ${optimised}`);
      // `loss` stays the full-resolution DiceCE, comparable between runs with and without deep supervision; `loss_ds` is what was minimised.
      const entry: HistoryEntry = {
        step: step + 1,
        loss: loss[0]!,
        loss_dice: dice[0]!,
        loss_ce: ce[0]!,
        ...(total ? { loss_ds: total[0]! } : {}),
        lr,
        seconds: (Date.now() - tStep) / 1000,
      };
      done = step + 1;
      const validateNow = this.validate && (done % this.opts.valEvery === 0 || done === steps);
      if (validateNow) {
        const v = await this.validate!(this.model, done);
        // Classes absent from every validation case (NaN) are left out, as in `evaluate`.
        const finite = v.dicePerClass.filter((d) => !Number.isNaN(d));
        const meanDice = finite.length ? finite.reduce((a, c) => a + c, 0) / finite.length : NaN;
        entry.val_dice = v.dicePerClass;
        entry.val_mean_dice = meanDice;
        Object.assign(entry, v.extra ?? {});
        const isBest = !Number.isNaN(meanDice) && (!this.best || meanDice > this.best.metric);
        if (isBest) {
          this.best = { step: done, metric: meanDice };
          const path = join(outDir, 'checkpoint_best.safetensors');
          await saveCheckpoint(path, this.model, null, this.state(done));
          h.onCheckpoint?.({ step: done, kind: 'best', path });
        }
        h.onValidationEnd?.({ step: done, dicePerClass: v.dicePerClass, meanDice, isBest, best: this.best });
      }
      this.history.push(entry);
      await appendFile(logPath, JSON.stringify(entry) + '\n');
      if (validateNow || done % this.opts.saveEvery === 0 || done === steps) {
        await this.saveLast(done);
        saved = done;
      }
      h.onStepEnd?.({ step: done, totalSteps: steps, loss: loss[0]!, lossDice: dice[0]!, lossCe: ce[0]!, lr, seconds: entry.seconds as number });
    }
    const stopped = done < steps;
    // A stop request loses nothing: the steps since the last periodic save are saved now.
    if (stopped && done > saved) await this.saveLast(done);
    h.onEnd?.({ step: done, totalSteps: steps, stopped });
    return { steps, best: this.best, seconds: (Date.now() - t0) / 1000, completed: done, stopped };
  }
}
