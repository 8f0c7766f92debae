import { backendOf, runKernel, record, wrap } from '../op.js';
import { shapeString, type Tensor } from '../tensor.js';

function checkTarget(op: string, logits: Tensor, target: Tensor): void {
  const ok = target.rank === logits.rank && target.shape[0] === logits.shape[0] && target.shape[1] === 1 && target.shape.slice(2).every((d, i) => d === logits.shape[i + 2]);
  if (!ok) throw new Error(`${op}: target ${shapeString(target.shape)} must be [N, 1, ...spatial] matching ${shapeString(logits.shape)}`);
}

/**
 * Cross-entropy on raw logits [N, C, ...] with class-index targets [N, 1, ...] (float values),
 * averaged over all N·spatial voxels: `nn.CrossEntropyLoss()(logits, target.squeeze(1).long())`.
 */
export function crossEntropy(logits: Tensor, target: Tensor): Tensor {
  checkTarget('crossEntropy', logits, target);
  const be = backendOf('crossEntropy', logits, target);
  const y = wrap(runKernel('crossEntropy', be, logits.info, target.info), be);
  return record(y, 'crossEntropy', [logits, null], [logits, target], (dy, [ls, ts]) => [wrap(runKernel('crossEntropyGrad', be, dy.info, ls!.info, ts!.info), be), null]);
}

/**
 * MONAI soft Dice loss (no squares, per sample and class, background included) on probabilities
 * [N, C, ...] against class-index targets [N, 1, ...]: mean over N·C of 1 − (2I + sNr)/(G + P + sDr).
 */
export function diceLoss(probs: Tensor, target: Tensor, opts: { smoothNr?: number; smoothDr?: number } = {}): Tensor {
  checkTarget('diceLoss', probs, target);
  const smoothNr = opts.smoothNr ?? 1e-5;
  const smoothDr = opts.smoothDr ?? 1e-5;
  const be = backendOf('diceLoss', probs, target);
  const [lk, sk] = runKernel('diceLoss', be, probs.info, target.info, { smoothNr, smoothDr });
  const stats = wrap(sk, be);
  const channels = probs.shape[1]!;
  const y = record(wrap(lk, be), 'diceLoss', [probs, null], [target, stats], (dy, [ts, ss]) => [
    wrap(runKernel('diceLossGrad', be, dy.info, ts!.info, ss!.info, { smoothNr, smoothDr, channels }), be),
    null,
  ]);
  stats.dispose();
  return y;
}
