import type { Command } from 'commander';
import { exportOnnx, ONNX_OPSET } from '../../io/onnx.js';
import { writeFileAtomic, type RawTensor } from '../../io/safetensors.js';
import { readWeightsFile } from '../../io/weights.js';
import { InputError } from '../../engine/errors.js';
import { normalizeUXNetConfig, UXNetConfigError, type UXNetConfig } from '../../models/config.js';
import { UXNet } from '../../models/uxnet.js';
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

function normalizeConfig(raw: unknown, name: string): UXNetConfig {
  try {
    return normalizeUXNetConfig(raw);
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
  const config = normalizeConfig(src.config, src.configName);
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
        const m = new UXNet(config);
        m.loadStateDict(weights);
        return m;
      },
      inChans: config.inChans,
      outChans: config.outChans,
      traceSpatial: [32, 32, 32],
      docString: `3D UX-Net ${JSON.stringify(config)}`,
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
    .description(`export the model as ONNX (opset ${ONNX_OPSET}, dynamic batch and spatial dims; input "input", output "logits")`)
    .option('-m, --model <dir>', 'model folder (model.json + weights.safetensors) instead of --config and --weights')
    .option('--config <file>', 'JSON file with the UX-Net constructor options (camelCase or official snake_case)')
    .option('--weights <file>', 'model state dict (PyTorch keys): .safetensors, or a torch.save checkpoint .pth/.pt/.bin/.ckpt (read without executing any code)')
    .requiredOption('-o, --output <file>', 'ONNX file to write (atomically)')
    .action(async (opts: ExportOnnxOptions) => {
      const r = await exportOnnxCommand(opts);
      process.stdout.write(`wrote ${opts.output} (${(r.bytes / 1e6).toFixed(1)} MB, opset ${ONNX_OPSET})\n`);
    });
}
