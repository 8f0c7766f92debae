import type { Tensor } from './tensor.js';
import { keep, noGrad, tidy } from './scope.js';
import { addRaw, onesLikeShape } from './op.js';

/**
 * One recorded operation. `backward` receives the gradient of the op's output and the tensors it
 * saved, and returns one gradient per input (null where an input needs none). It runs with grad mode
 * off inside a tidy scope, so temporaries it creates are freed.
 */
export interface GradNode {
  readonly op: string;
  inputs: (Tensor | null)[];
  saved: Tensor[];
  backward(dy: Tensor, saved: Tensor[], needs: boolean[]): (Tensor | null)[];
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  // Iterative post-order DFS: the UX-Net graph is a few hundred nodes deep, fine for recursion too,
  // but a long training graph should not depend on the stack size.
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const next = inputs[i];
      if (next && next.node && !visited.has(next)) {
        visited.add(next);
        stack.push([next, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order;
}

function releaseNode(t: Tensor): void {
  const node = t.node;
  if (!node) return;
  for (const s of node.saved) s.dispose();
  node.saved = [];
  node.inputs = [];
  t.node = null;
}

/**
 * Reverse-mode differentiation from `root`. Leaf tensors with requiresGrad accumulate into `.grad`
 * (as in PyTorch: call zeroGrad between steps). The graph is freed as it is consumed.
 */
export function backward(root: Tensor, grad?: Tensor): void {
  if (!root.requiresGrad) throw new Error('backward(): the tensor does not require grad (no parameter or input with requiresGrad reached it)');
  if (!root.node) throw new Error('backward(): the tensor has no graph (it is a leaf, or backward already ran on it)');
  if (!grad && root.size !== 1) throw new Error(`backward() without a gradient needs a one-element tensor, got shape [${root.shape.join(', ')}]`);
  if (grad && grad.size !== root.size) throw new Error('backward(): gradient shape does not match the tensor');
  const order = topoOrder(root);
  const grads = new Map<Tensor, Tensor>();
  noGrad(() => {
    grads.set(root, grad ? grad.alias() : onesLikeShape(root.shape, root.backendName));
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k]!;
      const g = grads.get(t);
      grads.delete(t);
      const node = t.node!;
      if (!g) {
        releaseNode(t);
        continue;
      }
      const needs = node.inputs.map((x) => !!x && x.requiresGrad);
      const inputGrads = tidy(() => node.backward(g, node.saved, needs));
      const used = new Set<Tensor>();
      for (let i = 0; i < node.inputs.length; i++) {
        const x = node.inputs[i];
        let gi = inputGrads[i] ?? null;
        if (!gi) continue;
        if (!x || !needs[i]) {
          gi.dispose();
          continue;
        }
        if (gi.size !== x.size) throw new Error(`internal: ${node.op} backward gave a gradient of shape [${gi.shape}] for an input of shape [${x.shape}]`);
        // The same tensor may come back for several inputs (add) or be the incoming gradient itself:
        // give each consumer its own reference so disposal stays one-to-one.
        if (used.has(gi) || gi === g) gi = gi.alias();
        used.add(gi);
        if (x.node) {
          const prev = grads.get(x);
          if (prev) {
            grads.set(x, addRaw(prev, gi));
            prev.dispose();
            gi.dispose();
          } else grads.set(x, gi);
        } else {
          keep(gi);
          if (x.grad) {
            const sum = keep(addRaw(x.grad, gi));
            x.grad.dispose();
            gi.dispose();
            x.grad = sum;
          } else x.grad = gi;
        }
      }
      g.dispose();
      releaseNode(t);
    }
  });
}

/** Frees a graph that will never be back-propagated (e.g. a forward pass run with grad enabled by mistake). */
export function releaseGraph(root: Tensor): void {
  for (const t of topoOrder(root)) releaseNode(t);
}
