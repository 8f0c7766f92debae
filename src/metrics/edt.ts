/**
 * Exact squared Euclidean distance transform on a 3-D grid with anisotropic spacing
 * (Felzenszwalb & Huttenlocher 2012, "Distance transforms of sampled functions": separable 1-D
 * lower envelopes of parabolas; the same result scipy.ndimage.distance_transform_edt gives, which is
 * what MONAI's surface metrics use).
 */

export type Spacing3 = readonly [number, number, number];

/**
 * Squared distance (in spacing units², e.g. mm²) from every voxel to the nearest feature voxel
 * (`feature[i] !== 0`). Infinity everywhere when there is no feature voxel. Shape [D, H, W], C order.
 */
export function squaredEdt(feature: Uint8Array, shape: readonly [number, number, number], spacing: Spacing3 = [1, 1, 1]): Float64Array {
  const [D, H, W] = shape;
  const n = D * H * W;
  if (feature.length !== n) throw new RangeError(`feature mask has ${feature.length} voxels, expected ${D}x${H}x${W}`);
  if (!spacing.every((s) => s > 0 && Number.isFinite(s))) throw new RangeError(`spacing must be positive, got ${JSON.stringify(spacing)}`);
  const dist = new Float64Array(n);
  for (let i = 0; i < n; i++) dist[i] = feature[i] ? 0 : Infinity;
  const maxLen = Math.max(D, H, W);
  const line = new Float64Array(maxLen);
  const out = new Float64Array(maxLen);
  const v = new Int32Array(maxLen);
  const z = new Float64Array(maxLen + 1);
  // Along W (stride 1), then H (stride W), then D (stride H·W): each pass is exact given the previous.
  const passes: [number, number, number][] = [
    [W, 1, spacing[2]],
    [H, W, spacing[1]],
    [D, H * W, spacing[0]],
  ];
  for (const [len, stride, s] of passes) {
    if (len === 1) continue; // nothing moves along a singleton axis
    const s2 = s * s;
    // Lines along this axis start at outer + inner, for each block of stride·len voxels.
    for (let outer = 0; outer < n; outer += stride * len) {
      for (let inner = 0; inner < stride; inner++) {
        const base = outer + inner;
        for (let k = 0; k < len; k++) line[k] = dist[base + k * stride]!;
        envelope(line, len, s2, out, v, z);
        for (let k = 0; k < len; k++) dist[base + k * stride] = out[k]!;
      }
    }
  }
  return dist;
}

/** 1-D lower envelope of parabolas s2·(x − q)² + f[q] over the finite f[q]; Infinity if none. */
function envelope(f: Float64Array, n: number, s2: number, out: Float64Array, v: Int32Array, z: Float64Array): void {
  let k = -1;
  for (let q = 0; q < n; q++) {
    const fq = f[q]!;
    if (fq === Infinity) continue;
    if (k < 0) {
      k = 0;
      v[0] = q;
      z[0] = -Infinity;
      z[1] = Infinity;
      continue;
    }
    // Pop parabolas that q's parabola hides; z[0] = −∞ stops the loop at k = 0.
    let s: number;
    for (;;) {
      const p = v[k]!;
      // Abscissa where the parabolas from p and q intersect.
      s = (fq + s2 * q * q - (f[p]! + s2 * p * p)) / (2 * s2 * (q - p));
      if (s > z[k]!) break;
      k--;
    }
    k++;
    v[k] = q;
    z[k] = s;
    z[k + 1] = Infinity;
  }
  if (k < 0) {
    out.fill(Infinity, 0, n);
    return;
  }
  let j = 0;
  for (let x = 0; x < n; x++) {
    while (z[j + 1]! < x) j++;
    const d = x - v[j]!;
    out[x] = s2 * d * d + f[v[j]!]!;
  }
}
