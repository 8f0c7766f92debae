import { block3, det3, mat4, nearestOrthogonal, type Mat4 } from './mat4.js';
import type { NiftiHeader } from './header.js';

/**
 * The repairs nibabel 5.0's load-time check_fix makes to geometry fields (problems below its error
 * level): negative voxel sizes become positive, zero ones become 1, a qfac other than ±1 becomes 1,
 * and unknown xform codes become 0. The affine is computed from the repaired values, as nibabel does.
 */
export interface FixedGeometry {
  pixdim: number[];
  qfac: number;
  qform_code: number;
  sform_code: number;
  fixes: string[];
}

export function fixGeometry(h: NiftiHeader): FixedGeometry {
  const fixes: string[] = [];
  const pixdim = h.pixdim.slice();
  for (let k = 1; k <= 3; k++) {
    if (pixdim[k]! < 0) {
      pixdim[k] = Math.abs(pixdim[k]!);
      fixes.push(`pixdim[${k}] negative: using its absolute value`);
    }
  }
  for (let k = 1; k <= 3; k++) {
    if (pixdim[k] === 0) {
      pixdim[k] = 1;
      fixes.push(`pixdim[${k}] is 0: using 1`);
    }
  }
  let qfac = pixdim[0]!;
  if (qfac !== 1 && qfac !== -1) {
    fixes.push(`qfac (pixdim[0]) is ${qfac}: using 1`);
    qfac = 1;
    pixdim[0] = 1;
  }
  const valid = (c: number) => Number.isInteger(c) && c >= 0 && c <= 4;
  let { qform_code, sform_code } = h;
  if (!valid(qform_code)) {
    fixes.push(`qform_code ${qform_code} is invalid: using 0`);
    qform_code = 0;
  }
  if (!valid(sform_code)) {
    fixes.push(`sform_code ${sform_code} is invalid: using 0`);
    sform_code = 0;
  }
  return { pixdim, qfac, qform_code, sform_code, fixes };
}

export function sformMatrix(h: NiftiHeader): Mat4 {
  return mat4([h.srow_x, h.srow_y, h.srow_z, [0, 0, 0, 1]]);
}

/** nibabel quaternions.quat2mat: rotation matrix of the (w, x, y, z) quaternion. */
export function quatToMat(w: number, x: number, y: number, z: number): number[][] {
  const nq = w * w + x * x + y * y + z * z;
  if (nq < 2.220446049250313e-16)
    return [
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 1],
    ];
  const s = 2 / nq;
  const X = x * s,
    Y = y * s,
    Z = z * s;
  const wX = w * X,
    wY = w * Y,
    wZ = w * Z;
  const xX = x * X,
    xY = x * Y,
    xZ = x * Z;
  const yY = y * Y,
    yZ = y * Z,
    zZ = z * Z;
  return [
    [1 - (yY + zZ), xY - wZ, xZ + wY],
    [xY + wZ, 1 - (xX + zZ), yZ - wX],
    [xZ - wY, yZ + wX, 1 - (xX + yY)],
  ];
}

/** The qform affine (nibabel get_qform): rotation from the quaternion, then zooms with qfac on z. */
export function qformMatrix(h: NiftiHeader, g: FixedGeometry = fixGeometry(h)): Mat4 {
  const b = h.quatern_b,
    c = h.quatern_c,
    d = h.quatern_d;
  const w2 = 1 - (b * b + c * c + d * d);
  // nibabel tolerates a slightly negative w² (rounding in float32 storage) and treats it as 0.
  const a = w2 < 0 ? 0 : Math.sqrt(w2);
  const R = quatToMat(a, b, c, d);
  const z = [g.pixdim[1]!, g.pixdim[2]!, g.pixdim[3]! * g.qfac];
  const t = [h.qoffset_x, h.qoffset_y, h.qoffset_z];
  return mat4([0, 1, 2].map((r) => [R[r]![0]! * z[0]!, R[r]![1]! * z[1]!, R[r]![2]! * z[2]!, t[r]!]).concat([[0, 0, 0, 1]]));
}

/** nibabel's Analyze fallback: x flipped, voxel sizes on the diagonal, volume centre at the origin. */
export function baseAffine(h: NiftiHeader, g: FixedGeometry = fixGeometry(h)): Mat4 {
  const n = [1, 2, 3].map((k) => (k <= h.dim[0]! ? h.dim[k]! : 1));
  const zooms = [-g.pixdim[1]!, g.pixdim[2]!, g.pixdim[3]!];
  const m = mat4();
  for (let k = 0; k < 3; k++) {
    m[k * 4 + k] = zooms[k]!;
    m[k * 4 + 3] = -((n[k]! - 1) / 2) * zooms[k]!;
  }
  return m;
}

export type AffineSource = 'sform' | 'qform' | 'base';

/** nibabel get_best_affine: sform if coded, else qform if coded, else the base affine. */
export function bestAffine(h: NiftiHeader, g: FixedGeometry = fixGeometry(h)): { affine: Mat4; source: AffineSource } {
  if (g.sform_code !== 0) return { affine: sformMatrix(h), source: 'sform' };
  if (g.qform_code !== 0) return { affine: qformMatrix(h, g), source: 'qform' };
  return { affine: baseAffine(h, g), source: 'base' };
}

function allclose(a: number[], b: number[]): boolean {
  return a.every((x, i) => Math.abs(x - b[i]!) <= 1e-8 + 1e-5 * Math.abs(b[i]!));
}

function colNorms(m: Mat4, d: number): number[] {
  const out: number[] = [];
  for (let c = 0; c < d; c++) {
    let s = 0;
    for (let r = 0; r < d; r++) s += m[r * 4 + c]! * m[r * 4 + c]!;
    out.push(Math.sqrt(s));
  }
  return out;
}

/**
 * MONAI 0.9.0's correct_nifti_header_if_necessary: when the voxel sizes disagree with the affine's
 * column norms it may replace the sform by the (float32-rounded) qform, so MONAI's affine can differ
 * from nibabel's. Returns the affine MONAI would put in its meta data and a note of what it changed.
 */
export function monaiAffine(h: NiftiHeader, g: FixedGeometry, nib: Mat4): { affine: Mat4; note?: string } {
  const d = h.dim[0]!;
  if (d < 3 || d >= 5) return { affine: nib };
  const zooms = g.pixdim.slice(1, d + 1);
  if (allclose(zooms, colNorms(nib, d))) return { affine: nib };
  const sform = sformMatrix(h);
  const qform = qformMatrix(h, g);
  const sMis = !allclose(colNorms(sform, d), zooms);
  const qMis = !allclose(colNorms(qform, d), zooms);
  if (g.sform_code !== 0) {
    if (!sMis) return { affine: nib };
    if (!qMis) {
      const q32 = new Float64Array(16);
      for (let i = 0; i < 16; i++) q32[i] = i < 12 ? Math.fround(qform[i]!) : qform[i]!;
      return { affine: q32, note: 'sform zooms disagree with pixdim: MONAI replaces the sform by the qform' };
    }
  }
  if (g.qform_code !== 0) {
    if (!qMis) return { affine: nib };
    if (!sMis) return { affine: nib, note: 'qform zooms disagree with pixdim: MONAI replaces the qform by the sform' };
  }
  return { affine: nib, note: `MONAI rewrites pixdim to ${JSON.stringify(colNorms(nib, d))}` };
}

/**
 * Quaternion form of an affine (nibabel set_qform): zooms are the column norms; a negative
 * determinant is carried by qfac = -1 on the third axis; the rotation is the nearest orthogonal one.
 */
export function affineToQuaternion(a: Mat4): { b: number; c: number; d: number; qfac: number; zooms: number[]; offset: number[] } {
  const M = block3(a);
  const zooms = [0, 1, 2].map((c) => Math.hypot(M[0]![c]!, M[1]![c]!, M[2]![c]!));
  const R0 = M.map((row) => row.map((v, c) => v / (zooms[c] || 1)));
  let qfac = 1;
  if (det3(R0) < 0) {
    qfac = -1;
    for (const row of R0) row[2] = -row[2]!;
  }
  const R = nearestOrthogonal(R0);
  // Shepperd's method: pick the largest diagonal combination for stability.
  const [r00, r01, r02] = R[0]!,
    [r10, r11, r12] = R[1]!,
    [r20, r21, r22] = R[2]!;
  const tr = r00! + r11! + r22!;
  let w: number, x: number, y: number, z: number;
  if (tr > 0) {
    const s = Math.sqrt(tr + 1) * 2;
    w = 0.25 * s;
    x = (r21! - r12!) / s;
    y = (r02! - r20!) / s;
    z = (r10! - r01!) / s;
  } else if (r00! > r11! && r00! > r22!) {
    const s = Math.sqrt(1 + r00! - r11! - r22!) * 2;
    w = (r21! - r12!) / s;
    x = 0.25 * s;
    y = (r01! + r10!) / s;
    z = (r02! + r20!) / s;
  } else if (r11! > r22!) {
    const s = Math.sqrt(1 + r11! - r00! - r22!) * 2;
    w = (r02! - r20!) / s;
    x = (r01! + r10!) / s;
    y = 0.25 * s;
    z = (r12! + r21!) / s;
  } else {
    const s = Math.sqrt(1 + r22! - r00! - r11!) * 2;
    w = (r10! - r01!) / s;
    x = (r02! + r20!) / s;
    y = (r12! + r21!) / s;
    z = 0.25 * s;
  }
  // NIfTI stores b, c, d with a >= 0.
  if (w < 0) {
    x = -x;
    y = -y;
    z = -z;
  }
  return { b: x, c: y, d: z, qfac, zooms, offset: [a[3]!, a[7]!, a[11]!] };
}
