/**
 * Recipes that extend others: the chain is followed relative to each file, each file's top-level
 * fields replace the base's whole, and every broken chain is one line naming the files.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readRecipeFile } from '../../src/train/recipe-file.js';
import { crossvalConfigFromFlags } from '../../src/cli/commands/crossval.js';
import { trainConfigFromFlags } from '../../src/cli/commands/train.js';
import { assertUserError, ROOT, uxnet } from '../helpers/cli.js';

let dir: string;
const write = (path: string, v: unknown) => writeFile(join(dir, path), typeof v === 'string' ? v : JSON.stringify(v));

describe('training recipes: extends', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'uxnet-recipe-'));
    await mkdir(join(dir, 'variants', 'long'), { recursive: true });
    await write('base.json', {
      dataset: 'data',
      steps: 100,
      lr: 0.001,
      schedule: { type: 'cosine', warmupSteps: 50, minFactor: 0.02 },
      network: { featSize: [4, 8, 16, 32], hiddenSize: 16 },
    });
    // Paths in "extends" are relative to the file that names them, at every level.
    await write('variants/mid.json', { extends: '../base.json', lr: 0.002, schedule: { type: 'constant' } });
    await write('variants/long/top.json', { extends: '../mid.json', steps: 300 });
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('follows the chain; each file replaces whole top-level fields of its base (objects are not merged)', async () => {
    assert.deepEqual(await readRecipeFile(join(dir, 'variants', 'long', 'top.json')), {
      dataset: 'data',
      steps: 300,
      lr: 0.002,
      schedule: { type: 'constant' },
      network: { featSize: [4, 8, 16, 32], hiddenSize: 16 },
    });
    // A file without "extends" is read as it is.
    assert.deepEqual(await readRecipeFile(join(dir, 'base.json')), JSON.parse(await readFile(join(dir, 'base.json'), 'utf8')));
  });

  it('refuses cycles, missing or malformed bases and a non-string extends, naming the files', async () => {
    await write('a.json', { extends: 'b.json', steps: 1 });
    await write('b.json', { extends: 'a.json' });
    await write('self.json', { extends: './self.json' });
    await write('missing.json', { extends: 'nowhere/base.json' });
    await write('array-base.json', { extends: 'array.json' });
    await write('array.json', '[1, 2]');
    await write('bad-json-base.json', { extends: 'bad.json' });
    await write('bad.json', '{"steps": 1,');
    await write('number.json', { extends: 3 });
    const err = async (f: string) => {
      try {
        await readRecipeFile(join(dir, f));
      } catch (e) {
        assert.equal((e as Error).name, 'TrainConfigError');
        return (e as Error).message.replaceAll(dir + '/', '');
      }
      assert.fail(`${f} was accepted`);
    };
    assert.equal(await err('a.json'), `config file 'a.json' extends itself: a.json -> b.json -> a.json`);
    assert.equal(await err('self.json'), `config file 'self.json' extends itself: self.json -> self.json`);
    assert.equal(await err('missing.json'), `cannot read config file 'nowhere/base.json' (extended by 'missing.json'): ENOENT`);
    assert.equal(await err('array-base.json'), `config file 'array.json' (extended by 'array-base.json') must hold a JSON object`);
    assert.match(await err('bad-json-base.json'), /^config file 'bad\.json' \(extended by 'bad-json-base\.json'\) is not valid JSON: /);
    assert.equal(await err('number.json'), `config file 'number.json': "extends" must be the path of another recipe, got 3`);
  });

  it('uxnet train and uxnet crossval resolve it; flags still override; a broken chain is one line', async () => {
    await write('data-recipe.json', { extends: 'variants/long/top.json', dataset: join(ROOT, 'datasets', 'msd-hippocampus') });
    const flags = { config: join(dir, 'data-recipe.json'), output: join(dir, 'run') };
    const t = await trainConfigFromFlags({ ...flags, preset: 'auto' });
    assert.deepEqual([t.steps, t.lr, t.schedule], [300, 0.002, { type: 'constant' }]);
    const c = await crossvalConfigFromFlags({ ...flags, steps: 7 });
    assert.deepEqual([c.steps, c.lr, c.network], [7, 0.002, { featSize: [4, 8, 16, 32], hiddenSize: 16 }]);
    assertUserError(
      uxnet(['train', '--config', join(dir, 'missing.json'), '-o', join(dir, 'x')]),
      /^uxnet: cannot read config file '.*nowhere[/\\]base\.json' \(extended by '.*missing\.json'\): ENOENT$/,
    );
    assertUserError(uxnet(['crossval', '--config', join(dir, 'a.json'), '-o', join(dir, 'y')]), /^uxnet: config file '.*a\.json' extends itself: /);
  });
});
