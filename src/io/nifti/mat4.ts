/**
 * 4x4 homogeneous matrices as row-major Float64Array(16) (entry (r, c) at r*4 + c), plus the few 3x3
 * decompositions the geometry code needs. Plain float64 loops in a fixed summation order, so the
 * results are reproducible and match numpy's to the last bit on the well-conditioned matrices we see.
 */
export type Mat4 = Float64Array;

export function mat4(rows?: ArrayLike<ArrayLike<number>> | ArrayLike<number>): Mat4 {
  const m = new Float64Array(16);
  if (rows === undefined) {
    m[0] = m[5] = m[10] = m[15] = 1;
    return m;
  }
  if (rows.length === 16 && typeof rows[0] === 'number') {
    m.set(rows as ArrayLike<number>);
    return m;
  }
  const r = rows as ArrayLike<ArrayLike<number>>;
  if (r.length !== 4) throw new Error(`affine must be 4x4, got ${r.length} rows`);
  for (let i = 0; i < 4; i++) {
    if (r[i]!.length !== 4) throw new Error(`affine must be 4x4, row ${i} has ${r[i]!.length} entries`);
    for (let j = 0; j < 4; j++) m[i * 4 + j] = r[i]![j]!;
  }
  return m;
}

export const identity = (): Mat4 => mat4();

export function toRows(m: Mat4): number[][] {
  return [0, 1, 2, 3].map((r) => [m[r * 4]!, m[r * 4 + 1]!, m[r * 4 + 2]!, m[r * 4 + 3]!]);
}

export function matmul(a: Mat4, b: Mat4): Mat4 {
  const out = new Float64Array(16);
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 4; c++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += a[r * 4 + k]! * b[k * 4 + c]!;
      out[r * 4 + c] = s;
    }
  }
  return out;
}

/** Rounds every entry to float32, as MONAI does to meta affines after Spacingd/Orientationd. */
export function fround4(m: Mat4): Mat4 {
  const out = new Float64Array(16);
  for (let i = 0; i < 16; i++) out[i] = Math.fround(m[i]!);
  return out;
}

/** Solves A X = B (both 4x4) by Gaussian elimination with partial pivoting, as LAPACK gesv does. */
export function solve(a: Mat4, b: Mat4): Mat4 {
  const A = Float64Array.from(a);
  const B = Float64Array.from(b);
  for (let col = 0; col < 4; col++) {
    let piv = col;
    for (let r = col + 1; r < 4; r++) if (Math.abs(A[r * 4 + col]!) > Math.abs(A[piv * 4 + col]!)) piv = r;
    if (A[piv * 4 + col] === 0) throw new Error('singular affine matrix');
    if (piv !== col) {
      for (let c = 0; c < 4; c++) {
        [A[col * 4 + c], A[piv * 4 + c]] = [A[piv * 4 + c]!, A[col * 4 + c]!];
        [B[col * 4 + c], B[piv * 4 + c]] = [B[piv * 4 + c]!, B[col * 4 + c]!];
      }
    }
    const d = A[col * 4 + col]!;
    for (let r = col + 1; r < 4; r++) {
      const f = A[r * 4 + col]! / d;
      if (f === 0) continue;
      for (let c = col; c < 4; c++) A[r * 4 + c] = A[r * 4 + c]! - f * A[col * 4 + c]!;
      for (let c = 0; c < 4; c++) B[r * 4 + c] = B[r * 4 + c]! - f * B[col * 4 + c]!;
    }
  }
  const X = new Float64Array(16);
  for (let c = 0; c < 4; c++) {
    for (let r = 3; r >= 0; r--) {
      let s = B[r * 4 + c]!;
      for (let k = r + 1; k < 4; k++) s -= A[r * 4 + k]! * X[k * 4 + c]!;
      X[r * 4 + c] = s / A[r * 4 + r]!;
    }
  }
  return X;
}

export function inverse(a: Mat4): Mat4 {
  return solve(a, identity());
}

/** Euclidean norms of the first three columns of the 3x3 block (the voxel sizes). */
export function columnNorms(a: Mat4): [number, number, number] {
  const n = (c: number) => Math.sqrt(a[c]! * a[c]! + a[4 + c]! * a[4 + c]! + a[8 + c]! * a[8 + c]!);
  return [n(0), n(1), n(2)];
}

/** Applies the affine to a point (x, y, z, 1). */
export function apply(a: Mat4, p: readonly number[]): [number, number, number] {
  const out: number[] = [0, 0, 0];
  for (let r = 0; r < 3; r++) out[r] = a[r * 4]! * p[0]! + a[r * 4 + 1]! * p[1]! + a[r * 4 + 2]! * p[2]! + a[r * 4 + 3]!;
  return out as [number, number, number];
}

export type Mat3 = number[][];

export function block3(a: Mat4): Mat3 {
  return [0, 1, 2].map((r) => [a[r * 4]!, a[r * 4 + 1]!, a[r * 4 + 2]!]);
}

export function det3(m: Mat3): number {
  return (
    m[0]![0]! * (m[1]![1]! * m[2]![2]! - m[1]![2]! * m[2]![1]!) -
    m[0]![1]! * (m[1]![0]! * m[2]![2]! - m[1]![2]! * m[2]![0]!) +
    m[0]![2]! * (m[1]![0]! * m[2]![1]! - m[1]![1]! * m[2]![0]!)
  );
}

function inv3(m: Mat3): Mat3 {
  const d = det3(m);
  if (d === 0) throw new Error('singular 3x3 matrix');
  const [a, b, c] = m as [number[], number[], number[]];
  return [
    [(b[1]! * c[2]! - b[2]! * c[1]!) / d, (a[2]! * c[1]! - a[1]! * c[2]!) / d, (a[1]! * b[2]! - a[2]! * b[1]!) / d],
    [(b[2]! * c[0]! - b[0]! * c[2]!) / d, (a[0]! * c[2]! - a[2]! * c[0]!) / d, (a[2]! * b[0]! - a[0]! * b[2]!) / d],
    [(b[0]! * c[1]! - b[1]! * c[0]!) / d, (a[1]! * c[0]! - a[0]! * c[1]!) / d, (a[0]! * b[1]! - a[1]! * b[0]!) / d],
  ];
}

/**
 * The orthogonal polar factor of M (the nearest orthogonal matrix, P·Qᵀ of the SVD), by Newton's
 * iteration X <- (X + X⁻ᵀ)/2, which converges quadratically for any non-singular M.
 */
export function nearestOrthogonal(m: Mat3): Mat3 {
  let x = m.map((r) => r.slice());
  for (let it = 0; it < 100; it++) {
    const inv = inv3(x);
    let change = 0;
    const next = x.map((row, r) =>
      row.map((v, c) => {
        const nv = 0.5 * (v + inv[c]![r]!);
        change = Math.max(change, Math.abs(nv - v));
        return nv;
      }),
    );
    x = next;
    if (change < 1e-15) break;
  }
  return x;
}

/**
 * QR of the columns of M (Gram-Schmidt in column order): Q has orthonormal columns and R is upper
 * triangular with a positive diagonal. This is MONAI's zoom_affine `rotation = M·inv(cholesky(MᵀM)ᵀ)`.
 */
export function gramSchmidt(m: Mat3): Mat3 {
  const cols = [0, 1, 2].map((c) => [m[0]![c]!, m[1]![c]!, m[2]![c]!]);
  const q: number[][] = [];
  for (const col of cols) {
    const v = col.slice();
    for (const u of q) {
      const d = u[0]! * col[0]! + u[1]! * col[1]! + u[2]! * col[2]!;
      for (let i = 0; i < 3; i++) v[i] = v[i]! - d * u[i]!;
    }
    const n = Math.hypot(v[0]!, v[1]!, v[2]!);
    if (n === 0) throw new Error('degenerate affine: linearly dependent columns');
    q.push(v.map((x) => x / n));
  }
  return [0, 1, 2].map((r) => [q[0]![r]!, q[1]![r]!, q[2]![r]!]);
}
