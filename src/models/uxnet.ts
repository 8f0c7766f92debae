import { tidy } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import { initContext, Module } from '../nn/module.js';
import { UnetOutBlock } from './blocks/unet-out-block.js';
import { UnetrBasicBlock } from './blocks/unet-res-block.js';
import { UnetrUpBlock } from './blocks/unetr-up-block.js';
import { normalizeUXNetConfig, type UXNetConfig, type UXNetConfigInput } from './config.js';
import { UxNetConv } from './uxnet-encoder.js';
import { InputError } from '../engine/errors.js';

/** An input the network cannot process (wrong rank, channel count or spatial size). */
export class UXNetInputError extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'UXNetInputError';
  }
}

export interface UXNetOptions {
  /** Seed of the initialisation generator (default 0). Same seed, same weights. */
  seed?: number;
}

/** Names of the tensors returned by `forwardWithIntermediates`, as in the official `forward()` (fixture names). */
export const UXNET_ACTIVATIONS = [
  'input',
  'outs0',
  'outs1',
  'outs2',
  'outs3',
  'enc1',
  'enc2',
  'enc3',
  'enc4',
  'enc_hidden',
  'dec3',
  'dec2',
  'dec1',
  'dec0',
  'final',
  'logits',
] as const;

/**
 * 3D UX-Net (Lee et al., ICLR 2023), a port of the official `UXNET` (MASILab/3DUX-Net) with
 * MONAI 0.9.0 blocks. State-dict keys and order are PyTorch's, so official checkpoints load as-is.
 *
 * Differences from the official constructor, all documented:
 * - The out block's input width is `featSize[0]`. The official code hard-codes 48, so any
 *   `feat_size[0] != 48` fails there; for every official configuration the two agree.
 * - `layerScaleInit` is honoured (the official code ignores `layer_scale_init_value` and uses a
 *   literal 1e-6); the default is 1e-6, so default models match.
 * - `dropPathRate` must be 0 (stochastic depth is not implemented; the official scripts use 0).
 * - Initial weights come from our seeded generator (PyTorch's default *distributions*, not its stream).
 *
 * Inputs are [N, inChans, D, H, W] with D, H, W multiples of 16 and a bottleneck (D·H·W/16³) of more
 * than one voxel; the output is raw logits [N, outChans, D, H, W].
 */
export class UXNet extends Module {
  readonly config: Readonly<UXNetConfig>;
  readonly uxnet_3d: UxNetConv;
  readonly encoder1: UnetrBasicBlock;
  readonly encoder2: UnetrBasicBlock;
  readonly encoder3: UnetrBasicBlock;
  readonly encoder4: UnetrBasicBlock;
  readonly encoder5: UnetrBasicBlock;
  readonly decoder5: UnetrUpBlock;
  readonly decoder4: UnetrUpBlock;
  readonly decoder3: UnetrUpBlock;
  readonly decoder2: UnetrUpBlock;
  readonly decoder1: UnetrBasicBlock;
  readonly out: UnetOutBlock;

  constructor(config: UXNetConfigInput = {}, opts: UXNetOptions & { meta?: boolean } = {}) {
    super();
    const cfg = normalizeUXNetConfig(config);
    this.config = Object.freeze({ ...cfg, depths: [...cfg.depths], featSize: [...cfg.featSize] });
    const init = initContext({ seed: opts.seed, meta: opts.meta });
    const f = cfg.featSize as [number, number, number, number];
    const res = { kernelSize: 3, stride: 1, init };
    this.uxnet_3d = this.registerModule(
      'uxnet_3d',
      new UxNetConv({ inChans: cfg.inChans, depths: cfg.depths, dims: f, layerScaleInit: cfg.layerScaleInit, kernelSize: cfg.kernelSize, init }),
    );
    this.encoder1 = this.registerModule('encoder1', new UnetrBasicBlock(cfg.inChans, f[0], res));
    this.encoder2 = this.registerModule('encoder2', new UnetrBasicBlock(f[0], f[1], res));
    this.encoder3 = this.registerModule('encoder3', new UnetrBasicBlock(f[1], f[2], res));
    this.encoder4 = this.registerModule('encoder4', new UnetrBasicBlock(f[2], f[3], res));
    this.encoder5 = this.registerModule('encoder5', new UnetrBasicBlock(f[3], cfg.hiddenSize, res));
    const up = { kernelSize: 3, upsampleKernelSize: 2, init };
    this.decoder5 = this.registerModule('decoder5', new UnetrUpBlock(cfg.hiddenSize, f[3], up));
    this.decoder4 = this.registerModule('decoder4', new UnetrUpBlock(f[3], f[2], up));
    this.decoder3 = this.registerModule('decoder3', new UnetrUpBlock(f[2], f[1], up));
    this.decoder2 = this.registerModule('decoder2', new UnetrUpBlock(f[1], f[0], up));
    this.decoder1 = this.registerModule('decoder1', new UnetrBasicBlock(f[0], f[0], res));
    // Official: UnetOutBlock(in_channels=48, ...). We use featSize[0] (identical for official configs).
    this.out = this.registerModule('out', new UnetOutBlock(f[0], cfg.outChans, { init }));
  }

  /** Ordered [state-dict key, shape] pairs for a config, without allocating any weights. */
  static parameterShapes(config: UXNetConfigInput = {}): [string, readonly number[]][] {
    return new UXNet(config, { meta: true }).namedParameterShapes();
  }

  /** Number of parameters of a config, without allocating any weights (paper config: 53,006,461). */
  static countParameters(config: UXNetConfigInput = {}): number {
    return new UXNet(config, { meta: true }).numParameters();
  }

  get inChannels(): number {
    return this.config.inChans;
  }
  get outChannels(): number {
    return this.config.outChans;
  }
  /** Channels of `forwardDecoder`'s levels, finest first. */
  get decoderChannels(): number[] {
    return this.config.featSize.slice(1, 4);
  }
  /** Any multiple of 16 works, so there is no fixed input size. */
  get fixedInputSize(): null {
    return null;
  }

  /** Throws UXNetInputError unless `shape` is a valid input shape for this model (checked before any compute). */
  checkInputShape(shape: readonly number[]): void {
    const s = `[${shape.join(', ')}]`;
    if (shape.length !== 5) throw new UXNetInputError(`UX-Net input must be 5-D [N, C, D, H, W], got shape ${s}`);
    const [n, c, ...sp] = shape as [number, number, number, number, number];
    if (n < 1) throw new UXNetInputError(`UX-Net input has an empty batch: shape ${s}`);
    if (c !== this.config.inChans) throw new UXNetInputError(`UX-Net input has ${c} channel(s) but the model expects inChans = ${this.config.inChans} (shape ${s})`);
    const bad = sp.filter((d) => d < 16 || d % 16 !== 0);
    if (bad.length)
      throw new UXNetInputError(
        `UX-Net input spatial size ${sp.join('×')} is invalid: every spatial dimension must be a positive multiple of 16 (the network downsamples 4 times by 2 and concatenates skip connections); pad or crop the volume, or use sliding-window inference`,
      );
    const bottleneck = sp.map((d) => d / 16);
    if (bottleneck.every((d) => d === 1))
      throw new UXNetInputError(
        `UX-Net input spatial size ${sp.join('×')} gives a 1×1×1 bottleneck, where instance normalisation is undefined (PyTorch refuses it too); use at least 32 in one dimension`,
      );
  }

  /** Raw logits [N, outChans, D, H, W]. Intermediates are freed as soon as they are no longer needed. */
  forward(x: Tensor): Tensor {
    this.checkInputShape(x.shape);
    return tidy(() => this.run(x, null).logits);
  }

  /**
   * The forward pass keeping every named activation (fixture names: `input`, `outs0..3`, `enc1..4`,
   * `enc_hidden`, `dec3..0`, `final`, `logits`, plus `detail.uxnet_3d.downsample_layers.{i}`,
   * `detail.uxnet_3d.stages.{i}.{j}` and `detail.decoder{5..2}.transp_conv`). `input` is `x` itself.
   * The caller owns (and should dispose) every other tensor in the map. Uses much more memory than forward.
   */
  forwardWithIntermediates(x: Tensor): Map<string, Tensor> {
    this.checkInputShape(x.shape);
    return tidy(() => {
      const acts = new Map<string, Tensor>();
      this.run(x, acts);
      return acts;
    });
  }

  /**
   * Logits (as `forward`) and the decoder's outputs below full resolution, finest first: `dec1` (featSize[1]
   * channels at 1/2), `dec2` (featSize[2] at 1/4) and `dec3` (featSize[3] at 1/8). Deep supervision puts a
   * 1x1x1 head on them while training; the network itself is unchanged. The caller owns every returned tensor.
   */
  forwardDecoder(x: Tensor): { logits: Tensor; decoder: Tensor[] } {
    this.checkInputShape(x.shape);
    return tidy(() => {
      const taps = new Map<string, Tensor>();
      const { logits } = this.run(x, null, taps);
      return { logits, decoder: ['dec1', 'dec2', 'dec3'].map((k) => taps.get(k)!) };
    });
  }

  private run(x: Tensor, acts: Map<string, Tensor> | null, taps: Map<string, Tensor> | null = null): { logits: Tensor } {
    const keep = acts !== null;
    const put = (name: string, t: Tensor) => {
      acts?.set(name, t);
      return t;
    };
    // Decoder outputs handed to the caller (`taps`) are theirs to free.
    const drop = (...ts: Tensor[]) => {
      if (!keep) for (const t of ts) if (![...(taps?.values() ?? [])].includes(t)) t.dispose();
    };
    put('input', x);
    const detail = keep ? new Map<string, Tensor>() : undefined;
    const outs = this.uxnet_3d.forward(x, detail);
    outs.forEach((t, i) => put(`outs${i}`, t));
    const enc1 = put('enc1', this.encoder1.forward(x));
    const enc2 = put('enc2', this.encoder2.forward(outs[0]!));
    drop(outs[0]!);
    const enc3 = put('enc3', this.encoder3.forward(outs[1]!));
    drop(outs[1]!);
    const enc4 = put('enc4', this.encoder4.forward(outs[2]!));
    drop(outs[2]!);
    const encHidden = put('enc_hidden', this.encoder5.forward(outs[3]!));
    drop(outs[3]!);
    const decode = (block: UnetrUpBlock, name: string, inp: Tensor, skip: Tensor, outName: string) => {
      const r = block.forwardDetailed(inp, skip, keep);
      if (r.upsampled) detail!.set(`detail.${name}.transp_conv`, r.upsampled);
      drop(inp, skip);
      if (outName !== 'dec0') taps?.set(outName, r.out);
      return put(outName, r.out);
    };
    const dec3 = decode(this.decoder5, 'decoder5', encHidden, enc4, 'dec3');
    const dec2 = decode(this.decoder4, 'decoder4', dec3, enc3, 'dec2');
    const dec1 = decode(this.decoder3, 'decoder3', dec2, enc2, 'dec1');
    const dec0 = decode(this.decoder2, 'decoder2', dec1, enc1, 'dec0');
    const final = put('final', this.decoder1.forward(dec0));
    drop(dec0);
    const logits = put('logits', this.out.forward(final));
    drop(final);
    if (detail) for (const [k, v] of detail) acts!.set(k, v);
    return { logits };
  }
}
