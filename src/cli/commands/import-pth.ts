/**
 * `uxnet import-pth official.pth -o weights.safetensors [--config cfg.json]`: converts a PyTorch
 * checkpoint (torch.save zip; read by the restricted unpickler, so nothing in it is executed) to a
 * float32 safetensors file with the checkpoint's key order. Wrappers ({state_dict: ...}, {model: ...})
 * and DataParallel `module.` prefixes are removed by readPth. With --config the keys and shapes are
 * checked against the model the config describes, and nothing is written unless they match exactly.
 */
import type { Command } from 'commander';
import { PthError, readPth } from '../../io/pth.js';
import { writeSafetensorsFile, type RawTensorMap } from '../../io/safetensors.js';
import { UXNetConfigError } from '../../models/config.js';
import { networkFromConfig, networkStateShapes } from '../../models/registry.js';
import { UserError } from '../errors.js';
import { readConfigFile } from '../config-file.js';
import { checkOutputFile } from '../outputs.js';

export interface ImportPthOptions {
  checkpoint: string;
  output: string;
  config?: string;
  /** Where the per-key report of a --config mismatch goes (tests). */
  err?: NodeJS.WritableStream;
}

export interface ImportPthResult {
  tensors: number;
  parameters: number;
  /** Tensors stored in another dtype and converted to float32, by dtype. */
  converted: Record<string, number>;
}

const fmtShape = (s: readonly number[]) => `[${s.join(', ')}]`;

/** Missing, unexpected and mismatched keys of `weights` against the parameters of `config`. */
export function compareToConfig(weights: RawTensorMap, expected: [string, readonly number[]][]): { missing: string[]; unexpected: string[]; mismatched: string[] } {
  const want = new Map(expected);
  const missing = expected.filter(([k]) => !weights.has(k)).map(([k, s]) => `${k} ${fmtShape(s)}`);
  const unexpected = [...weights].filter(([k]) => !want.has(k)).map(([k, t]) => `${k} ${fmtShape(t.shape)}`);
  const mismatched: string[] = [];
  for (const [k, t] of weights) {
    const s = want.get(k);
    if (s && (s.length !== t.shape.length || s.some((d, i) => d !== t.shape[i]))) mismatched.push(`${k} expected ${fmtShape(s)} got ${fmtShape(t.shape)}`);
  }
  return { missing, unexpected, mismatched };
}

export async function runImportPth(opts: ImportPthOptions): Promise<ImportPthResult> {
  const err = opts.err ?? process.stderr;
  if (!/\.safetensors$/i.test(opts.output)) throw new UserError(`output '${opts.output}' must end in .safetensors (that is how weight readers recognise the format)`);
  await checkOutputFile(opts.output, [opts.checkpoint, opts.config]);
  // The config is checked before the (possibly large) checkpoint is read.
  let expected: [string, readonly number[]][] | undefined;
  if (opts.config !== undefined) {
    const raw = await readConfigFile(opts.config);
    try {
      expected = networkStateShapes(networkFromConfig(raw));
    } catch (e) {
      if (e instanceof UXNetConfigError) throw new UserError(`config file '${opts.config}': ${e.message}`);
      throw e;
    }
  }
  let weights: RawTensorMap;
  try {
    weights = await readPth(opts.checkpoint);
  } catch (e) {
    if (e instanceof PthError) {
      const hint = /\.safetensors$/i.test(opts.checkpoint) ? ' (it is already safetensors: use it directly)' : '';
      throw new UserError(`checkpoint: ${e.message}${hint}`);
    }
    throw e;
  }
  if (!weights.size) throw new UserError(`checkpoint '${opts.checkpoint}' holds no tensors`);
  if (expected) {
    const { missing, unexpected, mismatched } = compareToConfig(weights, expected);
    if (missing.length || unexpected.length || mismatched.length) {
      // Every key by name, one per line; the last line (the error) sums up.
      for (const m of mismatched) err.write(`  shape mismatch: ${m}\n`);
      for (const m of missing) err.write(`  missing: ${m}\n`);
      for (const u of unexpected) err.write(`  unexpected: ${u}\n`);
      const parts = [
        mismatched.length ? `${mismatched.length} shape mismatch(es)` : '',
        missing.length ? `${missing.length} missing key(s)` : '',
        unexpected.length ? `${unexpected.length} unexpected key(s)` : '',
      ].filter(Boolean);
      throw new UserError(`checkpoint '${opts.checkpoint}' does not match config '${opts.config}': ${parts.join(', ')} (listed above); nothing written`);
    }
  }
  let parameters = 0;
  const converted: Record<string, number> = {};
  for (const t of weights.values()) {
    parameters += t.data.length;
    if (t.dtype !== 'F32') converted[t.dtype] = (converted[t.dtype] ?? 0) + 1;
  }
  try {
    await writeSafetensorsFile(opts.output, weights, { format: 'pt', producer: 'uxnet3d import-pth' });
  } catch (e) {
    throw new UserError(`cannot write output file '${opts.output}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return { tensors: weights.size, parameters, converted };
}

export function registerImportPth(program: Command): void {
  program
    .command('import-pth')
    .description(
      'convert a PyTorch checkpoint (torch.save, e.g. the official 3D UX-Net .pth) to a float32 safetensors file, keeping the key order; nothing in the checkpoint is executed',
    )
    .argument('<checkpoint>', 'torch.save checkpoint (.pth/.pt/.bin/.ckpt); a {"state_dict": ...}-style wrapper and DataParallel "module." prefixes are handled')
    .requiredOption('-o, --output <file>', 'safetensors file to write (atomically)')
    .option('--config <file>', 'UX-Net config JSON (camelCase or official snake_case): check every key and shape against it and write nothing unless all match')
    .action(async (checkpoint: string, o: { output: string; config?: string }) => {
      const r = await runImportPth({ checkpoint, ...o });
      const conv = Object.entries(r.converted)
        .map(([d, n]) => `${n} ${d}`)
        .join(', ');
      process.stdout.write(
        `wrote ${r.tensors} tensors, ${r.parameters.toLocaleString('en-US')} parameters, to ${o.output}${conv ? ` (converted to F32: ${conv})` : ''}${o.config ? `; keys and shapes match ${o.config}` : ''}\n`,
      );
    });
}
