import type { Backend } from './backend.js';

/**
 * A reference-counted backend buffer. Several Tensor objects may share one Storage (reshape,
 * detach, and the aliases autograd keeps for backward), so memory is released exactly when the
 * last of them lets go — deterministically, not when the garbage collector gets to it.
 */
export class Storage {
  private refs = 1;
  constructor(
    readonly backend: Backend,
    readonly handle: unknown,
    readonly size: number,
  ) {
    liveStats.count++;
    liveStats.bytes += size * 4;
  }
  retain(): this {
    if (this.refs <= 0) throw new Error('internal: retain() on freed storage');
    this.refs++;
    return this;
  }
  release(): void {
    if (this.refs <= 0) throw new Error('internal: storage released twice');
    if (--this.refs === 0) {
      this.backend.free(this.handle);
      liveStats.count--;
      liveStats.bytes -= this.size * 4;
    }
  }
  get freed(): boolean {
    return this.refs <= 0;
  }
}

const liveStats = { count: 0, bytes: 0 };

/** Live storages across all backends: a leak check for tests and long training runs. */
export function memory(): { storages: number; bytes: number } {
  return { storages: liveStats.count, bytes: liveStats.bytes };
}
