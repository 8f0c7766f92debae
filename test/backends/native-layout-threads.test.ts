/**
 * The native strided copy's transpose path (a permute that moves the contiguous axis, as around
 * nnFormer's convs: tiles instead of rows) equals the reference copy exactly, with tile tails, an offset
 * and outer dims on both sides, on 1, 2 and 3 threads.
 */
import { test } from 'node:test';
import { nativeAddon, nativeLoadError } from '../../src/backends/native/index.js';
import { skipUnlessAvailable } from '../helpers/backends.js';
import { assertSameOnThreads } from '../helpers/native-threads.js';

const skip = skipUnlessAvailable('native', !!nativeAddon, `native addon not available: ${nativeLoadError}`);

test('native transposing strided copies equal the reference exactly on 1, 2 and 3 threads', { skip }, () => {
  assertSameOnThreads(
    `
    // channels-last [2, 7, 5, 37] -> channels-first [2, 37, 7, 5]: 37 = 2 tiles + 5, rows of 5
    const [xr, xn] = pair([2, 7, 5, 37]);
    const a = { shape: [2, 37, 7, 5], offset: 0, strides: [7 * 5 * 37, 1, 5 * 37, 37] };
    check(rk.stridedCopy(xr, a), k.stridedCopy(xn, a));
    // the inverse permute of a [3, 37, 40] tensor (rows of 37 read with stride 40)
    const [zr, zn] = pair([3, 37, 40]);
    const c = { shape: [3, 40, 37], offset: 0, strides: [37 * 40, 1, 40] };
    check(rk.stridedCopy(zr, c), k.stridedCopy(zn, c));
    // a transposed window: columns 3..22 of [4, 6, 25] as [4, 20, 6], from offset 3
    const [yr, yn] = pair([4, 6, 25]);
    const b = { shape: [4, 20, 6], offset: 3, strides: [150, 1, 25] };
    check(rk.stridedCopy(yr, b), k.stridedCopy(yn, b));
`,
    17,
    0,
  );
});
