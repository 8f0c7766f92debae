import type { Tensor } from '../engine/tensor.js';

/**
 * Applies `f` to the intermediate `t` and frees `t` right away. Safe with autograd too: ops keep
 * their own references to whatever backward needs. Never pass a tensor the caller still owns.
 */
export function step(t: Tensor, f: (t: Tensor) => Tensor): Tensor {
  const r = f(t);
  if (r !== t) t.dispose();
  return r;
}
