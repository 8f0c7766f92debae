/**
 * `uxnet ensemble -o OUT SOURCE...`: an ensemble folder made of model folders and ensemble folders
 * (flattened), e.g. two crossval runs' fold models, or networks of different kinds. Every source is
 * loaded and the members checked against each other before anything is written; the folder is built
 * beside OUT and renamed into place, so a failure leaves no half-written folder and an existing OUT
 * (replaced only with --force) stays as it was until the new one is complete.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { isInside } from '../../io/fs.js';
import { ensembleMembersOf, writeEnsembleFolder } from '../../infer/ensemble.js';
import { UserError } from '../errors.js';
import { checkWritableDir } from '../outputs.js';

export interface EnsembleCliOptions {
  output: string;
  name?: string;
  description?: string;
  /** true/false: the ensemble's inference.tta; undefined: kept from the sources */
  tta?: boolean;
  force?: boolean;
}

export async function runEnsembleCli(sources: string[], o: EnsembleCliOptions, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const dir = resolve(o.output);
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new UserError(`output '${o.output}' is a file, not a folder`);
    if (readdirSync(dir).length && !o.force)
      throw new UserError(`output '${o.output}' already exists; pass --force to replace it once the new ensemble is complete, or choose another folder`);
  }
  for (const s of sources) {
    if (isInside(dir, s)) throw new UserError(`source '${s}' is inside the output folder '${o.output}'; write the ensemble elsewhere`);
    if (isInside(s, dir)) throw new UserError(`output '${o.output}' is inside the source '${s}'; write the ensemble elsewhere`);
  }
  for (const s of sources) {
    // a crossval run folder is not a model folder; say which of its folders are
    if (!existsSync(join(s, 'model.json')) && existsSync(join(s, 'crossval.json')))
      throw new UserError(
        `'${s}' is a crossval run folder, not a model folder: give ${existsSync(join(s, 'ensemble', 'model.json')) ? `'${join(s, 'ensemble')}' (its fold ensemble) or ` : ''}a fold's model, '${join(s, 'fold_0', 'model')}'`,
      );
  }
  await checkWritableDir(dirname(dir), 'output folder');
  const { members, labels, tta: sourcesTta } = await ensembleMembersOf(sources);
  const tta = o.tta ?? sourcesTta;
  const name = o.name ?? basename(dir);
  const fresh = `${dir}.tmp-${process.pid}`;
  await rm(fresh, { recursive: true, force: true });
  try {
    await mkdir(dirname(dir), { recursive: true });
    await writeEnsembleFolder(fresh, members, {
      name,
      description: o.description ?? `ensemble of ${sources.join(', ')}`,
      ...(tta === undefined ? {} : { inference: { tta } }),
    });
    if (existsSync(dir)) {
      const old = `${dir}.old-${process.pid}`;
      await rename(dir, old);
      await rename(fresh, dir);
      await rm(old, { recursive: true, force: true });
    } else await rename(fresh, dir);
  } catch (e) {
    await rm(fresh, { recursive: true, force: true });
    throw e;
  }
  out.write(
    `wrote ${o.output}: ensemble '${name}' of ${members.length} members (${members.map((m) => m.name).join(', ')}), labels ${Object.values(labels).join(', ')}; ${
      tta === undefined
        ? "no ensemble-wide mirroring default (each member's model.json decides; predict --tta mirrors)"
        : tta
          ? 'mirroring TTA by default (predict --no-tta skips it)'
          : 'no mirroring TTA by default (predict --tta mirrors)'
    }\n`,
  );
}

export function registerEnsemble(program: Command): void {
  program
    .command('ensemble')
    .description(
      "an ensemble folder from model folders and ensemble folders (whose members it takes): `uxnet predict -m OUT` averages the members' softmax probabilities; members may be different networks and recipes",
    )
    .argument('<sources...>', "model folders (a run's RUN/model, a crossval fold's model) and ensemble folders (e.g. models/hippocampus, RUN/ensemble)")
    .requiredOption('-o, --output <dir>', 'the ensemble folder to write (members are copied into it, so it stands alone)')
    .option('--name <name>', "the ensemble's name in model.json (default: the folder's name)")
    .option('--description <text>', 'model.json description (default: the sources)')
    .option('--tta', 'make mirroring test-time augmentation the default (model.json inference.tta; default: on when a source mirrors by default)')
    .option('--no-tta', 'make no mirroring the default')
    .option('--force', 'replace an existing output folder (only once the new ensemble is complete)')
    .action(async (sources: string[], o: EnsembleCliOptions) => {
      await runEnsembleCli(sources, o);
    });
}
