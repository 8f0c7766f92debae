import type { Command } from 'commander';
import '../../backends/index.js';
import { tensor } from '../../engine/creation.js';
import { getBackendName } from '../../engine/registry.js';
import { selectBackend } from '../backend.js';
import { noGrad } from '../../engine/scope.js';
import { readSafetensorsFile, writeSafetensorsFile, type RawTensor } from '../../io/safetensors.js';
import { readWeightsFile } from '../../io/weights.js';
import { InputError } from '../../engine/errors.js';
import { modelPredictor, slidingWindowInference } from '../../infer/sliding-window.js';
import { UXNetConfigError } from '../../models/config.js';
import { UXNetInputError } from '../../models/uxnet.js';
import { createNetwork, networkArgsSnake, networkFromConfig, type NetworkSpec, type SegmentationNetwork } from '../../models/registry.js';
import { StateDictError } from '../../nn/module.js';
import { UserError } from '../errors.js';
import { readConfigFile } from '../config-file.js';
import { checkOutputFile } from '../outputs.js';
import { readModelFolder } from '../../infer/model-folder.js';
import { createProgress, type Progress } from '../progress.js';

export interface ForwardOptions {
  config?: string;
  weights?: string;
  /** A model folder: its model.json gives the config, its weights file the weights. */
  model?: string;
  input: string;
  inputKey: string;
  output: string;
  backend?: string;
  /** Sliding-window ROI "D,H,W"; without it the whole volume goes through the network at once. */
  roi?: string;
  overlap?: string;
  swBatch?: string;
  mode?: string;
}

/** Parsed and checked sliding-window settings (MONAI 0.9.0 defaults where not given). */
export interface SlidingWindowSettings {
  roi: [number, number, number];
  overlap: number;
  swBatchSize: number;
  mode: 'gaussian' | 'constant';
}

/**
 * Checks the sliding-window flags. Returns null when --roi is absent (whole-volume forward); the other
 * flags are refused then, so a typo'd or forgotten --roi does not silently run a different inference.
 */
export function parseSlidingWindowOptions(o: { roi?: string; overlap?: string; swBatch?: string; mode?: string }): SlidingWindowSettings | null {
  if (o.roi === undefined) {
    const given = (
      [
        ['--overlap', o.overlap],
        ['--sw-batch', o.swBatch],
        ['--mode', o.mode],
      ] as const
    )
      .filter(([, v]) => v !== undefined)
      .map(([f]) => f);
    if (given.length) throw new UserError(`${given.join(', ')} only appl${given.length > 1 ? 'y' : 'ies'} to sliding-window inference: add --roi D,H,W`);
    return null;
  }
  const parts = o.roi.split(',').map((t) => t.trim());
  const roi = parts.map(Number);
  if (parts.length !== 3 || parts.some((t) => !/^\d+$/.test(t)) || roi.some((d) => d < 16 || d % 16 !== 0)) {
    throw new UserError(`--roi '${o.roi}': expected three positive multiples of 16 separated by commas, e.g. 96,96,96`);
  }
  let overlap = 0.25;
  if (o.overlap !== undefined) {
    overlap = Number(o.overlap);
    if (o.overlap.trim() === '' || !Number.isFinite(overlap) || overlap < 0 || overlap >= 1) throw new UserError(`--overlap '${o.overlap}': expected a number in [0, 1)`);
  }
  let swBatchSize = 1;
  if (o.swBatch !== undefined) {
    swBatchSize = Number(o.swBatch);
    if (!/^\s*\d+\s*$/.test(o.swBatch) || !Number.isSafeInteger(swBatchSize) || swBatchSize < 1) throw new UserError(`--sw-batch '${o.swBatch}': expected a positive integer`);
  }
  const mode = o.mode ?? 'constant';
  if (mode !== 'gaussian' && mode !== 'constant') throw new UserError(`--mode '${mode}': expected 'gaussian' or 'constant'`);
  return { roi: roi as [number, number, number], overlap, swBatchSize, mode };
}

async function readTensors(path: string, what: string): Promise<Map<string, RawTensor>> {
  try {
    return (await readSafetensorsFile(path)).tensors;
  } catch (e) {
    if (e instanceof InputError) throw new UserError(`${what} file: ${e.message}`);
    throw e;
  }
}

/** Weights from .safetensors or a torch.save checkpoint (.pth/.pt/.bin/.ckpt), by extension. */
async function readWeights(path: string): Promise<Map<string, RawTensor>> {
  try {
    return await readWeightsFile(path);
  } catch (e) {
    if (e instanceof InputError) throw new UserError(`weights file: ${e.message}`);
    throw e;
  }
}

/**
 * `uxnet forward`: one forward pass. Reads the network and its constructor options (camelCase or the
 * official snake_case; see models/registry.ts for the accepted forms) from a JSON file, the weights from safetensors or a PyTorch checkpoint (state-dict
 * keys), and one input tensor [N, inChans, D, H, W]; writes the raw logits as tensor `logits`,
 * atomically. With `roi` it runs MONAI 0.9.0 sliding-window inference instead of one whole-volume
 * pass, so the input may have any spatial size.
 */
export async function runForward(opts: ForwardOptions): Promise<{ shape: number[] }> {
  const sw = parseSlidingWindowOptions(opts);
  await selectBackend(opts.backend);
  const src = await resolveModelSource(opts);
  await checkOutputFile(opts.output, [opts.input, src.weights]);
  const rawConfig = src.config;
  let model: SegmentationNetwork;
  let spec: NetworkSpec;
  try {
    // The config is validated before anything is allocated; the random init is overwritten right away.
    spec = networkFromConfig(rawConfig);
    model = createNetwork(spec);
  } catch (e) {
    if (e instanceof UXNetConfigError) throw new UserError(`config file '${src.configName}': ${e.message}`);
    throw e;
  }
  try {
    if (sw) {
      try {
        model.checkInputShape([1, model.inChannels, ...sw.roi]);
      } catch (e) {
        if (e instanceof UXNetInputError) throw new UserError(`--roi ${sw.roi.join(',')}: ${e.message}`);
        throw e;
      }
    }
    const weights = await readWeights(src.weights);
    try {
      model.loadStateDict(weights);
    } catch (e) {
      if (e instanceof StateDictError) throw new UserError(`weights file '${src.weights}' does not fit the config${src.fromFolder ? ` in ${src.configName}` : ''}: ${e.message}`);
      throw e;
    }
    weights.clear();
    // Inference: BatchNorm on its running statistics, no dropout / DropPath (TransBTS, nnFormer).
    model.eval();
    const inputs = await readTensors(opts.input, 'input');
    const raw = inputs.get(opts.inputKey);
    if (!raw) throw new UserError(`input file '${opts.input}' has no tensor '${opts.inputKey}' (it has: ${[...inputs.keys()].join(', ') || 'none'}); choose one with --input-key`);
    let data: Float32Array;
    let shape: number[];
    const meta: Record<string, string> = {};
    if (sw) {
      // Any spatial size works (MONAI pads windows that do not fit); rank and channels must still match.
      const s = raw.shape;
      if (s.length !== 5 || s[0]! < 1 || s[1] !== model.inChannels || s.slice(2).some((d) => d < 1)) {
        throw new UserError(
          `input '${opts.inputKey}' in '${opts.input}': shape [${s.join(', ')}] is not [N, ${model.inChannels}, D, H, W] with N, D, H, W >= 1 (the model expects ${model.inChannels} input channel(s))`,
        );
      }
      model.eval();
      const progress: { bar?: Progress } = {};
      const out = await slidingWindowInference({ data: raw.data, shape: s }, sw.roi, modelPredictor(model), {
        overlap: sw.overlap,
        mode: sw.mode,
        swBatchSize: sw.swBatchSize,
        onProgress: (done, total) => {
          progress.bar ??= createProgress({ label: 'windows', total });
          progress.bar.update(done);
        },
      });
      progress.bar?.stop();
      inputs.clear();
      data = out.data;
      shape = out.shape;
      Object.assign(meta, { roi: sw.roi.join(','), overlap: String(sw.overlap), sw_batch_size: String(sw.swBatchSize), mode: sw.mode });
    } else {
      try {
        model.checkInputShape(raw.shape);
      } catch (e) {
        if (e instanceof UXNetInputError) throw new UserError(`input '${opts.inputKey}' in '${opts.input}': ${e.message}`);
        throw e;
      }
      const x = tensor(raw.data, raw.shape);
      inputs.clear();
      const logits = noGrad(() => model.forward(x));
      x.dispose();
      data = await logits.data();
      shape = [...logits.shape];
      logits.dispose();
    }
    await writeSafetensorsFile(opts.output, [['logits', { shape, data }]], {
      producer: 'uxnet3d forward',
      backend: getBackendName(),
      network: spec.network,
      config: JSON.stringify(networkArgsSnake(spec)),
      ...meta,
    });
    return { shape };
  } finally {
    model.dispose();
  }
}

/**
 * The network config and weights file, from `-m MODEL_DIR` or from `--config` + `--weights` (one or
 * the other, so it is never ambiguous which weights ran).
 */
export async function resolveModelSource(o: {
  config?: string;
  weights?: string;
  model?: string;
}): Promise<{ config: unknown; configName: string; weights: string; fromFolder: boolean }> {
  if (o.model !== undefined) {
    if (o.config !== undefined || o.weights !== undefined) throw new UserError('give either -m MODEL_DIR or --config and --weights, not both');
    const { manifest, manifestPath, weightsPath } = await readModelFolder(o.model);
    // The flat config form the registry reads: a name with its arguments, or the legacy UX-Net object.
    const config = typeof manifest.network === 'string' ? { network: manifest.network, networkArgs: manifest.networkArgs ?? {} } : { network: manifest.network };
    return { config, configName: manifestPath, weights: weightsPath, fromFolder: true };
  }
  if (o.config === undefined || o.weights === undefined)
    throw new UserError(
      `the model is missing: give -m MODEL_DIR, or --config and --weights${o.config === undefined && o.weights !== undefined ? ' (--config is missing)' : o.weights === undefined && o.config !== undefined ? ' (--weights is missing)' : ''}`,
    );
  return { config: await readConfigFile(o.config), configName: o.config, weights: o.weights, fromFolder: false };
}

export function registerForward(program: Command): void {
  program
    .command('forward')
    .description(
      'run the network on one input tensor and write the raw logits (tensor "logits") to a safetensors file: one whole-volume pass, or MONAI 0.9.0 sliding-window inference with --roi',
    )
    .option('-m, --model <dir>', 'model folder (model.json + weights.safetensors) instead of --config and --weights')
    .option(
      '--config <file>',
      'JSON file naming the network ("network": "uxnet" | "swin_unetr" | "unetr", default uxnet) and its constructor arguments (official snake_case or camelCase), flat or under "constructor_args"',
    )
    .option('--weights <file>', 'model state dict (PyTorch keys): .safetensors, or a torch.save checkpoint .pth/.pt/.bin/.ckpt (read without executing any code)')
    .requiredOption(
      '--input <file>',
      'safetensors file holding the input volume [N, C, D, H, W] (D, H, W: multiples of 16 for UX-Net, of 32 for SwinUNETR, exactly img_size for UNETR, unless --roi is given)',
    )
    .option('--input-key <name>', 'name of the input tensor in --input', 'input')
    .requiredOption('--output <file>', 'safetensors file to write (atomically)')
    .option('--backend <name>', 'compute backend (default: the fastest available)')
    .option('--roi <D,H,W>', 'sliding-window inference with this window size (three multiples of 16); the input may then have any spatial size')
    .option('--overlap <fraction>', 'with --roi: overlap of neighbouring windows, in [0, 1) (default: 0.25, as MONAI)')
    .option('--sw-batch <n>', 'with --roi: windows per network call (default: 1, as MONAI)')
    .option('--mode <mode>', "with --roi: blending of overlapping windows, 'constant' or 'gaussian' (default: constant, as MONAI)")
    .action(async (o: ForwardOptions) => {
      const { shape } = await runForward(o);
      process.stdout.write(`wrote logits [${shape.join(', ')}] to ${o.output}\n`);
    });
}
