/**
 * Window geometry of MONAI 0.9.0's Swin transformer (swin_unetr.py): window/shift adjustment, the
 * relative-position index of the 7³ window, and the shift mask's region ids. Plain numbers, no tensors.
 */

export type Size3 = [number, number, number];

/** MONAI `get_window_size`: per dimension, a size ≤ the window becomes the window and loses its shift. */
export function getWindowSize(size: readonly number[], window: readonly number[], shift: readonly number[]): { window: Size3; shift: Size3 } {
  const w = [...window] as Size3;
  const s = [...shift] as Size3;
  for (let i = 0; i < 3; i++) {
    if (size[i]! <= window[i]!) {
      w[i] = size[i]!;
      s[i] = 0;
    }
  }
  return { window: w, shift: s };
}

/** Each size rounded up to a multiple of its window (the padded grid). */
export function paddedSize(size: readonly number[], window: readonly number[]): Size3 {
  return size.map((d, i) => Math.ceil(d / window[i]!) * window[i]!) as Size3;
}

/**
 * A relative-position index of a cubic window w³, tokens (d, h, w) row-major:
 * idx[i, j] = (dᵢ−dⱼ+w−1)·strideD + (hᵢ−hⱼ+w−1)·strideH + (wᵢ−wⱼ+w−1). Swin's and nnFormer's differ only
 * in the two strides.
 */
export function windowPositionIndex(w: number, strideD: number, strideH: number): Float32Array {
  const n = w * w * w;
  const out = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    const di = Math.floor(i / (w * w)),
      hi = Math.floor(i / w) % w,
      wi = i % w;
    for (let j = 0; j < n; j++) {
      const dj = Math.floor(j / (w * w)),
        hj = Math.floor(j / w) % w,
        wj = j % w;
      out[i * n + j] = (di - dj + w - 1) * strideD + (hi - hj + w - 1) * strideH + (wi - wj + w - 1);
    }
  }
  return out;
}

/** Swin's `relative_position_index`: strides (2w−1)² and 2w−1, one table row per offset. */
export function relativePositionIndex(w: number): Float32Array {
  const m = 2 * w - 1;
  return windowPositionIndex(w, m * m, m);
}

/**
 * The table rows a window of n tokens reads: MONAI slices the full index's top-left n×n block
 * (`index[:n, :n]`), so a shrunken window takes the offsets of the first n tokens of a 7³ window,
 * not its own (SEMANTICS.md §1.6), and the bias depends on n only.
 */
export function biasRows(fullIndex: Float32Array, full: number, n: number): Int32Array {
  const out = new Int32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[i * n + j] = fullIndex[i * full + j]!;
  return out;
}

/**
 * MONAI's `mask_windows`: the region id of every token of every window, [nW, n], for the padded grid
 * `padded` in the rolled frame. Per dimension the regions are [0, P−w), [P−w, P−s), [P−s, P); with
 * s = 0 the last slice (`slice(-0, None)`) covers the whole axis and overwrites, so the label is 2.
 * The id is MONAI's counter over the 27 slice combinations: 9·r₀ + 3·r₁ + r₂.
 */
export function regionIds(padded: readonly number[], window: readonly number[], shift: readonly number[]): { ids: Float32Array; nW: number; n: number } {
  const region = (p: number, P: number, w: number, s: number) => (s === 0 ? 2 : p < P - w ? 0 : p < P - s ? 1 : 2);
  const [P0, P1, P2] = padded as Size3;
  const [w0, w1, w2] = window as Size3;
  const n = w0 * w1 * w2;
  const nW = (P0 / w0) * (P1 / w1) * (P2 / w2);
  const ids = new Float32Array(nW * n);
  let win = 0;
  for (let a = 0; a < P0 / w0; a++) {
    for (let b = 0; b < P1 / w1; b++) {
      for (let c = 0; c < P2 / w2; c++, win++) {
        let t = 0;
        for (let i = 0; i < w0; i++) {
          for (let j = 0; j < w1; j++) {
            for (let k = 0; k < w2; k++, t++) {
              ids[win * n + t] = 9 * region(a * w0 + i, P0, w0, shift[0]!) + 3 * region(b * w1 + j, P1, w1, shift[1]!) + region(c * w2 + k, P2, w2, shift[2]!);
            }
          }
        }
      }
    }
  }
  return { ids, nW, n };
}

/** The additive attention mask [nW, n, n]: 0 within a region, −100 (not −inf, as MONAI) across regions. */
export function attentionMask(ids: Float32Array, nW: number, n: number): Float32Array {
  const out = new Float32Array(nW * n * n);
  for (let w = 0; w < nW; w++) {
    for (let i = 0; i < n; i++) {
      const a = ids[w * n + i]!;
      for (let j = 0; j < n; j++) out[(w * n + i) * n + j] = ids[w * n + j] === a ? 0 : -100;
    }
  }
  return out;
}

/**
 * The attention mask as a product of two small factors, so a backend builds it with one batched GEMM
 * instead of the host filling and uploading nW·n·n values (at SwinUNETR's first stage 343³: 161 MB of
 * fresh pages each forward). Per window, region ids get local indices r < R; token i's row of `a` is
 * 100·onehot(r_i) then −100, of `b` onehot(r_j) then 1, so (a·bᵀ)[i, j] = 100·[r_i = r_j] − 100: exactly
 * 0 or −100 (every partial sum is an exact float), the same values as attentionMask. Shapes [nW, n, k].
 */
export function attentionMaskFactors(ids: Float32Array, nW: number, n: number): { a: Float32Array; b: Float32Array; k: number } {
  const local = new Int32Array(nW * n);
  let regions = 1;
  const seen = new Map<number, number>();
  for (let w = 0; w < nW; w++) {
    seen.clear();
    for (let i = 0; i < n; i++) {
      const id = ids[w * n + i]!;
      let r = seen.get(id);
      if (r === undefined) seen.set(id, (r = seen.size));
      local[w * n + i] = r;
    }
    regions = Math.max(regions, seen.size);
  }
  const k = regions + 1;
  const a = new Float32Array(nW * n * k);
  const b = new Float32Array(nW * n * k);
  for (let t = 0; t < nW * n; t++) {
    a[t * k + local[t]!] = 100;
    a[t * k + regions] = -100;
    b[t * k + local[t]!] = 1;
    b[t * k + regions] = 1;
  }
  return { a, b, k };
}
