import { parameter } from '../engine/creation.js';
import type { Tensor } from '../engine/tensor.js';
import { Rng } from '../engine/rng.js';
import { InputError } from '../engine/errors.js';

/** A tensor value as found in a state dict: an engine Tensor or raw `{shape, data}` (e.g. from a safetensors file). */
export type StateValue = Tensor | { readonly shape: readonly number[]; readonly data: Float32Array };
/** A state dict to load: an (ordered) Map or a plain object, keyed by PyTorch-style dotted names. */
export type StateDictInput = ReadonlyMap<string, StateValue> | Readonly<Record<string, StateValue>>;

export interface ShapeMismatch {
  key: string;
  expected: readonly number[];
  got: readonly number[];
}

/** What `loadStateDict` found: every problem by key name. */
export interface LoadReport {
  /** Keys of this module that the state dict does not contain. */
  missing: string[];
  /** Keys in the state dict that this module does not have. */
  unexpected: string[];
  /** Keys present on both sides with different shapes (never loaded, even with strict=false). */
  mismatched: ShapeMismatch[];
  /** Keys whose values were copied in. */
  loaded: string[];
  /** Constant buffers (e.g. relative_position_index) given with values other than the ones the architecture defines. */
  badBuffers?: string[];
}

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

function listNames(names: string[], max = 20): string {
  const shown = names.slice(0, max).join(', ');
  return names.length > max ? `${shown}, … (${names.length - max} more)` : shown;
}

/** Thrown by `loadStateDict` when the state dict does not fit the module; `report` has the details. */
export class StateDictError extends InputError {
  constructor(readonly report: LoadReport) {
    const parts: string[] = [];
    if (report.mismatched.length) {
      parts.push(
        `${report.mismatched.length} shape mismatch(es): ${report.mismatched
          .slice(0, 20)
          .map((m) => `${m.key} expected ${fmt(m.expected)} got ${fmt(m.got)}`)
          .join('; ')}${report.mismatched.length > 20 ? '; …' : ''}`,
      );
    }
    if (report.missing.length) parts.push(`${report.missing.length} missing key(s): ${listNames(report.missing)}`);
    if (report.unexpected.length) parts.push(`${report.unexpected.length} unexpected key(s): ${listNames(report.unexpected)}`);
    if (report.badBuffers?.length) parts.push(`${report.badBuffers.length} constant buffer(s) with values other than this architecture's: ${listNames(report.badBuffers)}`);
    super(`state dict does not match the model: ${parts.join('. ')}`);
    this.name = 'StateDictError';
  }
}

/**
 * How a module creates its parameters.
 * - `rng`: the seeded generator used for initialisation (shared along the tree, so one seed fixes every weight).
 * - `meta`: record parameter shapes only, allocate nothing (used to count parameters of huge configs).
 */
export interface InitContext {
  rng: Rng;
  meta: boolean;
}

/** Options accepted by every layer constructor. */
export interface InitOptions {
  /** Seed of a fresh generator (default 0). Ignored when `init` is given. */
  seed?: number;
  /** A context shared with the parent module. */
  init?: InitContext;
}

export function initContext(opts: InitOptions & { meta?: boolean } = {}): InitContext {
  return opts.init ?? { rng: new Rng(opts.seed ?? 0, 'mulberry32'), meta: opts.meta ?? false };
}

interface ParamSlot {
  shape: readonly number[];
  tensor: Tensor | null;
}

/** A constant, non-trainable state-dict entry (PyTorch `register_buffer`), kept on the host. */
export interface BufferSlot {
  shape: readonly number[];
  /** The values the architecture defines (integers for index buffers). */
  values: Float32Array;
  /** dtype PyTorch stores it with (I64 for index buffers). */
  dtype: 'I64' | 'F32';
  /** State that changes (BatchNorm running statistics): a state dict's values are loaded into it, not compared. */
  mutable?: boolean;
}

/**
 * Base class of every layer and model, with PyTorch's naming rules: a module's state-dict keys are its
 * own parameters in registration order, then each child's keys (recursively, in registration order)
 * prefixed by `<childName>.`. Numeric child names give `Sequential`/`ModuleList`-style keys such as
 * `downsample_layers.0.0.weight`. Constant buffers (registerBuffer) follow a module's own parameters.
 */
export abstract class Module {
  /** Train / eval flag. No layer of UX-Net behaves differently between the two, but it is kept for API parity. */
  training = true;
  private readonly _params = new Map<string, ParamSlot>();
  private readonly _children = new Map<string, Module>();
  private readonly _buffers = new Map<string, BufferSlot>();

  private checkName(name: string, what: string): void {
    if (!name || name.includes('.')) throw new Error(`${what} name '${name}' must be non-empty and contain no '.'`);
    if (this._params.has(name) || this._children.has(name) || this._buffers.has(name)) throw new Error(`${what} name '${name}' is already used in ${this.constructor.name}`);
  }

  /** Registers an existing tensor as a parameter (it should be a leaf created with `parameter()`). */
  registerParameter(name: string, t: Tensor): Tensor {
    this.checkName(name, 'parameter');
    this._params.set(name, { shape: [...t.shape], tensor: t });
    return t;
  }

  /**
   * Declares a parameter of `shape` whose initial values come from `init(n)`. In a meta context
   * nothing is allocated and the returned value must not be used (the module cannot run).
   */
  protected createParameter(ctx: InitContext, name: string, shape: readonly number[], init: (n: number, rng: Rng) => Float32Array): Tensor {
    this.checkName(name, 'parameter');
    if (ctx.meta) {
      this._params.set(name, { shape: [...shape], tensor: null });
      return null as unknown as Tensor;
    }
    const n = shape.reduce((a, b) => a * b, 1);
    const t = parameter(init(n, ctx.rng), shape);
    this._params.set(name, { shape: [...shape], tensor: t });
    return t;
  }

  /**
   * Declares a constant buffer. It is part of the state-dict key list (after this module's parameters,
   * as in PyTorch) but not a parameter: optimisers never see it, a state dict may omit it (the values
   * are recomputed), and a state dict that carries it must carry exactly these values.
   */
  registerBuffer(name: string, shape: readonly number[], values: Float32Array, dtype: BufferSlot['dtype'] = 'I64', opts: { mutable?: boolean } = {}): BufferSlot {
    this.checkName(name, 'buffer');
    if (values.length !== shape.reduce((a, b) => a * b, 1)) throw new Error(`buffer '${name}': ${values.length} values for shape ${fmt(shape)}`);
    const slot: BufferSlot = { shape: [...shape], values, dtype, ...(opts.mutable ? { mutable: true } : {}) };
    this._buffers.set(name, slot);
    return slot;
  }

  /** Ordered [key, buffer] pairs (constant buffers only). */
  namedBuffers(prefix = ''): [string, BufferSlot][] {
    const out: [string, BufferSlot][] = [];
    for (const [name, b] of this._buffers) out.push([prefix + name, b]);
    for (const [name, child] of this._children) out.push(...child.namedBuffers(`${prefix}${name}.`));
    return out;
  }

  /** The mutable buffers (BatchNorm running statistics) as state-dict entries (copies), saved beside the parameters. */
  namedStateBuffers(): [string, { shape: readonly number[]; data: Float32Array }][] {
    return this.namedBuffers()
      .filter(([, b]) => b.mutable)
      .map(([k, b]) => [k, { shape: b.shape, data: b.values.slice() }]);
  }

  /** Every state-dict key with its shape, in PyTorch's order: each module's parameters, then its buffers, then its children. */
  namedStateShapes(prefix = ''): [string, readonly number[]][] {
    const out: [string, readonly number[]][] = [];
    for (const [name, slot] of this._params) out.push([prefix + name, slot.shape]);
    for (const [name, b] of this._buffers) out.push([prefix + name, b.shape]);
    for (const [name, child] of this._children) out.push(...child.namedStateShapes(`${prefix}${name}.`));
    return out;
  }

  registerModule<M extends Module>(name: string, m: M): M {
    this.checkName(name, 'module');
    this._children.set(name, m);
    return m;
  }

  /** Direct children in registration order. */
  namedChildren(): [string, Module][] {
    return [...this._children];
  }

  /** Every module in the tree (this one first, key ''), depth first in registration order. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, child] of this._children) out.push(...child.namedModules(prefix ? `${prefix}.${name}` : name));
    return out;
  }

  /** Ordered [key, shape] pairs, available also for meta (unallocated) modules. */
  namedParameterShapes(prefix = ''): [string, readonly number[]][] {
    const out: [string, readonly number[]][] = [];
    for (const [name, slot] of this._params) out.push([prefix + name, slot.shape]);
    for (const [name, child] of this._children) out.push(...child.namedParameterShapes(`${prefix}${name}.`));
    return out;
  }

  /** Ordered [key, tensor] pairs with PyTorch-identical keys. */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [name, slot] of this._params) {
      if (!slot.tensor) throw new Error(`parameter '${prefix + name}' was never allocated (module built for shape inspection only)`);
      out.push([prefix + name, slot.tensor]);
    }
    for (const [name, child] of this._children) out.push(...child.namedParameters(`${prefix}${name}.`));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** The parameters keyed as in PyTorch's `state_dict()` (the same tensors, not copies). */
  stateDict(): Map<string, Tensor> {
    return new Map(this.namedParameters());
  }

  /** Total number of parameter values. Works for meta modules too. */
  numParameters(): number {
    let n = 0;
    for (const [, s] of this.namedParameterShapes()) n += s.reduce((a, b) => a * b, 1);
    return n;
  }

  /**
   * Copies values from a state dict into the parameters (in place; the Tensor objects stay the same).
   * Everything is checked before anything is written. Shape mismatches always throw; with
   * `strict` (the default) missing and unexpected keys throw too. The returned report lists every key.
   * Tensor values are read synchronously; on WebGPU use `loadStateDictAsync` (or pass raw values).
   */
  loadStateDict(sd: StateDictInput, opts: { strict?: boolean } = {}): LoadReport {
    const strict = opts.strict ?? true;
    const entries: [string, StateValue][] = sd instanceof Map ? [...(sd as ReadonlyMap<string, StateValue>)] : Object.entries(sd as Record<string, StateValue>);
    const given = new Map(entries);
    const own = this.namedParameters();
    const ownKeys = new Set(own.map(([k]) => k));
    const report: LoadReport = { missing: [], unexpected: [], mismatched: [], loaded: [] };
    const toLoad: [Tensor, StateValue][] = [];
    const statesToLoad: [BufferSlot, StateValue][] = [];
    for (const [key, p] of own) {
      const v = given.get(key);
      if (!v) {
        report.missing.push(key);
        continue;
      }
      const same = v.shape.length === p.shape.length && v.shape.every((d, i) => d === p.shape[i]);
      if (!same) {
        report.mismatched.push({ key, expected: [...p.shape], got: [...v.shape] });
        continue;
      }
      toLoad.push([p, v]);
      report.loaded.push(key);
    }
    for (const [key, b] of this.namedBuffers()) {
      ownKeys.add(key);
      const v = given.get(key);
      if (!v) continue;
      if (v.shape.length !== b.shape.length || v.shape.some((d, i) => d !== b.shape[i])) {
        report.mismatched.push({ key, expected: [...b.shape], got: [...v.shape] });
        continue;
      }
      if (b.mutable) {
        statesToLoad.push([b, v]);
        continue;
      }
      const data = 'dataSync' in v ? v.dataSync() : v.data;
      let same = data.length === b.values.length;
      for (let i = 0; same && i < data.length; i++) same = data[i] === b.values[i];
      if (!same) (report.badBuffers ??= []).push(key);
    }
    for (const [key] of entries) if (!ownKeys.has(key)) report.unexpected.push(key);
    if (report.mismatched.length || report.badBuffers?.length || (strict && (report.missing.length || report.unexpected.length))) {
      report.loaded = [];
      throw new StateDictError(report);
    }
    for (const [p, v] of toLoad) {
      const data = 'dataSync' in v ? v.dataSync() : v.data;
      if (data.length !== p.size) throw new Error(`state dict value for shape ${fmt(p.shape)} holds ${data.length} values`);
      p.assign(data);
    }
    for (const [b, v] of statesToLoad) b.values.set('dataSync' in v ? v.dataSync() : v.data);
    return report;
  }

  /**
   * `loadStateDict` for backends without synchronous readback (WebGPU): Tensor values are read with
   * `await data()` first. Raw `{shape, data}` values work with the synchronous version everywhere.
   */
  async loadStateDictAsync(sd: StateDictInput, opts: { strict?: boolean } = {}): Promise<LoadReport> {
    const entries: [string, StateValue][] = sd instanceof Map ? [...(sd as ReadonlyMap<string, StateValue>)] : Object.entries(sd as Record<string, StateValue>);
    const raw = new Map<string, StateValue>();
    for (const [k, v] of entries) raw.set(k, 'dataSync' in v ? { shape: v.shape, data: await v.data() } : v);
    return this.loadStateDict(raw, opts);
  }

  /** Sets training mode on this module and every descendant. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Releases every parameter's memory (gradients included). The module is unusable afterwards. */
  dispose(): void {
    for (const [, m] of this.namedModules()) {
      for (const slot of m._params.values()) {
        if (!slot.tensor) continue;
        slot.tensor.grad?.dispose();
        slot.tensor.grad = null;
        slot.tensor.dispose();
      }
    }
  }
}

/** A module with a single-input forward. */
export interface Layer {
  forward(x: Tensor): Tensor;
}

/**
 * PyTorch `nn.Sequential`: children named 0, 1, 2, … applied in order. `detail`, when given, receives
 * every child's output under `<prefix><index>` (used to expose intermediates for tests).
 */
export class Sequential extends Module implements Layer {
  readonly layers: (Module & Layer)[];
  constructor(layers: (Module & Layer)[]) {
    super();
    this.layers = layers;
    layers.forEach((l, i) => this.registerModule(String(i), l));
  }
  forward(x: Tensor): Tensor {
    let h = x;
    for (const l of this.layers) h = l.forward(h);
    return h;
  }
}

/** PyTorch `nn.ModuleList`: children named 0, 1, 2, … with no forward of its own. */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: M[];
  constructor(items: M[]) {
    super();
    this.items = items;
    items.forEach((m, i) => this.registerModule(String(i), m));
  }
  get length(): number {
    return this.items.length;
  }
  at(i: number): M {
    const m = this.items[i];
    if (!m) throw new Error(`ModuleList index ${i} out of range (length ${this.items.length})`);
    return m;
  }
}
