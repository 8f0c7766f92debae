import { add, mulChannel } from '../engine/ops/index.js';
import { tidy } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import { Conv3d, GELU, LayerNorm } from '../nn/layers.js';
import { initContext, Module, ModuleList, Sequential, type InitOptions, type Layer } from '../nn/module.js';
import { step } from '../nn/step.js';

export interface UxBlockOptions extends InitOptions {
  /** Initial value of every entry of the layer scale `gamma`; ≤ 0 means no gamma (as in the official code). */
  layerScaleInit?: number;
  /** Depth-wise kernel size (official: 7), odd so that "same" padding exists. */
  kernelSize?: number;
}

/**
 * The official `ux_block(dim)` (uxnet_encoder.py): depth-wise k7 conv → LayerNorm(eps 1e-6) →
 * **grouped** 1×1 conv dim→4·dim (groups=dim) → exact GELU → grouped 1×1 conv 4·dim→dim (groups=dim)
 * → per-channel `gamma` → residual add. Not the ConvNeXt MLP: the point-wise convs are grouped.
 * drop_path is the identity (drop_path_rate must be 0).
 *
 * The official LayerNorm here is channels_last (permute, F.layer_norm over C, permute back); we apply
 * the identical normalisation over axis 1 of NCDHW directly.
 */
export class UxBlock extends Module implements Layer {
  readonly gamma: Tensor | null;
  readonly dwconv: Conv3d;
  readonly norm: LayerNorm;
  readonly pwconv1: Conv3d;
  readonly act: GELU;
  readonly pwconv2: Conv3d;

  constructor(
    readonly dim: number,
    opts: UxBlockOptions = {},
  ) {
    super();
    const init = initContext(opts);
    const k = opts.kernelSize ?? 7;
    if (!Number.isInteger(k) || k < 1 || k % 2 === 0) throw new Error(`ux_block kernel size must be a positive odd integer, got ${k}`);
    const ls = opts.layerScaleInit ?? 1e-6;
    this.dwconv = this.registerModule('dwconv', new Conv3d(dim, dim, k, { padding: (k - 1) / 2, groups: dim, init }));
    this.norm = this.registerModule('norm', new LayerNorm(dim, { eps: 1e-6, init }));
    this.pwconv1 = this.registerModule('pwconv1', new Conv3d(dim, 4 * dim, 1, { groups: dim, init }));
    this.act = this.registerModule('act', new GELU());
    this.pwconv2 = this.registerModule('pwconv2', new Conv3d(4 * dim, dim, 1, { groups: dim, init }));
    // PyTorch lists own parameters before children, so `gamma` precedes `dwconv.weight` in the state dict.
    this.gamma = ls > 0 ? this.createParameter(init, 'gamma', [dim], (n) => new Float32Array(n).fill(ls)) : null;
  }

  forward(input: Tensor): Tensor {
    return tidy(() => {
      let x = this.dwconv.forward(input);
      x = step(x, (t) => this.norm.forward(t));
      x = step(x, (t) => this.pwconv1.forward(t));
      x = step(x, (t) => this.act.forward(t));
      x = step(x, (t) => this.pwconv2.forward(t));
      if (this.gamma) x = step(x, (t) => mulChannel(t, this.gamma!));
      return step(x, (t) => add(input, t));
    });
  }
}

export interface UxNetConvOptions extends InitOptions {
  inChans: number;
  depths: readonly number[];
  dims: readonly number[];
  layerScaleInit?: number;
  kernelSize?: number;
}

/**
 * The official backbone `uxnet_conv`: stem Conv3d(k7, s2, p3) → LayerNorm (channels_first), then
 * three LayerNorm → Conv3d(k2, s2) downsamplings; `stages[i]` = depths[i] ux_blocks; `norm{i}`
 * (channels_first LayerNorm) is applied to the copy sent to the decoder only — the next stage
 * consumes the un-normalised tensor.
 */
export class UxNetConv extends Module {
  readonly downsample_layers: ModuleList<Sequential>;
  readonly stages: ModuleList<Sequential>;
  readonly norms: LayerNorm[];

  constructor(opts: UxNetConvOptions) {
    super();
    const init = initContext(opts);
    const { inChans, depths, dims } = opts;
    if (depths.length !== 4 || dims.length !== 4) throw new Error('uxnet_conv needs 4 depths and 4 dims');
    const down: Sequential[] = [new Sequential([new Conv3d(inChans, dims[0]!, 7, { stride: 2, padding: 3, init }), new LayerNorm(dims[0]!, { eps: 1e-6, init })])];
    for (let i = 0; i < 3; i++) {
      down.push(new Sequential([new LayerNorm(dims[i]!, { eps: 1e-6, init }), new Conv3d(dims[i]!, dims[i + 1]!, 2, { stride: 2, init })]));
    }
    this.downsample_layers = this.registerModule('downsample_layers', new ModuleList(down));
    const stages: Sequential[] = [];
    for (let i = 0; i < 4; i++) {
      const blocks: UxBlock[] = [];
      for (let j = 0; j < depths[i]!; j++) blocks.push(new UxBlock(dims[i]!, { layerScaleInit: opts.layerScaleInit, kernelSize: opts.kernelSize, init }));
      stages.push(new Sequential(blocks));
    }
    this.stages = this.registerModule('stages', new ModuleList(stages));
    this.norms = [0, 1, 2, 3].map((i) => this.registerModule(`norm${i}`, new LayerNorm(dims[i]!, { eps: 1e-6, init })));
  }

  /** Returns the 4 normalised stage outputs (`outs`). `detail`, when given, also receives and keeps the `detail.uxnet_3d.*` intermediates. */
  forward(x: Tensor, detail?: Map<string, Tensor>): Tensor[] {
    // tidy keeps only what the callback returns, so the detail tensors are returned alongside `outs`.
    return tidy(() => {
      const outs: Tensor[] = [];
      let h = x;
      for (let i = 0; i < 4; i++) {
        const seq = this.downsample_layers.at(i);
        let y = tidy(() => {
          let z = seq.layers[0]!.forward(h);
          z = step(z, (t) => seq.layers[1]!.forward(t));
          return z;
        });
        if (h !== x && !detail) h.dispose();
        if (detail) detail.set(`detail.uxnet_3d.downsample_layers.${i}`, y);
        const stage = this.stages.at(i);
        stage.layers.forEach((block, j) => {
          const next = block.forward(y);
          if (detail) detail.set(`detail.uxnet_3d.stages.${i}.${j}`, next);
          else y.dispose();
          y = next;
        });
        h = y;
        outs.push(this.norms[i]!.forward(h));
      }
      if (h !== x && !detail) h.dispose();
      return { outs, kept: detail ? [...detail.values()] : [] };
    }).outs;
  }
}
