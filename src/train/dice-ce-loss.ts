import { add, crossEntropy, diceLoss, scale, softmax } from '../engine/ops/index.js';
import { tidy } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';

export interface DiceCELossOptions {
  /** Weight of the Dice term (MONAI `lambda_dice`, default 1). */
  lambdaDice?: number;
  /** Weight of the cross-entropy term (MONAI `lambda_ce`, default 1). */
  lambdaCe?: number;
  /** Dice numerator smoothing (MONAI `smooth_nr`, default 1e-5). */
  smoothNr?: number;
  /** Dice denominator smoothing (MONAI `smooth_dr`, default 1e-5). */
  smoothDr?: number;
  /** Only `true` is supported (the official setting). */
  toOnehotY?: boolean;
  /** Only `true` is supported (the official setting). */
  softmax?: boolean;
  /** Only `true` is supported (MONAI's default). */
  includeBackground?: boolean;
}

export interface DiceCELossResult {
  /** lambdaDice·dice + lambdaCe·ce, shape [1]; call `loss.backward()` on it. */
  loss: Tensor;
  /** The unweighted Dice term, shape [1]. */
  dice: Tensor;
  /** The unweighted cross-entropy term, shape [1]. */
  ce: Tensor;
}

function nonNegative(v: number, name: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`DiceCELoss: ${name} must be a non-negative number, got ${v}`);
  return v;
}

/**
 * MONAI 0.9.0 `DiceCELoss(to_onehot_y=True, softmax=True)` with its other defaults — the official
 * UX-Net training loss:
 * - Dice: p = softmax(logits, 1); per sample n and class c (background included, no squares),
 *   f = 1 − (2·Σ p·g + smoothNr) / (Σ g + Σ p + smoothDr); averaged over N·C.
 * - CE: `nn.CrossEntropyLoss()` on the raw logits against the class indices, mean over all voxels.
 * - loss = lambdaDice·dice + lambdaCe·ce.
 * Logits are [N, C, D, H, W]; labels are [N, 1, D, H, W] float class indices in [0, C).
 */
export class DiceCELoss {
  readonly lambdaDice: number;
  readonly lambdaCe: number;
  readonly smoothNr: number;
  readonly smoothDr: number;

  constructor(opts: DiceCELossOptions = {}) {
    if (opts.toOnehotY === false) throw new Error('DiceCELoss: only toOnehotY=true is supported (labels are class indices)');
    if (opts.softmax === false) throw new Error('DiceCELoss: only softmax=true is supported');
    if (opts.includeBackground === false) throw new Error('DiceCELoss: only includeBackground=true is supported');
    this.lambdaDice = nonNegative(opts.lambdaDice ?? 1, 'lambdaDice');
    this.lambdaCe = nonNegative(opts.lambdaCe ?? 1, 'lambdaCe');
    this.smoothNr = nonNegative(opts.smoothNr ?? 1e-5, 'smoothNr');
    this.smoothDr = nonNegative(opts.smoothDr ?? 1e-5, 'smoothDr');
  }

  forward(logits: Tensor, label: Tensor): DiceCELossResult {
    if (logits.rank < 3) throw new Error(`DiceCELoss: logits must be [N, C, ...spatial], got [${logits.shape.join(', ')}]`);
    const ok = label.rank === logits.rank && label.shape[0] === logits.shape[0] && label.shape[1] === 1 && label.shape.slice(2).every((d, i) => d === logits.shape[i + 2]);
    if (!ok) throw new Error(`DiceCELoss: label [${label.shape.join(', ')}] must be [N, 1, ...spatial] matching logits [${logits.shape.join(', ')}]`);
    return tidy(() => {
      const probs = softmax(logits);
      const dice = diceLoss(probs, label, { smoothNr: this.smoothNr, smoothDr: this.smoothDr });
      probs.dispose();
      const ce = crossEntropy(logits, label);
      const loss = add(this.lambdaDice === 1 ? dice : scale(dice, this.lambdaDice), this.lambdaCe === 1 ? ce : scale(ce, this.lambdaCe));
      return { loss, dice, ce };
    });
  }

  /** Same as forward (PyTorch-style call name). */
  call(logits: Tensor, label: Tensor): DiceCELossResult {
    return this.forward(logits, label);
  }
}
