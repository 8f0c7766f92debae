/**
 * A small seeded pseudo-random generator (mulberry32) for reproducible parameter initialisation.
 * It is not PyTorch's generator: a model built with the same seed here and in PyTorch gets different
 * weights (with the same distributions). Parity tests load the fixture weights instead.
 */
export class Rng {
  private state: number;
  private spare: number | null = null;

  constructor(seed = 0) {
    if (!Number.isFinite(seed)) throw new Error(`Rng: seed must be a finite number, got ${seed}`);
    // Fold the seed into 32 bits; any integer (including negatives and > 2^32) is accepted.
    this.state = (Math.trunc(seed) ^ Math.trunc(seed / 2 ** 32)) >>> 0;
  }

  /** A uniform number in [0, 1), with 32 bits of randomness. */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** A uniform number in [low, high). */
  uniform(low = 0, high = 1): number {
    return low + (high - low) * this.next();
  }

  /** A standard normal sample scaled to N(mean, std²) (Box–Muller, the spare value is cached). */
  normal(mean = 0, std = 1): number {
    if (this.spare !== null) {
      const z = this.spare;
      this.spare = null;
      return mean + std * z;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return mean + std * r * Math.cos(2 * Math.PI * v);
  }

  /** `n` values drawn from U[low, high). */
  uniformArray(n: number, low: number, high: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.uniform(low, high);
    return out;
  }

  /** `n` values drawn from N(mean, std²). */
  normalArray(n: number, mean = 0, std = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal(mean, std);
    return out;
  }

  /** A child generator with an independent stream, derived deterministically from this one. */
  fork(): Rng {
    return new Rng(Math.floor(this.next() * 4294967296));
  }
}
