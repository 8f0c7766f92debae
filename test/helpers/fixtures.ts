import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { parseSafetensors, type RawTensor, type RawTensorMap } from '../../src/io/safetensors.js';

/** test/fixtures in the source tree (tests run from dist/test/..., fixtures are not copied there). */
export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures');

const cache = new Map<string, RawTensorMap>();

export function fixture(file: string): RawTensorMap {
  let m = cache.get(file);
  if (!m) {
    m = parseSafetensors(readFileSync(join(FIXTURES, file))).tensors;
    cache.set(file, m);
  }
  return m;
}

export function get(file: string, name: string): RawTensor {
  const t = fixture(file).get(name);
  if (!t) throw new Error(`fixture ${file} has no tensor '${name}'`);
  return t;
}

interface Stat {
  max_abs: number;
  dev?: number;
  rel_l2_dev?: number;
}
let stats: { files: Record<string, Record<string, Stat>> } | null = null;

/** PyTorch's own float32-vs-float64 deviation for a fixture tensor (see test/fixtures/PROVENANCE.md). */
export function stat(file: string, name: string): Stat {
  stats ??= JSON.parse(readFileSync(join(FIXTURES, 'tensor_stats.json'), 'utf8'));
  const s = stats!.files[file]?.[name];
  if (!s) throw new Error(`no statistics for ${file}:${name}`);
  return s;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'length mismatch');
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

export function relL2(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  assert.equal(a.length, ref.length, 'length mismatch');
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - ref[i]!) ** 2;
    den += ref[i]! ** 2;
  }
  return Math.sqrt(num) / Math.sqrt(den || 1);
}

/**
 * Fixture rule 1 (README §Tolerances): every element within 10·dev + 1e-6·max|ref|, where dev is
 * PyTorch's own float32-vs-float64 deviation for that tensor. `floor` guards tensors with no dev.
 */
export function assertMatchesFixture(actual: ArrayLike<number>, file: string, name: string, opts: { floorRel?: number } = {}): void {
  const ref = get(file, name);
  assert.equal(actual.length, ref.data.length, `${name}: ${actual.length} values, expected ${ref.data.length}`);
  const s = stat(file, name);
  const tol = 10 * (s.dev ?? 0) + Math.max(1e-6, opts.floorRel ?? 0) * s.max_abs;
  const d = maxAbsDiff(actual, ref.data);
  assert.ok(d <= tol, `${name}: max |Δ| = ${d.toExponential(3)} exceeds ${tol.toExponential(3)} (max|ref| ${s.max_abs.toExponential(3)})`);
}

/** Single-number rule: max|Δ| ≤ rel·max|ref|. */
export function assertCloseRel(actual: ArrayLike<number>, ref: ArrayLike<number>, rel: number, what: string): void {
  assert.equal(actual.length, ref.length, `${what}: ${actual.length} values, expected ${ref.length}`);
  const m = maxAbs(ref);
  const d = maxAbsDiff(actual, ref);
  assert.ok(d <= rel * m, `${what}: max |Δ| = ${d.toExponential(3)} exceeds ${rel}·max|ref| = ${(rel * m).toExponential(3)}`);
}
