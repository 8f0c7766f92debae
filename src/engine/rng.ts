/**
 * The project's one seeded pseudo-random generator. Two 32-bit cores, each kept bit for bit because
 * something depends on its stream:
 *  - 'xoshiro128**' (seeded through splitmix32; the default): every random transform, crop order and
 *    split - the loader's request n = f(seed, n), which is what makes `--resume` exact;
 *  - 'mulberry32': parameter initialisation (a model built with a given seed gets the weights it got
 *    before; not PyTorch's generator, only its distributions).
 * `random()` keeps each stream's own float: 53 bits from two words (xoshiro), 32 bits from one
 * (mulberry32). Neither is MONAI's or PyTorch's stream: they reproduce distributions, not draws.
 */
export type RngAlgorithm = 'xoshiro128**' | 'mulberry32';

export class Rng {
  private readonly s = new Uint32Array(4);
  private spare: number | null = null;

  constructor(
    seed = 0,
    readonly algorithm: RngAlgorithm = 'xoshiro128**',
  ) {
    if (!Number.isFinite(seed)) throw new Error(`Rng: seed must be a finite number, got ${seed}`);
    // Fold any integer (negative or beyond 32 bits) into 32 bits; below 2^32 this is seed >>> 0.
    let x = (Math.trunc(seed) ^ Math.trunc(seed / 2 ** 32)) >>> 0;
    if (algorithm === 'mulberry32') {
      this.s[0] = x;
      return;
    }
    for (let i = 0; i < 4; i++) {
      // splitmix32
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (this.s.every((v) => v === 0)) this.s[0] = 1;
  }

  /** Next 32 random bits. */
  nextU32(): number {
    const s = this.s;
    if (this.algorithm === 'mulberry32') {
      let t = (s[0] = (s[0]! + 0x6d2b79f5) >>> 0);
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return (t ^ (t >>> 14)) >>> 0;
    }
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  random(): number {
    if (this.algorithm === 'mulberry32') return this.nextU32() / 4294967296;
    const hi = this.nextU32() >>> 5,
      lo = this.nextU32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform in [lo, hi). */
  uniform(lo = 0, hi = 1): number {
    return lo + (hi - lo) * this.random();
  }

  /** Uniform integer in [0, n), without modulo bias. */
  int(n: number): number {
    if (!(n >= 1) || !Number.isInteger(n)) throw new Error(`Rng.int: n must be a positive integer, got ${n}`);
    if (n <= 0x100000000) {
      const limit = Math.floor(0x100000000 / n) * n;
      for (;;) {
        const x = this.nextU32();
        if (x < limit) return x % n;
      }
    }
    return Math.floor(this.random() * n);
  }

  /** N(mean, std²) by Box-Muller; the second value of each pair is kept for the next call. */
  normal(mean = 0, std = 1): number {
    if (this.spare !== null) {
      const z = this.spare;
      this.spare = null;
      return mean + std * z;
    }
    let u = 0;
    while (u === 0) u = this.random();
    const v = this.random();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return mean + std * r * Math.cos(2 * Math.PI * v);
  }

  /** `n` values drawn from U[lo, hi). */
  uniformArray(n: number, lo: number, hi: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.uniform(lo, hi);
    return out;
  }

  /** `n` values drawn from N(mean, std²). */
  normalArray(n: number, mean = 0, std = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal(mean, std);
    return out;
  }

  /** A child generator of the same kind with its own stream (one per worker, sample or layer). */
  fork(): Rng {
    return new Rng(this.nextU32(), this.algorithm);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
