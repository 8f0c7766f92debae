/**
 * The native mapping cache (native/runtime.cc): freed large buffers are reused best-fit (the head of a
 * larger cached mapping, its tail cached on its own) or grown with mremap. Reused memory is dirty, so
 * these tests check that what a reused buffer holds is exactly what was written into it, that zeros()
 * on reused memory is all zeros, and that kernel outputs in reused memory equal hand-computed values.
 * Runs in its own process (node --test), so the cache starts empty and the counters are this file's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeNativeKernels, nativeAddon, nativeLoadError } from '../../src/backends/native/index.js';
import type { NativeHandle } from '../../src/backends/native/addon.js';
import { skipUnlessAvailable } from '../helpers/backends.js';

const skip = skipUnlessAvailable('native', !!nativeAddon, `native addon not available: ${nativeLoadError}`);
const addon = nativeAddon!;

const MB = 1 << 20;
/** A pattern that differs at every position and from every other tag's. */
function pattern(n: number, tag: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = tag * 1e6 + (i % 999983);
  return a;
}
function delta(before: ReturnType<typeof addon.memStats>) {
  const s = addon.memStats();
  return { hits: s.hits - before.hits, grows: s.grows - before.grows, misses: s.misses - before.misses };
}
function assertAll(a: Float32Array, value: number, what: string): void {
  const bad = a.findIndex((v) => v !== value);
  assert.equal(bad, -1, `${what}: position ${bad} holds ${a[bad]}, not ${value}`);
}

test('native alloc: a split cached mapping holds exactly what is written, its tail serves zeros() as zeros', { skip }, () => {
  // Mapped buffers are whole 2 MiB units (native/runtime.cc mapLen): 8 MB here.
  const big = (8 * MB) / 4;
  const a = addon.upload(pattern(big, 1));
  addon.free(a);
  addon.sync();
  let s = addon.memStats();
  // 5 MB (a 6 MB unit): the head of the cached 8 MB mapping, no fresh mapping.
  const headN = (5 * MB) / 4;
  const want = pattern(headN, 2);
  const b = addon.upload(want);
  assert.deepEqual(delta(s), { hits: 1, grows: 0, misses: 0 });
  assert.deepEqual(addon.readSync(b, headN), want);
  // The 2 MB tail still holds tag-1 values; zeros() there must clear them.
  s = addon.memStats();
  const zn = (1.5 * MB) / 4;
  const z = addon.zeros(zn);
  assert.deepEqual(delta(s), { hits: 1, grows: 0, misses: 0 });
  assertAll(addon.readSync(z, zn), 0, 'zeros() in a reused tail');
  // Writing the tail buffer leaves the head buffer untouched.
  addon.write(z, pattern(zn, 3));
  assert.deepEqual(addon.readSync(b, headN), want);
  assert.deepEqual(addon.readSync(z, zn), pattern(zn, 3));
  addon.free(b);
  addon.free(z);
});

test('native alloc: a grown mapping keeps nothing stale (upload, zeros and kernel outputs)', { skip }, () => {
  addon.sync();
  // Cached now: 6 and 2 MB. 10 MB grows the 6 MB piece rather than making a fresh mapping.
  let s = addon.memStats();
  const n = (10 * MB) / 4;
  const want = pattern(n, 4);
  const c = addon.upload(want);
  assert.deepEqual(delta(s), { hits: 0, grows: 1, misses: 0 });
  assert.deepEqual(addon.readSync(c, n), want);
  addon.free(c);
  addon.sync();
  s = addon.memStats();
  const zn = (14 * MB) / 4;
  const z = addon.zeros(zn);
  assert.deepEqual(delta(s), { hits: 0, grows: 1, misses: 0 });
  assertAll(addon.readSync(z, zn), 0, 'zeros() in a grown mapping');
  // Two 3 MB inputs (4 MB units: the 2 MB piece grown, then a fresh mapping), then the dirty 14 MB
  // freed: the two add outputs are its head and the head of its tail.
  const k = makeNativeKernels(addon);
  const xn = (3 * MB) / 4;
  const x = pattern(xn, 0).map((v) => v % 1024);
  s = addon.memStats();
  const xh = addon.upload(x);
  const oh = addon.upload(new Float32Array(xn).fill(1));
  assert.deepEqual(delta(s), { hits: 0, grows: 1, misses: 1 });
  addon.write(z, pattern(zn, 5));
  addon.free(z);
  addon.sync();
  s = addon.memStats();
  // 2·x + 1 at every position, over memory that held tag-5 values.
  const y = k.add({ shape: [xn], data: xh }, { shape: [xn], data: xh });
  const y1 = k.add(y, { shape: [xn], data: oh });
  const got = addon.readSync(y1.data as NativeHandle, xn);
  assert.deepEqual(delta(s), { hits: 2, grows: 0, misses: 0 });
  assert.deepEqual(
    got,
    x.map((v) => 2 * v + 1),
  );
  for (const h of [xh, oh, y.data, y1.data]) addon.free(h as NativeHandle);
});

test('native alloc: memStats counts bytes and keeps live + cached within the peak plus the cap', { skip }, () => {
  addon.sync();
  const s = addon.memStats();
  // Everything above is freed; nothing of this file is live any more.
  assert.equal(s.liveBytes, 0);
  // The peak: the 14 MB zeros with both 4 MB inputs.
  assert.equal(s.peakLiveBytes, 22 * MB);
  assert.ok(s.cachedBytes <= s.peakLiveBytes + 256 * MB);
  // Every byte the kernel zero-filled, counted once: 8 MB new, 10 − 6, 14 − 10 and 4 − 2 MB grown, 4 MB new.
  assert.equal(s.freshBytes, (8 + 4 + 4 + 2 + 4) * MB);
  assert.deepEqual([s.hits, s.grows, s.misses], [4, 3, 2]);
});
