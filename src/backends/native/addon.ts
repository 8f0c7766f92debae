import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** An opaque native storage handle (a N-API external holding a reference-counted float32 buffer). */
export type NativeHandle = object & { readonly __nativeHandle?: never };

/** Mapping-cache counters: reuses (hits) and fresh kernel-zeroed mappings (misses), bytes of each, and the current state. */
export interface NativeMemStats {
  hits: number;
  grows: number;
  misses: number;
  reusedBytes: number;
  freshBytes: number;
  liveBytes: number;
  peakLiveBytes: number;
  cachedBytes: number;
}

/** The functions exported by build/Release/uxnet_native.node (native/addon.cc). */
export interface NativeAddon {
  info(): { isa: string; threads: number };
  /** Counters of the large-buffer mapping cache since start (native/runtime.h MemStats). */
  memStats(): NativeMemStats;
  upload(data: Float32Array): NativeHandle;
  zeros(size: number): NativeHandle;
  free(h: NativeHandle): void;
  readSync(h: NativeHandle, size: number): Float32Array;
  read(h: NativeHandle, size: number): Promise<Float32Array>;
  write(h: NativeHandle, data: Float32Array): void;
  /** Blocks until every queued kernel has run. */
  sync(): void;
  /** Enqueues kernel `code` and returns its output handles at once (contents pending). */
  op(code: number, inputs: NativeHandle[], outSizes: number[], params: number[]): NativeHandle[];
}

/** Op codes; must match `enum Op` in native/addon.cc. */
export const OP = {
  conv3d: 0,
  conv3dGradInput: 1,
  conv3dGradWeight: 2,
  sumToChannels: 3,
  instanceNorm: 4,
  instanceNormGrad: 5,
  layerNorm: 6,
  layerNormGrad: 7,
  gelu: 8,
  geluGrad: 9,
  leakyRelu: 10,
  leakyReluGrad: 11,
  add: 12,
  scale: 13,
  mulChannel: 14,
  mulChannelGradScale: 15,
  concatChannels: 16,
  sliceChannels: 17,
  softmax: 18,
  softmaxGrad: 19,
  crossEntropy: 20,
  crossEntropyGrad: 21,
  diceLoss: 22,
  diceLossGrad: 23,
  sum: 24,
  fillFromScalar: 25,
  adamwStep: 26,
  matmul: 27,
  stridedCopy: 28,
  stridedScatter: 29,
  roll: 30,
  broadcastBinary: 31,
  sumToShape: 32,
  gatherRows: 33,
  scatterAddRows: 34,
  attention: 35,
  attentionGrad: 36,
  groupNormAct: 37,
  batchNormEvalAct: 38,
  conv3dFused: 39,
  conv3dGradInputBias: 40,
} as const;

function packageRoot(): string {
  // dist/src/backends/native/addon.js -> package root (four levels up); also works from src/ via ts loaders.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'binding.gyp'))) return dir;
    dir = resolve(dir, '..');
  }
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
}

/** Loads the compiled addon; returns the reason as a string when it cannot. */
export function loadAddon(): NativeAddon | string {
  if (process.env.UXNET_NATIVE === '0' || process.env.UXNET_NATIVE === 'off') return 'disabled by UXNET_NATIVE=0';
  const root = packageRoot();
  const candidates = [join(root, 'build', 'Release', 'uxnet_native.node'), join(root, 'build', 'Debug', 'uxnet_native.node')];
  const file = candidates.find((f) => existsSync(f));
  if (!file) return `the addon was not built (no ${candidates[0]}); run \`npm rebuild\` with a C++17 compiler, python3 and make installed`;
  try {
    const require = createRequire(import.meta.url);
    return require(file) as NativeAddon;
  } catch (err) {
    return `loading ${file} failed: ${(err as Error).message}`;
  }
}
