import { keep, tidy } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import { Module } from '../nn/module.js';

/** Records one named activation of a forward pass (the fixture names). */
export type Put = (name: string, t: Tensor) => void;

/** `put` for a child that records under `prefix` (undefined when nothing is recorded). */
export function sub(put: Put | undefined, prefix: string): Put | undefined {
  return put ? (n, t) => put(prefix + n, t) : undefined;
}

/**
 * A network whose forward is written once, as `run(x, put?)`: `forward` runs it without recording (so
 * intermediates are freed as soon as they are dead), `forwardWithIntermediates` runs the same code
 * recording every named activation. One body for both keeps the two from drifting apart.
 */
export abstract class RecordingNetwork extends Module {
  /** Throws one clear line for an input shape the network cannot take, before any compute. */
  abstract checkInputShape(shape: readonly number[]): void;

  /** The forward pass; calls `put` (when given) for each named activation, and returns the logits. */
  protected abstract run(x: Tensor, put?: Put): Tensor;

  /** Raw logits [N, classes, D, H, W]. */
  forward(x: Tensor): Tensor {
    this.checkInputShape(x.shape);
    return tidy(() => this.run(x));
  }

  /**
   * The forward keeping every named activation (`input` is x itself, `logits` the result). The caller
   * owns the other tensors. Uses much more memory than forward.
   */
  forwardWithIntermediates(x: Tensor): Map<string, Tensor> {
    this.checkInputShape(x.shape);
    return tidy(() => {
      const acts = new Map<string, Tensor>([['input', x]]);
      // keep(): intermediates created inside nested tidy scopes must outlive them; the caller owns them.
      acts.set(
        'logits',
        this.run(x, (n, t) => acts.set(n, keep(t))),
      );
      return acts;
    });
  }
}
