import { backendOf, runKernel, record, wrap } from '../op.js';
import { shapeString, type Tensor } from '../tensor.js';
import { full } from '../creation.js';

/**
 * LayerNorm over channels with affine weight/bias (the official UX-Net LayerNorm, eps 1e-6 default).
 * channelsLast=false: x is [N, C, ...], normalised over axis 1 at every voxel (official channels_first).
 * channelsLast=true: x is [..., C], normalised over the last axis (F.layer_norm).
 * w and b may be null (no affine: F.layer_norm(x, [C]) on MONAI's hidden states); they then act as 1 and 0.
 */
export function layerNorm(x: Tensor, w: Tensor | null, b: Tensor | null, opts: { eps?: number; channelsLast?: boolean } = {}): Tensor {
  const eps = opts.eps ?? 1e-6;
  const channelsLast = opts.channelsLast ?? false;
  const c = channelsLast ? x.shape[x.rank - 1] : x.shape[1];
  if (x.rank < 2 || c === undefined) throw new Error(`layerNorm: input ${shapeString(x.shape)} has no channel axis`);
  for (const [name, t] of [
    ['weight', w],
    ['bias', b],
  ] as const) {
    if (t && (t.rank !== 1 || t.shape[0] !== c)) throw new Error(`layerNorm: ${name} ${shapeString(t.shape)} must have shape [${c}] for input ${shapeString(x.shape)}`);
  }
  const be = backendOf('layerNorm', x, w, b);
  const wt = w ?? full([c], 1, { backend: be });
  const bt = b ?? full([c], 0, { backend: be });
  const [yk, mk, rk] = runKernel('layerNorm', be, x.info, wt.info, bt.info, { eps, channelsLast });
  const mean = wrap(mk, be);
  const rstd = wrap(rk, be);
  const y = record(wrap(yk, be), 'layerNorm', [x, w, b], [x, wt, mean, rstd], (dy, [xs, ws, ms, rs], needs) => {
    const [dx, dw, db] = runKernel('layerNormGrad', be, dy.info, xs!.info, ws!.info, ms!.info, rs!.info, { channelsLast }).map((k) => wrap(k, be));
    return [needs[0] ? dx! : null, needs[1] ? dw! : null, needs[2] ? db! : null];
  });
  mean.dispose();
  rstd.dispose();
  if (!w) wt.dispose();
  if (!b) bt.dispose();
  return y;
}
