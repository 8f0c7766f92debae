import { zeros } from '../engine/creation.js';
import { runKernel } from '../engine/run-kernel.js';
import { keep } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';

export interface AdamWOptions {
  /** Learning rate (default 1e-4, the official UX-Net value; PyTorch's own default is 1e-3). */
  lr?: number;
  betas?: readonly [number, number];
  eps?: number;
  /** Decoupled weight decay (PyTorch default 0.01), applied to every parameter. */
  weightDecay?: number;
}

interface ParamState {
  step: number;
  expAvg: Tensor;
  expAvgSq: Tensor;
}

/** Raw optimiser state: JSON-friendly apart from the Float32Arrays; keys are the parameter names. */
export interface AdamWStateDict {
  hyper: { lr: number; betas: [number, number]; eps: number; weightDecay: number };
  /** Per parameter; absent for parameters that never had a gradient (as in PyTorch). */
  state: Map<string, { step: number; shape: number[]; expAvg: Float32Array; expAvgSq: Float32Array }>;
}

/**
 * `torch.optim.AdamW` (single-tensor path, amsgrad off, maximize off), bit-compatible with PyTorch
 * on CPU: per parameter with a gradient, t += 1; p *= 1 − lr·wd; m = β1·m + (1−β1)·g;
 * v = β2·v + (1−β2)·g²; p −= lr/(1−β1^t) · m / (√v/√(1−β2^t) + eps). m and v start at zero, and
 * parameters whose `.grad` is null are skipped (their step count does not advance).
 *
 * Parameters are given as tensors or as [name, tensor] pairs (e.g. `model.namedParameters()`); the
 * names key the state dict (indices otherwise). The update is in place, so the tensors stay the
 * model's parameters.
 */
export class AdamW {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  readonly params: readonly [string, Tensor][];
  private readonly state = new Map<Tensor, ParamState>();

  constructor(params: Iterable<Tensor | [string, Tensor]>, opts: AdamWOptions = {}) {
    const list: [string, Tensor][] = [];
    let i = 0;
    for (const p of params) {
      list.push(Array.isArray(p) ? [p[0], p[1]] : [String(i), p]);
      i++;
    }
    if (!list.length) throw new Error('AdamW: no parameters to optimise');
    const names = new Set(list.map(([n]) => n));
    if (names.size !== list.length) throw new Error('AdamW: parameter names must be unique');
    if (new Set(list.map(([, t]) => t)).size !== list.length) throw new Error('AdamW: the same tensor is listed twice');
    this.params = list;
    this.lr = opts.lr ?? 1e-4;
    const [b1, b2] = opts.betas ?? [0.9, 0.999];
    this.beta1 = b1;
    this.beta2 = b2;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    const bad = (ok: boolean, msg: string) => {
      if (!ok) throw new Error(`AdamW: ${msg}`);
    };
    bad(Number.isFinite(this.lr) && this.lr >= 0, `invalid learning rate ${this.lr}`);
    bad(b1 >= 0 && b1 < 1, `invalid beta1 ${b1}`);
    bad(b2 >= 0 && b2 < 1, `invalid beta2 ${b2}`);
    bad(this.eps >= 0, `invalid eps ${this.eps}`);
    bad(this.weightDecay >= 0, `invalid weight decay ${this.weightDecay}`);
  }

  /** One update of every parameter that has a gradient. */
  step(): void {
    for (const [name, p] of this.params) {
      const g = p.grad;
      if (!g) continue;
      if (g.size !== p.size) throw new Error(`AdamW: gradient of '${name}' has shape [${g.shape.join(', ')}], parameter [${p.shape.join(', ')}]`);
      let s = this.state.get(p);
      if (!s) {
        s = { step: 0, expAvg: keep(zeros(p.shape, { backend: p.backendName })), expAvgSq: keep(zeros(p.shape, { backend: p.backendName })) };
        this.state.set(p, s);
      }
      s.step += 1;
      runKernel('adamwStep', p.backendName, p.info, g.info, s.expAvg.info, s.expAvgSq.info, {
        lr: this.lr,
        beta1: this.beta1,
        beta2: this.beta2,
        eps: this.eps,
        weightDecay: this.weightDecay,
        step: s.step,
      });
    }
  }

  /** Frees and clears every parameter's gradient (PyTorch's `zero_grad(set_to_none=True)`). */
  zeroGrad(): void {
    for (const [, p] of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** The number of updates applied to the first parameter that has state (0 before the first step). */
  get stepCount(): number {
    for (const [, p] of this.params) {
      const s = this.state.get(p);
      if (s) return s.step;
    }
    return 0;
  }

  /** A copy of the optimiser state, for checkpoints (synchronous readback; on WebGPU use `stateDictAsync`). */
  stateDict(): AdamWStateDict {
    const state: AdamWStateDict['state'] = new Map();
    for (const [name, p] of this.params) {
      const s = this.state.get(p);
      if (s) state.set(name, { step: s.step, shape: [...p.shape], expAvg: s.expAvg.dataSync(), expAvgSq: s.expAvgSq.dataSync() });
    }
    return { hyper: this.hyper(), state };
  }

  /** `stateDict` without blocking readback, for every backend. */
  async stateDictAsync(): Promise<AdamWStateDict> {
    const state: AdamWStateDict['state'] = new Map();
    for (const [name, p] of this.params) {
      const s = this.state.get(p);
      if (s) state.set(name, { step: s.step, shape: [...p.shape], expAvg: await s.expAvg.data(), expAvgSq: await s.expAvgSq.data() });
    }
    return { hyper: this.hyper(), state };
  }

  private hyper(): AdamWStateDict['hyper'] {
    return { lr: this.lr, betas: [this.beta1, this.beta2], eps: this.eps, weightDecay: this.weightDecay };
  }

  /**
   * Restores state saved by `stateDict()`: step counts, m, v and the hyper-parameters. Every entry
   * is checked against the parameters (names and shapes) before anything changes.
   */
  loadStateDict(sd: AdamWStateDict): void {
    const byName = new Map(this.params);
    for (const [name, e] of sd.state) {
      const p = byName.get(name);
      if (!p) throw new Error(`AdamW state names parameter '${name}', which this optimiser does not have`);
      const same = e.shape.length === p.shape.length && e.shape.every((d, i) => d === p.shape[i]);
      if (!same || e.expAvg.length !== p.size || e.expAvgSq.length !== p.size)
        throw new Error(`AdamW state for '${name}' has shape [${e.shape.join(', ')}], the parameter [${p.shape.join(', ')}]`);
      if (!Number.isInteger(e.step) || e.step < 0) throw new Error(`AdamW state for '${name}' has an invalid step ${e.step}`);
    }
    const { hyper } = sd;
    const okNum = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
    if (!okNum(hyper.lr) || !okNum(hyper.eps) || !okNum(hyper.weightDecay) || !hyper.betas.every(okNum)) throw new Error('AdamW state has invalid hyper-parameters');
    this.disposeState();
    for (const [name, e] of sd.state) {
      const p = byName.get(name)!;
      this.state.set(p, {
        step: e.step,
        expAvg: keep(tensorOn(e.expAvg, p)),
        expAvgSq: keep(tensorOn(e.expAvgSq, p)),
      });
    }
    // As in PyTorch, the saved hyper-parameters replace the constructor's.
    this.lr = hyper.lr;
    this.beta1 = hyper.betas[0];
    this.beta2 = hyper.betas[1];
    this.eps = hyper.eps;
    this.weightDecay = hyper.weightDecay;
  }

  private disposeState(): void {
    for (const s of this.state.values()) {
      s.expAvg.dispose();
      s.expAvgSq.dispose();
    }
    this.state.clear();
  }

  /** Frees m and v (the parameters are not touched). */
  dispose(): void {
    this.disposeState();
  }
}

function tensorOn(values: Float32Array, like: Tensor): Tensor {
  const t = zeros(like.shape, { backend: like.backendName });
  t.assign(values);
  return t;
}
