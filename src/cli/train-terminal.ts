/**
 * What `uxnet train` and `uxnet crossval` share at the terminal: progress bars for preprocessing and
 * training, and Ctrl-C / kill handling that lets the optimiser step in progress finish and saves a
 * checkpoint, so no training is lost to a stop.
 */
import type { TrainHandlers } from '../train/events.js';
import { createProgress, type Progress } from './progress.js';
import { preprocessProgressBars } from './commands/preprocess.js';

/** Exit codes of a run stopped by a signal, as shells report them (128 + signal number). */
export const SIGNAL_EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

/** The terminal's handlers: progress bars for preprocessing and training, log lines on stderr. */
export function terminalHandlers(): TrainHandlers & { stop(): void } {
  const prep = preprocessProgressBars();
  let bar: Progress | null = null;
  let recentLoss = NaN;
  let dice = '';
  return {
    onProgress: prep.onProgress,
    onLog: (line) => process.stderr.write(line + '\n'),
    onStart: ({ startStep, totalSteps }) => {
      prep.stop();
      recentLoss = NaN;
      dice = '';
      bar = createProgress({ label: 'train', total: totalSteps, start: startStep, fields: ['loss', 'lr', 'it/s', 'dice'] });
    },
    onValidationEnd: (e) => {
      dice = e.meanDice.toFixed(3);
    },
    onStepEnd: (e) => {
      recentLoss = Number.isNaN(recentLoss) ? e.loss : 0.95 * recentLoss + 0.05 * e.loss;
      bar?.update(e.step, { loss: recentLoss.toFixed(4), lr: e.lr.toExponential(2), 'it/s': (1 / Math.max(1e-3, e.seconds)).toFixed(2), dice });
    },
    onEnd: () => {
      bar?.stop();
      bar = null;
    },
    stop: () => {
      prep.stop();
      bar?.stop();
      bar = null;
    },
  };
}

export interface SignalStop {
  /** Aborted by the first SIGINT / SIGTERM that arrives while training runs. */
  signal: AbortSignal;
  /** The signal received ('' when none). */
  received(): string;
  /** Wrap the training handlers so the stop knows when optimiser steps are running. */
  track(h: TrainHandlers): TrainHandlers;
  dispose(): void;
}

/**
 * SIGINT / SIGTERM while optimiser steps run: say so, let the step finish and the checkpoint be saved
 * (the caller passes `signal` to training); a second signal quits at once. Outside training
 * (preprocessing, exporting, prediction) nothing is lost by quitting, and those phases can be long,
 * so the process exits at once after `idleMessage(sig, trainedBefore)`: every file they write is
 * written atomically, and a model folder's model.json is written after its weights.
 */
export function stopOnSignals(o: { idleMessage: (sig: string, trainedBefore: boolean) => string; beforeExit?: () => void }): SignalStop {
  const stop = new AbortController();
  let received = '';
  let training = false;
  let trainedBefore = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (received) process.exit(SIGNAL_EXIT[sig] ?? 1);
    received = sig;
    if (!training) {
      o.beforeExit?.();
      process.stderr.write(`\nuxnet: ${sig}: ${o.idleMessage(sig, trainedBefore)}\n`);
      process.exit(SIGNAL_EXIT[sig] ?? 1);
    }
    process.stderr.write(`\nuxnet: ${sig}: stopping after the current step and saving a checkpoint (send it again to quit without saving)\n`);
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: stop.signal,
    received: () => received,
    track: (h) => ({
      ...h,
      onStart: (e) => {
        training = true;
        h.onStart?.(e);
      },
      onEnd: (e) => {
        training = false;
        trainedBefore = true;
        h.onEnd?.(e);
      },
    }),
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
