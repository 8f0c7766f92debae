/**
 * The reference backend: plain TypeScript loops over Float32Array storage, float64 accumulation.
 * Always available; the baseline every other backend is checked against.
 */
import type { Kernels } from '../../engine/kernels.js';
import { linearGeluComposite } from '../../engine/linear-gelu-composite.js';
import { registerBackend, registerKernels } from '../../engine/registry.js';
import { gelu, geluGrad, leakyRelu, leakyReluGrad, softmax, softmaxGrad } from './activations.js';
import { adamwStep } from './adamw.js';
import { attention, attentionGrad } from './attention.js';
import { referenceBackend } from './backend.js';
import { conv3d, conv3dGradInput, conv3dGradWeight } from './conv3d.js';
import { add, concatChannels, fillFromScalar, mulChannel, mulChannelGradScale, scale, sliceChannels, sum, sumToChannels } from './elementwise.js';
import { crossEntropy, crossEntropyGrad, diceLoss, diceLossGrad } from './losses.js';
import { instanceNorm, instanceNormGrad, layerNorm, layerNormGrad } from './norms.js';
import { broadcastBinary, roll, stridedCopy, stridedScatter, sumToShape } from './layout.js';
import { gatherRows, matmul, scatterAddRows } from './linalg.js';

export { referenceBackend } from './backend.js';
export { referenceMemory } from './memory.js';
export { erf, erfc } from '../../engine/erf.js';

/** Every kernel of the contract (typed as the full `Kernels`, so a missing one fails to compile). */
export const referenceKernels: Kernels = {
  conv3d,
  conv3dGradInput,
  conv3dGradWeight,
  sumToChannels,
  instanceNorm,
  instanceNormGrad,
  layerNorm,
  layerNormGrad,
  gelu,
  geluGrad,
  leakyRelu,
  leakyReluGrad,
  add,
  scale,
  mulChannel,
  mulChannelGradScale,
  concatChannels,
  sliceChannels,
  softmax,
  softmaxGrad,
  crossEntropy,
  crossEntropyGrad,
  diceLoss,
  diceLossGrad,
  sum,
  fillFromScalar,
  adamwStep,
  matmul,
  linearGelu: (x, w, bias, a) => linearGeluComposite('reference', x, w, bias, a.keepPre),
  stridedCopy,
  stridedScatter,
  roll,
  broadcastBinary,
  sumToShape,
  gatherRows,
  scatterAddRows,
  attention,
  attentionGrad,
};

registerBackend(referenceBackend, 0);
registerKernels(referenceBackend.name, referenceKernels);
