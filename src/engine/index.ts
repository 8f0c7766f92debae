export { Tensor, sizeOf, shapeString } from './tensor.js';
export { tensor, zeros, ones, full, parameter, toBackend, toBackendAsync } from './creation.js';
export { tidy, keep, noGrad, noGradAsync, isGradEnabled } from './scope.js';
export { releaseGraph } from './autograd.js';
export { memory } from './storage.js';
export { setBackend, getBackendName, listBackends, registerBackend, registerKernel, registerKernels, getKernel, hasKernel } from './registry.js';
export type { Backend } from './backend.js';
export type { Kernels, KernelName, KTensor, Conv3dAttrs, AdamWAttrs, Triple } from './kernels.js';
export * from './ops/index.js';
