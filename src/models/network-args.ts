/**
 * Constructor arguments of the MONAI networks, accepted in the official snake_case spelling (as the
 * official training scripts pass them) or in camelCase, with the same validation style as UX-Net's
 * config: unknown keys, conflicting spellings and bad values are errors that name the argument.
 */
import { UXNetConfigError } from './config.js';

/** A bad network argument. Shares UX-Net's error class so that every caller reports both the same way. */
export class NetworkConfigError extends UXNetConfigError {
  constructor(message: string) {
    super(message);
    this.name = 'NetworkConfigError';
  }
}

export interface ArgSpec {
  /** The official (snake_case) name; the camelCase key is the spec's own key. */
  snake: string;
  /** Default when absent; `undefined` makes the argument required. */
  default?: unknown;
  /** Returns the checked value or throws NetworkConfigError (via `fail`). */
  check: (v: unknown, name: string) => unknown;
}

export function fail(msg: string): never {
  throw new NetworkConfigError(msg);
}

export const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;

export function posIntArg(v: unknown, name: string): number {
  if (!isPosInt(v)) fail(`${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

export function intListArg(len: number, allowZero = false) {
  return (v: unknown, name: string): number[] => {
    if (!Array.isArray(v) || v.length !== len) fail(`${name} must be a list of ${len} integers, got ${JSON.stringify(v)}`);
    return v.map((d, i) => {
      if (!(typeof d === 'number' && Number.isInteger(d) && d >= (allowZero ? 0 : 1)))
        fail(`${name}[${i}] must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${JSON.stringify(d)}`);
      return d;
    });
  };
}

/** img_size: three positive integers, or one integer meaning a cube (MONAI's ensure_tuple_rep). */
export function sizeArg(v: unknown, name: string): [number, number, number] {
  if (isPosInt(v)) return [v, v, v];
  return intListArg(3)(v, name) as [number, number, number];
}

export function boolArg(v: unknown, name: string): boolean {
  if (typeof v !== 'boolean') fail(`${name} must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

/** Only the given value is implemented; anything else is refused with the reason. */
export function onlyArg(value: unknown, why: string) {
  return (v: unknown, name: string): unknown => {
    if (JSON.stringify(v) !== JSON.stringify(value)) fail(`${name} must be ${JSON.stringify(value)} (${why}), got ${JSON.stringify(v)}`);
    return v;
  };
}

/** A dropout rate: only 0 is implemented (MONAI's official calls use 0). */
export function zeroRateArg(v: unknown, name: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v >= 1) fail(`${name} must be a number in [0, 1), got ${JSON.stringify(v)}`);
  if (v !== 0) fail(`${name} must be 0: dropout is not implemented in this network (the official scripts use 0), got ${v}`);
  return v;
}

/**
 * Normalises `input` against `spec` (camelCase key -> spec). Returns an object keyed by the camelCase
 * names. `label` names the network in messages ("SwinUNETR").
 */
export function normalizeArgs<T>(input: unknown, spec: Record<string, ArgSpec>, label: string): T {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) fail(`the ${label} arguments must be an object, got ${JSON.stringify(input)}`);
  const byName = new Map<string, string>();
  for (const [camel, s] of Object.entries(spec)) {
    byName.set(camel, camel);
    byName.set(s.snake, camel);
  }
  const picked: Record<string, unknown> = {};
  const from: Record<string, string> = {};
  for (const [key, value] of Object.entries(input as Record<string, unknown>)) {
    if (value === undefined) continue;
    const camel = byName.get(key);
    if (!camel)
      fail(
        `unknown ${label} argument '${key}' (known: ${Object.values(spec)
          .map((s) => s.snake)
          .join(', ')})`,
      );
    if (camel in picked && JSON.stringify(picked[camel]) !== JSON.stringify(value))
      fail(`${label} arguments '${from[camel]}' and '${key}' are the same setting with different values`);
    picked[camel] = value;
    from[camel] = key;
  }
  const out: Record<string, unknown> = {};
  for (const [camel, s] of Object.entries(spec)) {
    const v = picked[camel] ?? s.default;
    if (v === undefined) fail(`${label} needs the argument '${s.snake}'`);
    out[camel] = s.check(v, s.snake);
  }
  return out as T;
}
