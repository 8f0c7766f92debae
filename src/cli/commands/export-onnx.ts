import { readFile, rename, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { exportOnnx, ONNX_OPSET } from '../../io/onnx.js';
import { SafetensorsError, type RawTensor } from '../../io/safetensors.js';
import { PthError } from '../../io/pth.js';
import { readWeightsFile, WeightsFormatError } from '../../io/weights.js';
import { UXNetConfigError } from '../../models/config.js';
import { createNetwork, describeNetwork, networkFromConfig, type NetworkSpec } from '../../models/registry.js';
import { specChannels } from '../../infer/model-manifest.js';
import { StateDictError } from '../../nn/module.js';
import '../../backends/index.js';
import { UserError } from '../errors.js';

export interface ExportOnnxOptions {
  config: string;
  weights: string;
  output: string;
}

async function readConfig(path: string): Promise<NetworkSpec> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read config file '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UserError(`config file '${path}' is not valid JSON: ${(e as Error).message}`);
  }
  try {
    return networkFromConfig(raw);
  } catch (e) {
    if (e instanceof UXNetConfigError) throw new UserError(`config file '${path}': ${e.message}`);
    throw e;
  }
}

/**
 * `uxnet export-onnx`: writes the model (config + weights, safetensors or a torch.save checkpoint) as an ONNX file, opset 17, with
 * symbolic batch and spatial dimensions (input "input" [N, inChans, D, H, W] → output "logits").
 */
export async function exportOnnxCommand(opts: ExportOnnxOptions): Promise<{ bytes: number; nodes?: number }> {
  const spec = await readConfig(opts.config);
  const { inChannels, outChannels } = specChannels(spec);
  // The trace input: the network's own size when it has one, else the smallest valid volume.
  const probe = createNetwork(spec, { meta: true });
  // SwinUNETR exports for its img_size (any multiple of 32 runs; 32³ alone has a one-voxel bottleneck).
  const swinSize = spec.network === 'swin_unetr' ? (spec.args.imgSize as number[]) : null;
  const traceSpatial = probe.fixedInputSize ?? (swinSize && swinSize.some((d) => d > 32) ? swinSize : spec.network === 'swin_unetr' ? [32, 32, 64] : [32, 32, 32]);
  let weights: Map<string, RawTensor>;
  try {
    weights = await readWeightsFile(opts.weights);
  } catch (e) {
    if (e instanceof SafetensorsError || e instanceof PthError || e instanceof WeightsFormatError) throw new UserError(`weights file: ${e.message}`);
    const code = (e as NodeJS.ErrnoException).code;
    if (code) throw new UserError(`cannot read weights file '${opts.weights}': ${code}`);
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
    if (e instanceof StateDictError) throw new UserError(`weights file '${opts.weights}' does not fit the config: ${e.message}`);
    throw e;
  }
  const tmp = `${opts.output}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, opts.output);
  } catch (e) {
    throw new UserError(`cannot write output file '${opts.output}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return { bytes: bytes.length };
}

export function registerExportOnnx(program: Command): void {
  program
    .command('export-onnx')
    .description(`export the model as ONNX (opset ${ONNX_OPSET}; input "input", output "logits"): UX-Net with dynamic batch and spatial dims, SwinUNETR and UNETR for one size (img_size, batch 1)`)
    .requiredOption('--config <file>', 'JSON file naming the network ("network": "uxnet" | "swin_unetr" | "unetr", default uxnet) and its constructor arguments (official snake_case or camelCase), flat or under "constructor_args"')
    .requiredOption('--weights <file>', 'model state dict (PyTorch keys): .safetensors, or a torch.save checkpoint .pth/.pt/.bin/.ckpt (read without executing any code)')
    .requiredOption('-o, --output <file>', 'ONNX file to write (atomically)')
    .action(async (opts: ExportOnnxOptions) => {
      const r = await exportOnnxCommand(opts);
      process.stdout.write(`wrote ${opts.output} (${(r.bytes / 1e6).toFixed(1)} MB, opset ${ONNX_OPSET})\n`);
    });
}
