import type { Command } from 'commander';
import { exportOnnx, ONNX_OPSET } from '../../io/onnx.js';
import { type RawTensor } from '../../io/safetensors.js';
import { writeFileAtomic } from '../../io/fs.js';
import { readWeightsFile } from '../../io/weights.js';
import { InputError } from '../../engine/errors.js';
import { UXNetConfigError } from '../../models/config.js';
import { createNetwork, describeNetwork, networkFromConfig, type NetworkSpec } from '../../models/registry.js';
import { specChannels } from '../../infer/model-manifest.js';
import { StateDictError } from '../../nn/module.js';
import '../../backends/index.js';
import { UserError } from '../errors.js';
import { resolveModelSource } from './forward.js';
import { checkOutputFile } from '../outputs.js';

export interface ExportOnnxOptions {
  config?: string;
  weights?: string;
  /** A model folder instead of config + weights. */
  model?: string;
  output: string;
}

function normalizeConfig(raw: unknown, name: string): NetworkSpec {
  try {
    return networkFromConfig(raw);
  } catch (e) {
    if (e instanceof UXNetConfigError) throw new UserError(`config file '${name}': ${e.message}`);
    throw e;
  }
}

/**
 * `uxnet export-onnx`: writes the model (config + weights, safetensors or a torch.save checkpoint) as an ONNX file, opset 17, with
 * symbolic batch and spatial dimensions (input "input" [N, inChans, D, H, W] → output "logits").
 */
export async function exportOnnxCommand(opts: ExportOnnxOptions): Promise<{ bytes: number; nodes?: number }> {
  if (!/\.onnx$/i.test(opts.output)) throw new UserError(`output '${opts.output}' must end in .onnx`);
  const src = await resolveModelSource(opts);
  await checkOutputFile(opts.output, [src.weights]);
  const spec = normalizeConfig(src.config, src.configName);
  const { inChannels, outChannels } = specChannels(spec);
  // The trace input: the network's own size when it has one, else the smallest valid volume.
  const probe = createNetwork(spec, { meta: true });
  // SwinUNETR exports for its img_size (any multiple of 32 runs; 32³ alone has a one-voxel bottleneck).
  const swinSize = spec.network === 'swin_unetr' ? (spec.args.imgSize as number[]) : null;
  const traceSpatial = probe.fixedInputSize ?? (swinSize && swinSize.some((d) => d > 32) ? swinSize : spec.network === 'swin_unetr' ? [32, 32, 64] : [32, 32, 32]);
  let weights: Map<string, RawTensor>;
  try {
    weights = await readWeightsFile(src.weights);
  } catch (e) {
    if (e instanceof InputError) throw new UserError(`weights file: ${e.message}`);
    const code = (e as NodeJS.ErrnoException).code;
    if (code) throw new UserError(`cannot read weights file '${src.weights}': ${code}`);
    throw e;
  }
  let bytes: Uint8Array;
  try {
    bytes = exportOnnx({
      build: () => {
        const m = createNetwork(spec);
        m.loadStateDict(weights);
        // Inference graph: dropout and BatchNorm in eval mode (TransBTS, nnFormer).
        m.eval();
        return m;
      },
      inChans: inChannels,
      outChans: outChannels,
      traceSpatial: traceSpatial as [number, number, number],
      // SwinUNETR's window partition and UNETR's token grid depend on the volume size: one fixed size.
      staticShape: spec.network !== 'uxnet',
      docString: `${describeNetwork(spec)} ${JSON.stringify(spec.args)}`,
    });
  } catch (e) {
    if (e instanceof StateDictError) throw new UserError(`weights file '${src.weights}' does not fit the config${src.fromFolder ? ` in ${src.configName}` : ''}: ${e.message}`);
    throw e;
  }
  await writeFileAtomic(opts.output, bytes);
  return { bytes: bytes.length };
}

export function registerExportOnnx(program: Command): void {
  program
    .command('export-onnx')
    .description(
      `export the model as ONNX (opset ${ONNX_OPSET}; input "input", output "logits"): UX-Net with dynamic batch and spatial dims, SwinUNETR and UNETR for one size (img_size, batch 1)`,
    )
    .option('-m, --model <dir>', 'model folder (model.json + weights.safetensors) instead of --config and --weights')
    .option(
      '--config <file>',
      'JSON file naming the network ("network": "uxnet" | "swin_unetr" | "unetr", default uxnet) and its constructor arguments (official snake_case or camelCase), flat or under "constructor_args"',
    )
    .option('--weights <file>', 'model state dict (PyTorch keys): .safetensors, or a torch.save checkpoint .pth/.pt/.bin/.ckpt (read without executing any code)')
    .requiredOption('-o, --output <file>', 'ONNX file to write (atomically)')
    .action(async (opts: ExportOnnxOptions) => {
      const r = await exportOnnxCommand(opts);
      process.stdout.write(`wrote ${opts.output} (${(r.bytes / 1e6).toFixed(1)} MB, opset ${ONNX_OPSET})\n`);
    });
}
