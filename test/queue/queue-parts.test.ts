/**
 * The queue's pure parts, without Redis: URL parsing and redaction, deterministic job ids, --root
 * confinement (including links), payload validation, and the command's one-line user errors.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRedisUrl, redact } from '../../src/queue/redis-url.js';
import { createHash } from 'node:crypto';
import { canonicalJson, crossvalFoldJobId, crossvalSummaryJobId, modelDigest, predictJobId, trainJobId } from '../../src/queue/job-id.js';
import { confine, realPathOf, resolveRoots } from '../../src/queue/confine.js';
import { QueueConfigError, RootRefusal } from '../../src/queue/errors.js';
import { validatePredictJob, validateTrainJob, validateTrainQueueJob, type CrossvalFoldJobData, type CrossvalSummaryJobData, type PredictJobData } from '../../src/queue/schema.js';
import { assertUserError, uxnet } from '../helpers/cli.js';

describe('queue: Redis URLs', () => {
  it('hides the password in what it displays and lists it, raw and decoded, as a secret', () => {
    const t = parseRedisUrl('rediss://alice:p%40ss%25w@redis.example:6380/2');
    assert.equal(t.display, 'rediss://alice:***@redis.example:6380/2');
    assert.equal(t.tls, true);
    assert.deepEqual(t.secrets, ['p%40ss%25w', 'p@ss%w']);
    assert.equal(redact('auth p@ss%w failed for p%40ss%25w', t.secrets), 'auth *** failed for ***');
    const plain = parseRedisUrl('redis://127.0.0.1:6379');
    assert.equal(plain.display, 'redis://127.0.0.1:6379');
    assert.deepEqual(plain.secrets, []);
    assert.equal(parseRedisUrl('redis://:pw@h:1').display, 'redis://:***@h:1');
  });

  it('rejects other schemes, unparsable URLs and unescaped passwords without echoing them', () => {
    assert.throws(
      () => parseRedisUrl('http://h:1'),
      (e: Error) => e instanceof QueueConfigError && /redis:\/\/ or rediss:\/\//.test(e.message),
    );
    assert.throws(
      () => parseRedisUrl('redis://:top secret@'),
      (e: Error) => e instanceof QueueConfigError && !e.message.includes('top secret'),
    );
    assert.throws(
      () => parseRedisUrl('redis://:50%off@h:1'),
      (e: Error) => /percent-encoded/.test(e.message) && !e.message.includes('50%off'),
    );
    assert.throws(() => parseRedisUrl(undefined), /UXNET_REDIS_URL/);
  });
});

describe('queue: job ids', () => {
  const job: PredictJobData = {
    kind: 'predict',
    case: 'hippocampus_001',
    input: '/data/in/hippocampus_001.nii.gz',
    output: '/data/out/hippocampus_001.nii.gz',
    model: '/models/h',
    modelDigest: 'a'.repeat(64),
    options: { tta: false, fast: false },
  };

  it('are a hash of case, paths, model content and options, independent of key order', () => {
    const id = predictJobId(job);
    assert.match(id, /^predict-hippocampus_001-[0-9a-f]{20}$/);
    const reordered = JSON.parse(
      JSON.stringify({ options: job.options, modelDigest: job.modelDigest, model: job.model, output: job.output, input: job.input, case: job.case, kind: job.kind }),
    );
    assert.equal(predictJobId(reordered), id);
    assert.notEqual(predictJobId({ ...job, options: { tta: true, fast: false } }), id);
    assert.notEqual(predictJobId({ ...job, modelDigest: 'b'.repeat(64) }), id);
    assert.notEqual(predictJobId({ ...job, output: '/data/other/hippocampus_001.nii.gz' }), id);
    assert.equal(canonicalJson({ b: 1, a: [2, { d: undefined, c: 'x' }] }), '{"a":[2,{"c":"x"}],"b":1}');
    assert.match(trainJobId({ kind: 'train', config: { dataset: '/d', outDir: '/runs/fold 0:a', preset: 'auto' } }), /^train-fold_0_a-[0-9a-f]{20}$/);
  });
});

describe('queue: model digests', () => {
  it('hash model.json and weights (.pth when there is no safetensors); an ensemble adds every member, in order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'uxnet-digest-'));
    try {
      const sha = (...parts: string[]) => {
        const h = createHash('sha256');
        for (const p of parts) h.update(p).update('\0');
        return h.digest('hex');
      };
      const folder = (d: string, json: string, file: string, weights: string) => {
        mkdirSync(d, { recursive: true });
        writeFileSync(join(d, 'model.json'), json);
        writeFileSync(join(d, file), weights);
      };
      folder(join(dir, 'single'), '{"m":1}', 'weights.safetensors', 'W1');
      assert.equal(await modelDigest(join(dir, 'single')), sha('{"m":1}', 'W1'));
      folder(join(dir, 'pth'), '{"m":2}', 'weights.pth', 'P2');
      assert.equal(await modelDigest(join(dir, 'pth')), sha('{"m":2}', 'P2'));
      const ens = join(dir, 'ens');
      folder(join(ens, 'a'), '{"a":1}', 'weights.safetensors', 'A');
      folder(join(ens, 'b'), '{"b":1}', 'weights.safetensors', 'B');
      const manifest = '{"format":"uxnet3d-ensemble/1","members":[{"path":"a"},{"path":"b"}]}';
      writeFileSync(join(ens, 'model.json'), manifest);
      assert.equal(await modelDigest(ens), sha(manifest, '{"a":1}', 'A', '{"b":1}', 'B'));
      // a member's weights replaced (another size: the cache key changes) -> another digest
      writeFileSync(join(ens, 'b', 'weights.safetensors'), 'B2');
      assert.equal(await modelDigest(ens), sha(manifest, '{"a":1}', 'A', '{"b":1}', 'B2'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('queue: crossval jobs', () => {
  const config = { dataset: '/data/d', outDir: '/runs/cv', preset: 'auto', steps: 4, seed: 0, backend: 'native', workers: 2 };
  const fold: CrossvalFoldJobData = { kind: 'crossval-fold', config, folds: 2, tta: false, fold: 1 };
  const summary: CrossvalSummaryJobData = { kind: 'crossval-summary', config, folds: 2, tta: false, run: [0, 1] };

  it('ids name run folder and fold, ignore backend and loader threads, and change with anything that changes results', () => {
    const id = crossvalFoldJobId(fold);
    assert.match(id, /^crossval-cv-fold1-[0-9a-f]{20}$/);
    assert.equal(crossvalFoldJobId({ ...fold, config: { ...config, backend: 'reference', workers: 1 } }), id, 'backend and workers change speed, not results');
    assert.equal(crossvalFoldJobId({ ...fold, config: Object.fromEntries(Object.entries(config).reverse()) as typeof config }), id, 'key order');
    for (const other of [
      { ...fold, fold: 0 },
      { ...fold, tta: true },
      { ...fold, folds: 3 },
      { ...fold, config: { ...config, steps: 5 } },
      { ...fold, config: { ...config, outDir: '/runs/other/cv' } },
    ])
      assert.notEqual(crossvalFoldJobId(other), id);
    assert.match(crossvalSummaryJobId(summary), /^crossval-cv-summary-[0-9a-f]{20}$/);
    assert.notEqual(crossvalSummaryJobId({ ...summary, run: [1] }), crossvalSummaryJobId(summary), 'a --fold submission has its own summary');
  });

  it('payloads are validated by kind and name what is wrong', () => {
    assert.deepEqual(validateTrainQueueJob(fold), fold);
    assert.deepEqual(validateTrainQueueJob(summary), summary);
    assert.throws(() => validateTrainQueueJob({ ...fold, fold: 2 }), /invalid crossval fold job payload: fold: fold must be below folds/);
    assert.throws(() => validateTrainQueueJob({ ...fold, folds: 1 }), /folds: /);
    assert.throws(() => validateTrainQueueJob({ ...fold, config: { ...config, modelDir: '/m' } }), /config: a crossval recipe sets split and modelDir per fold/);
    assert.throws(() => validateTrainQueueJob({ ...summary, run: [] }), /invalid crossval summary job payload: run: /);
    assert.throws(() => validateTrainQueueJob({ ...summary, extra: 1 }), /extra/);
    assert.throws(() => validateTrainQueueJob({ ...fold, config: { ...config, dataset: 'data' } }), /config\.dataset: must be an absolute path/);
    assert.throws(() => validateTrainQueueJob({ kind: 'other' }), /invalid train job payload: kind/);
  });
});

describe('queue: --root confinement', () => {
  let dir: string;
  before(() => {
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'uxnet-confine-')));
    mkdirSync(join(dir, 'root', 'sub'), { recursive: true });
    mkdirSync(join(dir, 'rootish'));
    mkdirSync(join(dir, 'other'));
    writeFileSync(join(dir, 'other', 'f.nii.gz'), 'x');
    symlinkSync(join(dir, 'other'), join(dir, 'root', 'escape'));
    symlinkSync(join(dir, 'root', 'sub'), join(dir, 'other', 'into-root'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('accepts paths inside a root, existing or not, and refuses everything else', () => {
    const roots = resolveRoots([join(dir, 'root')]);
    assert.equal(confine(join(dir, 'root', 'sub', 'new', 'out.nii.gz'), roots, 'output'), join(dir, 'root', 'sub', 'new', 'out.nii.gz'));
    assert.equal(confine(join(dir, 'root'), roots, 'output'), join(dir, 'root'));
    // A link from outside into the root is fine: what counts is where the file really is.
    assert.equal(confine(join(dir, 'other', 'into-root', 'x.nii.gz'), roots, 'output'), join(dir, 'root', 'sub', 'x.nii.gz'));
    for (const p of [
      join(dir, 'other', 'f.nii.gz'),
      join(dir, 'rootish', 'a.nii.gz'),
      join(dir, 'root', '..', 'other', 'f.nii.gz'),
      join(dir, 'root', 'escape', 'f.nii.gz'),
      join(dir, 'root', 'escape', 'new.nii.gz'),
    ]) {
      assert.throws(
        () => confine(p, roots, 'input'),
        (e: Error) => e instanceof RootRefusal && e.message.startsWith(`input ${p} is outside the worker's --root`),
        p,
      );
    }
    assert.equal(confine(join(dir, 'other', 'f.nii.gz'), null, 'input'), join(dir, 'other', 'f.nii.gz'));
    assert.equal(realPathOf(join(dir, 'root', 'escape', 'a', 'b')), join(dir, 'other', 'a', 'b'));
    assert.throws(
      () => resolveRoots([join(dir, 'missing')]),
      (e: Error) => e instanceof QueueConfigError && /--root .*missing does not exist/.test(e.message),
    );
  });
});

describe('queue: payload schemas', () => {
  const ok = {
    kind: 'predict',
    case: 'c',
    input: '/in/c.nii.gz',
    output: '/out/c.nii.gz',
    model: '/m',
    modelDigest: '0'.repeat(64),
    options: { tta: true, fast: false, overlap: 0.5 },
  };

  it('accept a well-formed payload and name every wrong field', () => {
    assert.deepEqual(validatePredictJob(ok), ok);
    assert.throws(() => validatePredictJob({ ...ok, input: 'in/c.nii.gz' }), /invalid predict job payload: input: must be an absolute path/);
    assert.throws(() => validatePredictJob({ ...ok, output: '/out/c.txt' }), /output: must end in \.nii or \.nii\.gz/);
    assert.throws(() => validatePredictJob({ ...ok, options: { ...ok.options, overlap: 1 } }), /options\.overlap/);
    assert.throws(() => validatePredictJob({ ...ok, options: { ...ok.options, script: 'rm -rf /' } }), /options: .*script/);
    assert.throws(() => validatePredictJob({ ...ok, kind: 'train' }), /kind/);
    assert.throws(() => validatePredictJob('nonsense'), /invalid predict job payload/);
    assert.throws(() => validateTrainJob({ kind: 'train', config: { dataset: '/d', outDir: 'runs/x', preset: 'auto' } }), /config\.outDir: must be an absolute path/);
    assert.equal(validateTrainJob({ kind: 'train', config: { dataset: '/d', outDir: '/r', preset: 'auto', steps: 10 } }).config.steps, 10);
  });
});

describe('uxnet queue: user mistakes, before or without a Redis server', () => {
  it('says what is wrong in one line, never with the password', () => {
    const env = { UXNET_REDIS_URL: '' };
    assertUserError(uxnet(['queue', 'status'], { env }), /no Redis URL: pass --redis .* or set UXNET_REDIS_URL/);
    assertUserError(
      uxnet(['queue', 'predict', '--redis', 'redis://127.0.0.1:1', '-i', '/nonexistent/in', '-o', '/tmp/x', '-m', 'models/hippocampus'], { env }),
      /input '\/nonexistent\/in' does not exist/,
    );
    assertUserError(
      uxnet(['queue', 'predict', '--redis', 'redis://127.0.0.1:1', '-i', 'datasets', '-o', '/tmp/x', '-m', '/nonexistent/model'], { env }),
      /model folder '\/nonexistent\/model' has no model\.json/,
    );
    assertUserError(uxnet(['queue', 'worker', '--redis', 'redis://127.0.0.1:1', '--concurrency', '0'], { env }), /--concurrency must be an integer >= 1, got '0'/);
    assertUserError(uxnet(['queue', 'worker', '--redis', 'redis://127.0.0.1:1', '--root', '/nonexistent/root'], { env }), /--root \/nonexistent\/root does not exist/);
    assertUserError(uxnet(['queue', 'crossval', '--redis', 'redis://127.0.0.1:1', '--folds', '1'], { env }), /--folds must be an integer >= 2, got '1'/);
    // Redis is checked before the crossval's run folder is settled: an unreachable queue leaves no files.
    const cvParent = mkdtempSync(join(tmpdir(), 'uxnet-queue-cv-'));
    const cvRun = join(cvParent, 'run');
    try {
      assertUserError(
        uxnet(['queue', 'crossval', '--redis', 'redis://127.0.0.1:1', '--dataset', 'datasets/msd-hippocampus', '-o', cvRun], { env }),
        /cannot use Redis at redis:\/\/127\.0\.0\.1:1: /,
      );
      assert.equal(existsSync(cvRun), false);
    } finally {
      rmSync(cvParent, { recursive: true, force: true });
    }
    const r = uxnet(['queue', 'retry', '--redis', 'redis://:hunter2-secret@127.0.0.1:1'], { env });
    assertUserError(r, /^uxnet: cannot use Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1: connect ECONNREFUSED/);
    assert.ok(!r.stderr.includes('hunter2') && !r.stdout.includes('hunter2'));
  });
});
