import type { PreprocessProgress } from '../data/preprocess.js';

/**
 * Event handlers of a training run (in the spirit of MONAI/Ignite handlers): the library reports
 * what happens through these and never draws on a terminal itself, so a progress bar, a logger or a
 * dashboard is just one more set of handlers. Every handler is optional and called synchronously.
 */
export interface TrainHandlers {
  /** Preprocessing (fingerprint, caching) progress, before training starts. */
  onProgress?(e: PreprocessProgress): void;
  /** Human-readable lines: the network summary, resume and --init reports, the final summary. */
  onLog?(line: string): void;
  /** The loop is about to run `startStep + 1 .. totalSteps` (startStep > 0 when resuming). */
  onStart?(e: { startStep: number; totalSteps: number }): void;
  /** After every optimiser step (and its validation, when one ran at this step). */
  onStepEnd?(e: StepEndEvent): void;
  onValidationEnd?(e: ValidationEndEvent): void;
  onCheckpoint?(e: CheckpointEvent): void;
  /** The loop ended: after the last step, or early because the run was asked to stop. */
  onEnd?(e: { step: number; totalSteps: number; stopped: boolean }): void;
}

export interface StepEndEvent {
  /** Steps completed, 1-based. */
  step: number;
  totalSteps: number;
  loss: number;
  lossDice: number;
  lossCe: number;
  lr: number;
  seconds: number;
}

export interface ValidationEndEvent {
  step: number;
  dicePerClass: number[];
  meanDice: number;
  /** True when this validation is the best so far (checkpoint_best was written). */
  isBest: boolean;
  /** Best so far (null while every validation Dice was NaN: no class present in the validation set). */
  best: { step: number; metric: number } | null;
}

export interface CheckpointEvent {
  step: number;
  kind: 'last' | 'best';
  path: string;
}
