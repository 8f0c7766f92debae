/**
 * README doc-test: every README block marked `<!-- doctest: ... -->` runs as written, so the examples
 * cannot rot. The marker comment sits on the line before the fenced block:
 *
 *   <!-- doctest: run -->                               run the block, it must exit 0
 *   <!-- doctest: run; replace "--steps 60" "--steps 2" -->   substitute first (small step counts)
 *   <!-- doctest: run; expect "3 case\(s\) evaluated" -->     its output must match this regex
 *
 * ```ts blocks are transpiled by TypeScript and run as ES modules that import 'uxnet3d' (this
 * checkout); shell blocks run in bash, `$ ` lines only when the block is a transcript. All blocks run
 * in order in one scratch folder, with `uxnet` and `npx uxnet` resolving to this checkout's CLI, so
 * nothing is written into the checkout. That folder links this checkout's models/ and presets/, and
 * holds SMALL DATA in place of the real: datasets/msd-hippocampus has 8 of the 208 cases (5 training
 * cases of fold 0 and 3 of its validation cases, with a dataset.json listing only those), and
 * recipes/hippocampus/split-fold0.json splits those 8 the same way. Together with the `replace`
 * directives (step counts) that keeps the whole README under a couple of minutes.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { ROOT } from '../helpers/cli.js';

export interface DocBlock {
  line: number;
  lang: string;
  code: string;
  replace: [string, string][];
  expect: RegExp[];
}

/** The marked blocks of a Markdown text, with their directives. */
export function markedBlocks(md: string): DocBlock[] {
  const lines = md.split('\n');
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^<!-- doctest: (.*) -->$/.exec(lines[i]!.trim());
    if (!m) continue;
    const fence = /^```(\w*)$/.exec(lines[i + 1] ?? '');
    if (!fence) throw new Error(`README line ${i + 1}: a doctest marker must be followed by a fenced block`);
    const end = lines.indexOf('```', i + 2);
    if (end < 0) throw new Error(`README line ${i + 2}: unclosed block`);
    const parts = m[1]!.split(';').map((p) => p.trim());
    if (parts[0] !== 'run') throw new Error(`README line ${i + 1}: unknown doctest directive '${parts[0]}'`);
    const replace: [string, string][] = [];
    const expect: RegExp[] = [];
    for (const p of parts.slice(1)) {
      const r = /^replace "([^"]*)" "([^"]*)"$/.exec(p);
      const e = /^expect "([^"]*)"$/.exec(p);
      if (r) replace.push([r[1]!, r[2]!]);
      else if (e) expect.push(new RegExp(e[1]!, 'm'));
      else throw new Error(`README line ${i + 1}: cannot parse '${p}'`);
    }
    blocks.push({ line: i + 2, lang: fence[1]!, code: lines.slice(i + 2, end).join('\n'), replace, expect });
    i = end;
  }
  return blocks;
}

/** A transcript's commands (`$ ` lines and their `\` continuations), else the block as it is. */
export function shellScript(code: string): string {
  const lines = code.split('\n');
  if (!lines.some((l) => l.startsWith('$ '))) return code;
  const out: string[] = [];
  let cont = false;
  for (const l of lines) {
    if (l.startsWith('$ ')) out.push(l.slice(2));
    else if (cont) out.push(l);
    else continue;
    cont = l.trimEnd().endsWith('\\');
  }
  return out.join('\n');
}

describe('README doc-test parsing', () => {
  it('reads directives and runs only the commands of a transcript', () => {
    const md = [
      'text',
      '<!-- doctest: run; replace "--steps 60" "--steps 2"; expect "^done" -->',
      '```',
      '$ uxnet train -o run \\',
      '    --steps 60',
      'train 60/60',
      '$ ls run',
      'model',
      '```',
      '```',
      'not marked',
      '```',
    ].join('\n');
    const blocks = markedBlocks(md);
    assert.equal(blocks.length, 1);
    assert.deepEqual(blocks[0]!.replace, [['--steps 60', '--steps 2']]);
    assert.deepEqual(blocks[0]!.expect.map(String), ['/^done/m']);
    assert.equal(blocks[0]!.line, 3);
    assert.equal(shellScript(blocks[0]!.code), 'uxnet train -o run \\\n    --steps 60\nls run');
    assert.equal(shellScript('uxnet demo\nuxnet predict'), 'uxnet demo\nuxnet predict', 'a plain block runs as it is');
    assert.throws(() => markedBlocks('<!-- doctest: skip -->\n```\nx\n```'), /unknown doctest directive 'skip'/);
  });
});

describe('README examples run as written', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const blocks = markedBlocks(readme);
  let work: string;
  const env: NodeJS.ProcessEnv = { ...process.env, UXNET_QUIET: '1' };

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'uxnet-readme-'));
    for (const d of ['models', 'presets']) symlinkSync(join(ROOT, d), join(work, d));
    // Small data: a subset of MSD Hippocampus, split as fold 0 splits it.
    const fold0 = JSON.parse(readFileSync(join(ROOT, 'recipes', 'hippocampus', 'split-fold0.json'), 'utf8')) as { train: string[]; val: string[] };
    const split = { train: fold0.train.slice(0, 5), val: ['hippocampus_053', 'hippocampus_058', 'hippocampus_065'] };
    assert.ok(split.val.every((id) => fold0.val.includes(id)));
    const src = join(ROOT, 'datasets', 'msd-hippocampus');
    const dst = join(work, 'datasets', 'msd-hippocampus');
    for (const sub of ['imagesTr', 'labelsTr']) {
      mkdirSync(join(dst, sub), { recursive: true });
      for (const id of [...split.train, ...split.val]) copyFileSync(join(src, sub, `${id}.nii.gz`), join(dst, sub, `${id}.nii.gz`));
    }
    const ds = JSON.parse(readFileSync(join(src, 'dataset.json'), 'utf8')) as { cases: { id: string }[] } & Record<string, unknown>;
    const keep = new Set([...split.train, ...split.val]);
    ds.cases = ds.cases.filter((c) => keep.has(c.id));
    assert.equal(ds.cases.length, 8);
    writeFileSync(join(dst, 'dataset.json'), JSON.stringify({ ...ds, numCases: 8 }));
    mkdirSync(join(work, 'recipes', 'hippocampus'), { recursive: true });
    for (const f of ['preset.json', 'train.json']) copyFileSync(join(ROOT, 'recipes', 'hippocampus', f), join(work, 'recipes', 'hippocampus', f));
    writeFileSync(join(work, 'recipes', 'hippocampus', 'split-fold0.json'), JSON.stringify(split));
    mkdirSync(join(work, 'node_modules', '.bin'), { recursive: true });
    symlinkSync(ROOT, join(work, 'node_modules', 'uxnet3d'));
    symlinkSync(join(ROOT, 'bin', 'uxnet.js'), join(work, 'node_modules', '.bin', 'uxnet'));
    writeFileSync(join(work, 'package.json'), JSON.stringify({ name: 'readme-doctest', private: true, type: 'module' }));
    env.PATH = `${join(work, 'node_modules', '.bin')}:${process.env.PATH}`;
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it('marks the quick start in code, the command-line examples and the walk-through', () => {
    assert.ok(
      blocks.some((b) => b.lang === 'ts' && /models\/hippocampus/.test(b.code)),
      'the quick start in code runs with the bundled model',
    );
    assert.ok(
      blocks.some((b) => /uxnet predict -i ts -o preds/.test(b.code) && /uxnet evaluate preds gt/.test(b.code)),
      'the walk-through',
    );
    // Never anything that writes into the bundled model.
    for (const b of blocks) assert.doesNotMatch(b.code, /--export-model models\/hippocampus/);
  });

  for (const [k, b] of markedBlocks(readFileSync(join(ROOT, 'README.md'), 'utf8')).entries()) {
    it(`block ${k + 1} (README line ${b.line}, ${b.lang || 'shell'})`, () => {
      let code = b.code;
      for (const [from, to] of b.replace) {
        assert.ok(code.includes(from), `replace: "${from}" is not in the block`);
        code = code.split(from).join(to);
      }
      let r;
      if (b.lang === 'ts') {
        const js = ts.transpileModule(code, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
        const file = join(work, `block-${k + 1}.mjs`);
        writeFileSync(file, js);
        r = spawnSync(process.execPath, [file], { cwd: work, env, encoding: 'utf8', timeout: 300_000 });
      } else {
        r = spawnSync('bash', ['-e', '-o', 'pipefail', '-c', shellScript(code)], { cwd: work, env, encoding: 'utf8', timeout: 300_000 });
      }
      assert.equal(r.status, 0, `README line ${b.line} failed:\n${r.stdout}\n${r.stderr}`);
      for (const e of b.expect) assert.match(r.stdout + r.stderr, e);
    });
  }
});
