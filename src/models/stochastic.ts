import { bernoulliKeepMask, dropout, dropoutChannels, dropPath } from '../engine/ops/index.js';
import type { Tensor } from '../engine/tensor.js';
import { Rng } from '../engine/rng.js';

/**
 * The random parts of a network (dropout, dropout3d, DropPath), shared by its modules: masks are drawn
 * from one seeded generator, so a run is reproducible, and `enabled = false` switches them all off
 * (what the baseline fixtures' training steps do). A mask can also be given for the next draw
 * (`nextMasks`), which is how tests reproduce a recorded PyTorch mask.
 */
export class Stochastic {
  enabled = true;
  readonly rng: Rng;
  /** Masks to use instead of drawing, consumed in call order (tests). */
  nextMasks: Float32Array[] = [];

  constructor(seed = 0) {
    this.rng = new Rng(seed, 'mulberry32');
  }

  private mask(n: number, p: number): Float32Array {
    const given = this.nextMasks.shift();
    if (given) {
      if (given.length !== n) throw new Error(`given dropout mask has ${given.length} values, needs ${n}`);
      return given;
    }
    return bernoulliKeepMask(n, p, () => this.rng.random());
  }

  /** Whether a dropout of rate p would draw a mask (callers with a cheaper dropout-free path check this). */
  isActive(p: number, active: boolean): boolean {
    return active && this.enabled && p !== 0;
  }

  /** `nn.Dropout(p)` in training mode (identity when off or p = 0). */
  dropout(x: Tensor, p: number, active: boolean): Tensor {
    if (!active || !this.enabled || p === 0) return x;
    return dropout(x, this.mask(x.size, p), p);
  }

  /** `F.dropout3d(x, p)`: whole channels per sample. */
  dropoutChannels(x: Tensor, p: number, active: boolean): Tensor {
    if (!active || !this.enabled || p === 0) return x;
    return dropoutChannels(x, this.mask(x.shape[0]! * x.shape[1]!, p), p);
  }

  /** timm `DropPath(p)` in training mode: one flag per sample. */
  dropPath(x: Tensor, p: number, active: boolean): Tensor {
    if (!active || !this.enabled || p === 0) return x;
    return dropPath(x, this.mask(x.shape[0]!, p), p);
  }
}
