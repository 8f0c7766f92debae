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

/**
 * Every tensor reachable from `root` through arrays, Maps (keys and values), Sets and objects' own
 * enumerable properties, at any depth; a visited set makes cycles safe. Typed arrays hold no tensors.
 */
function collect(root: unknown, out: Set<Tensor>, isTensor: (v: unknown) => v is Tensor): void {
  const seen = new Set<object>();
  const stack: unknown[] = [root];
  while (stack.length) {
    const value = stack.pop();
    if (value === null || typeof value !== 'object' || seen.has(value)) continue;
    seen.add(value);
    if (isTensor(value)) {
      out.add(value);
      continue;
    }
    if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) continue;
    if (Array.isArray(value)) {
      for (const v of value) stack.push(v);
      continue;
    }
    if (value instanceof Map) {
      for (const [k, v] of value) stack.push(k, v);
      continue;
    }
    if (value instanceof Set) {
      for (const v of value) stack.push(v);
      continue;
    }
    for (const v of Object.values(value)) stack.push(v);
  }
}

let tensorCheck: ((v: unknown) => v is Tensor) | null = null;
/** @internal set by tensor.ts to avoid an import cycle. */
export function setTensorCheck(fn: (v: unknown) => v is Tensor): void {
  tensorCheck = fn;
}

/**
 * Runs `fn` and disposes every tensor it created except those reachable from its result (a tensor,
 * or arrays, Maps, Sets and objects holding tensors, nested to any depth). Returned tensors move to
 * the enclosing scope.
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

/**
 * Runs the synchronous `fn` without recording operations for autograd (inference, optimiser
 * updates). Grad mode is one flag for the whole thread, so it is never held across an `await`:
 * another task resuming in between would inherit it. Async code wraps each synchronous compute
 * section in its own noGrad instead.
 */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  let result: T;
  try {
    result = fn();
  } finally {
    gradEnabled = prev;
  }
  if (result instanceof Promise) {
    // Nothing awaited inside fn ran with grad off; say so rather than let the caller believe it did.
    result.catch(() => {});
    throw new Error('noGrad() takes a synchronous function: wrap each synchronous section, not an async function');
  }
  return result;
}
