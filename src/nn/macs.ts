/**
 * Multiply-accumulates of a network's convolutions and linear layers for one input size: the
 * "MACs"/"FLOPs" column of architecture papers (which count conv and linear layers only; norms,
 * activations and attention products are left out here too).
 *
 * The sizes every layer sees come from running the network once on zeros (no gradient), with each
 * counted layer's forward methods (plain and fused) wrapped on its instance for the duration, so any
 * architecture built from these layers is counted without a per-network formula:
 *   Conv3d           out voxels × Cout × (Cin / groups) × kD·kH·kW   (per batch item)
 *   ConvTranspose3d  in voxels × Cin × Cout × kD·kH·kW
 *   linear (weight [out, in]) output elements × in
 */
import { zeros } from '../engine/creation.js';
import { noGrad, tidy } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import { Conv3d, ConvTranspose3d } from './layers.js';
import type { Module } from './module.js';

const prod = (a: readonly number[]) => a.reduce((x, y) => x * y, 1);

/** MACs of one layer call from its weight and input/output shapes; null for layers that are not counted. */
export function layerMacs(m: Module, input: readonly number[], output: readonly number[]): number | null {
  if (m instanceof Conv3d) return prod(output) * (m.inChannels / m.groups) * prod(m.weight.shape.slice(2));
  if (m instanceof ConvTranspose3d) return prod(input) * m.outChannels * prod(m.weight.shape.slice(2));
  const w = (m as unknown as { weight?: Tensor }).weight;
  if (w && w.shape.length === 2) return prod(output) * w.shape[1]!;
  return null;
}

/**
 * The methods through which a layer computes its output: `forward`, and the fused variants that do
 * the same product with an epilogue (Linear.forwardGelu, Conv3d.forwardFused over concatenated
 * inputs). Each is counted, so a network's fused inference path counts what its plain one does.
 */
const FORWARDS = ['forward', 'forwardGelu', 'forwardFused'] as const;

/** The shape a call's first argument stands for: a tensor's, or the channel concatenation of a list. */
function inputShape(x: Tensor | readonly Tensor[]): readonly number[] {
  if (!Array.isArray(x)) return (x as Tensor).shape;
  const xs = x as readonly Tensor[];
  const s = [...xs[0]!.shape];
  s[1] = xs.reduce((a, t) => a + t.shape[1]!, 0);
  return s;
}

/** Conv/linear MACs of `model.forward` on an input of `shape` (NCDHW). */
export function countMacs(model: Module & { forward(x: Tensor): Tensor }, shape: readonly number[]): number {
  let total = 0;
  const wrapped: [Module, string][] = [];
  for (const [, m] of model.namedModules()) {
    if (!(m instanceof Conv3d || m instanceof ConvTranspose3d || (m as unknown as { weight?: Tensor }).weight?.shape.length === 2)) continue;
    const layer = m as unknown as Record<string, unknown>;
    for (const name of FORWARDS) {
      const orig = layer[name];
      if (typeof orig !== 'function') continue;
      Object.defineProperty(layer, name, {
        configurable: true,
        writable: true,
        value: (x: Tensor | readonly Tensor[], ...rest: unknown[]) => {
          const y = (orig as (...a: unknown[]) => Tensor).call(layer, x, ...rest);
          total += layerMacs(m, inputShape(x), y.shape) ?? 0;
          return y;
        },
      });
      wrapped.push([m, name]);
    }
  }
  try {
    tidy(() =>
      noGrad(() => {
        model.forward(zeros(shape));
      }),
    );
  } finally {
    for (const [m, name] of wrapped) delete (m as unknown as Record<string, unknown>)[name];
  }
  return total;
}
