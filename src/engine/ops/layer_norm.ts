import { backendOf, runKernel, record, wrap } from '../op.js';
import { shapeString, type Tensor } from '../tensor.js';

/**
 * LayerNorm over channels with affine weight/bias (the official UX-Net LayerNorm, eps 1e-6 default).
 * channelsLast=false: x is [N, C, ...], normalised over axis 1 at every voxel (official channels_first).
 * channelsLast=true: x is [..., C], normalised over the last axis (F.layer_norm).
 */
export function layerNorm(x: Tensor, w: Tensor, b: Tensor, opts: { eps?: number; channelsLast?: boolean } = {}): Tensor {
  const eps = opts.eps ?? 1e-6;
  const channelsLast = opts.channelsLast ?? false;
  const c = channelsLast ? x.shape[x.rank - 1] : x.shape[1];
  if (x.rank < 2 || c === undefined) throw new Error(`layerNorm: input ${shapeString(x.shape)} has no channel axis`);
  for (const [name, t] of [['weight', w], ['bias', b]] as const) {
    if (t.rank !== 1 || t.shape[0] !== c) throw new Error(`layerNorm: ${name} ${shapeString(t.shape)} must have shape [${c}] for input ${shapeString(x.shape)}`);
  }
  const be = backendOf('layerNorm', x, w, b);
  const [yk, mk, rk] = runKernel('layerNorm', be, x.info, w.info, b.info, { eps, channelsLast });
  const mean = wrap(mk, be);
  const rstd = wrap(rk, be);
  const y = record(wrap(yk, be), 'layerNorm', [x, w, b], [x, w, mean, rstd], (dy, [xs, ws, ms, rs], needs) => {
    const [dx, dw, db] = runKernel('layerNormGrad', be, dy.info, xs!.info, ws!.info, ms!.info, rs!.info, { channelsLast }).map((k) => wrap(k, be));
    return [needs[0] ? dx! : null, needs[1] ? dw! : null, needs[2] ? db! : null];
  });
  mean.dispose();
  rstd.dispose();
  return y;
}
