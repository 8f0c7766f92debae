import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import '../../backends/index.js';
import { tensor } from '../../engine/creation.js';
import { getBackendName, listBackends, setBackend } from '../../engine/registry.js';
import { noGrad } from '../../engine/scope.js';
import { readSafetensorsFile, writeSafetensorsFile, SafetensorsError, type RawTensor } from '../../io/safetensors.js';
import { UXNetConfigError } from '../../models/config.js';
import { UXNet, UXNetInputError } from '../../models/uxnet.js';
import { StateDictError } from '../../nn/module.js';
import { UserError } from '../errors.js';

export interface ForwardOptions {
  config: string;
  weights: string;
  input: string;
  inputKey: string;
  output: string;
  backend?: string;
}

async function readConfig(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read config file '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(`config file '${path}' is not valid JSON: ${(e as Error).message}`);
  }
}

async function readTensors(path: string, what: string): Promise<Map<string, RawTensor>> {
  try {
    return (await readSafetensorsFile(path)).tensors;
  } catch (e) {
    if (e instanceof SafetensorsError) throw new UserError(`${what} file: ${e.message}`);
    throw e;
  }
}

/**
 * `uxnet forward`: one whole-volume forward pass. Reads the constructor options (camelCase or the
 * official snake_case) from a JSON file, the weights from safetensors (PyTorch state-dict keys), and
 * one input tensor [N, inChans, D, H, W]; writes the raw logits as tensor `logits`, atomically.
 */
export async function runForward(opts: ForwardOptions): Promise<{ shape: number[] }> {
  if (opts.backend !== undefined) {
    if (!listBackends().includes(opts.backend)) throw new UserError(`unknown backend '${opts.backend}' (available: ${listBackends().join(', ')})`);
    setBackend(opts.backend);
  }
  const rawConfig = await readConfig(opts.config);
  let model: UXNet;
  try {
    // The config is validated before anything is allocated; the random init is overwritten right away.
    model = new UXNet(rawConfig as object);
  } catch (e) {
    if (e instanceof UXNetConfigError) throw new UserError(`config file '${opts.config}': ${e.message}`);
    throw e;
  }
  try {
    const weights = await readTensors(opts.weights, 'weights');
    try {
      model.loadStateDict(weights);
    } catch (e) {
      if (e instanceof StateDictError) throw new UserError(`weights file '${opts.weights}' does not fit the config: ${e.message}`);
      throw e;
    }
    weights.clear();
    const inputs = await readTensors(opts.input, 'input');
    const raw = inputs.get(opts.inputKey);
    if (!raw) throw new UserError(`input file '${opts.input}' has no tensor '${opts.inputKey}' (it has: ${[...inputs.keys()].join(', ') || 'none'}); choose one with --input-key`);
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
    const data = await logits.data();
    const shape = [...logits.shape];
    logits.dispose();
    try {
      await writeSafetensorsFile(opts.output, [['logits', { shape, data }]], {
        producer: 'uxnet3d forward',
        backend: getBackendName(),
        config: JSON.stringify(model.config),
      });
    } catch (e) {
      throw new UserError(`cannot write output file '${opts.output}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    return { shape };
  } finally {
    model.dispose();
  }
}

export function registerForward(program: Command): void {
  program
    .command('forward')
    .description('run one whole-volume forward pass and write the raw logits (tensor "logits") to a safetensors file')
    .requiredOption('--config <file>', 'JSON file with the UX-Net constructor options (camelCase or official snake_case)')
    .requiredOption('--weights <file>', 'safetensors file with the model state dict (PyTorch keys)')
    .requiredOption('--input <file>', 'safetensors file holding the input volume [N, C, D, H, W]')
    .option('--input-key <name>', 'name of the input tensor in --input', 'input')
    .requiredOption('--output <file>', 'safetensors file to write (atomically)')
    .option('--backend <name>', 'compute backend (default: the fastest available)')
    .action(async (o: ForwardOptions) => {
      const { shape } = await runForward(o);
      process.stdout.write(`wrote logits [${shape.join(', ')}] to ${o.output}\n`);
    });
}
