import type { Tensor } from './tensor.js';

/**
 * Memory scopes (tfjs-style `tidy`) and the grad-mode switch.
 * Every tensor created while a scope is open is recorded in it; when the scope closes, the ones that
 * are not part of the result (and not `keep`-ed) are disposed.
 */
const scopes: Set<Tensor>[] = [];
let gradEnabled = true;

export function trackTensor(t: Tensor): void {
  scopes[scopes.length - 1]?.add(t);
}

/** Removes a tensor from all open scopes, so closing them will not dispose it. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

function collect(value: unknown, out: Set<Tensor>, isTensor: (v: unknown) => v is Tensor, depth = 0): void {
  if (depth > 4 || value === null || typeof value !== 'object') return;
  if (isTensor(value)) { out.add(value); return; }
  if (Array.isArray(value)) { for (const v of value) collect(v, out, isTensor, depth + 1); return; }
  if (value instanceof Map) { for (const v of value.values()) collect(v, out, isTensor, depth + 1); return; }
  if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collect(v, out, isTensor, depth + 1);
}

let tensorCheck: ((v: unknown) => v is Tensor) | null = null;
/** @internal set by tensor.ts to avoid an import cycle. */
export function setTensorCheck(fn: (v: unknown) => v is Tensor): void {
  tensorCheck = fn;
}

/**
 * Runs `fn` and disposes every tensor it created except those reachable from its result (a tensor,
 * or arrays/maps/plain objects of tensors). Returned tensors move to the enclosing scope.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) throw new Error('tidy() takes a synchronous function; await outside of it');
  const kept = new Set<Tensor>();
  collect(result, kept, tensorCheck!);
  for (const t of scope) if (!kept.has(t)) t.dispose();
  const parent = scopes[scopes.length - 1];
  if (parent) for (const t of kept) if (scope.has(t)) parent.add(t);
  return result;
}

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs `fn` without recording operations for autograd (inference, optimiser updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Like noGrad, for async functions: grad mode is off until the promise settles. */
export async function noGradAsync<T>(fn: () => Promise<T>): Promise<T> {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return await fn();
  } finally {
    gradEnabled = prev;
  }
}
