import { NiftiError } from './errors.js';

/**
 * Every NIfTI-1/NIfTI-2 header field, as stored (no repairs), with the numbers widened to JS numbers.
 * NIfTI-2 int64 fields are converted with Number(); `dim` keeps BigInt copies so absurd sizes can be
 * detected without overflow.
 */
export interface NiftiHeader {
  version: 1 | 2;
  littleEndian: boolean;
  sizeof_hdr: number;
  magic: string;
  dim_info: number;
  dim: number[];
  dimBig: bigint[];
  intent_p1: number;
  intent_p2: number;
  intent_p3: number;
  intent_code: number;
  datatype: number;
  bitpix: number;
  slice_start: number;
  pixdim: number[];
  vox_offset: number;
  scl_slope: number;
  scl_inter: number;
  slice_end: number;
  slice_code: number;
  xyzt_units: number;
  cal_max: number;
  cal_min: number;
  slice_duration: number;
  toffset: number;
  descrip: string;
  aux_file: string;
  qform_code: number;
  sform_code: number;
  quatern_b: number;
  quatern_c: number;
  quatern_d: number;
  qoffset_x: number;
  qoffset_y: number;
  qoffset_z: number;
  srow_x: number[];
  srow_y: number[];
  srow_z: number[];
  intent_name: string;
}

export const N1_SIZE = 348;
export const N2_SIZE = 540;

function cstr(bytes: Uint8Array, off: number, len: number): string {
  let end = off;
  while (end < off + len && bytes[end] !== 0) end++;
  return new TextDecoder('latin1').decode(bytes.subarray(off, end));
}

/** Decides version and byte order from sizeof_hdr, the one field whose value is fixed by the standard. */
export function sniffHeader(bytes: Uint8Array, file?: string): { version: 1 | 2; littleEndian: boolean } {
  if (bytes.byteLength === 0) throw new NiftiError('EMPTY', 'file is empty', file);
  if (bytes.byteLength < 4) throw new NiftiError('TRUNCATED_HEADER', `only ${bytes.byteLength} bytes; a NIfTI header needs ${N1_SIZE}`, file);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const le of [true, false]) {
    const s = v.getInt32(0, le);
    if (s === N1_SIZE || s === N2_SIZE) {
      const version = s === N1_SIZE ? 1 : 2;
      const need = version === 1 ? N1_SIZE : N2_SIZE;
      if (bytes.byteLength < need) {
        throw new NiftiError('TRUNCATED_HEADER', `file has ${bytes.byteLength} bytes but the NIfTI-${version} header alone needs ${need}`, file);
      }
      return { version, littleEndian: le };
    }
  }
  if (bytes.byteLength < N1_SIZE) {
    throw new NiftiError('TRUNCATED_HEADER', `file has ${bytes.byteLength} bytes, shorter than a NIfTI header (${N1_SIZE}), and sizeof_hdr is not 348 or 540`, file);
  }
  throw new NiftiError(
    'BAD_SIZEOF_HDR',
    `sizeof_hdr is ${v.getInt32(0, true)} (little-endian) / ${v.getInt32(0, false)} (big-endian); a NIfTI file has 348 (NIfTI-1) or 540 (NIfTI-2): not a NIfTI file or a corrupt header`,
    file,
  );
}

export function parseHeader(bytes: Uint8Array, file?: string): NiftiHeader {
  const { version, littleEndian: le } = sniffHeader(bytes, file);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const i16 = (o: number) => v.getInt16(o, le);
  const i32 = (o: number) => v.getInt32(o, le);
  const f32 = (o: number) => v.getFloat32(o, le);
  const f64 = (o: number) => v.getFloat64(o, le);
  const i64 = (o: number) => v.getBigInt64(o, le);
  if (version === 1) {
    const dimBig = Array.from({ length: 8 }, (_, k) => BigInt(i16(40 + 2 * k)));
    return {
      version,
      littleEndian: le,
      sizeof_hdr: i32(0),
      magic: cstr(bytes, 344, 4),
      dim_info: bytes[39]!,
      dim: dimBig.map(Number),
      dimBig,
      intent_p1: f32(56),
      intent_p2: f32(60),
      intent_p3: f32(64),
      intent_code: i16(68),
      datatype: i16(70),
      bitpix: i16(72),
      slice_start: i16(74),
      pixdim: Array.from({ length: 8 }, (_, k) => f32(76 + 4 * k)),
      vox_offset: f32(108),
      scl_slope: f32(112),
      scl_inter: f32(116),
      slice_end: i16(120),
      slice_code: bytes[122]!,
      xyzt_units: bytes[123]!,
      cal_max: f32(124),
      cal_min: f32(128),
      slice_duration: f32(132),
      toffset: f32(136),
      descrip: cstr(bytes, 148, 80),
      aux_file: cstr(bytes, 228, 24),
      qform_code: i16(252),
      sform_code: i16(254),
      quatern_b: f32(256),
      quatern_c: f32(260),
      quatern_d: f32(264),
      qoffset_x: f32(268),
      qoffset_y: f32(272),
      qoffset_z: f32(276),
      srow_x: [0, 1, 2, 3].map((k) => f32(280 + 4 * k)),
      srow_y: [0, 1, 2, 3].map((k) => f32(296 + 4 * k)),
      srow_z: [0, 1, 2, 3].map((k) => f32(312 + 4 * k)),
      intent_name: cstr(bytes, 328, 16),
    };
  }
  const dimBig = Array.from({ length: 8 }, (_, k) => i64(16 + 8 * k));
  return {
    version,
    littleEndian: le,
    sizeof_hdr: i32(0),
    magic: cstr(bytes, 4, 8),
    dim_info: bytes[524]!,
    dim: dimBig.map(Number),
    dimBig,
    intent_p1: f64(80),
    intent_p2: f64(88),
    intent_p3: f64(96),
    intent_code: i32(504),
    datatype: i16(12),
    bitpix: i16(14),
    slice_start: Number(i64(224)),
    pixdim: Array.from({ length: 8 }, (_, k) => f64(104 + 8 * k)),
    vox_offset: Number(i64(168)),
    scl_slope: f64(176),
    scl_inter: f64(184),
    slice_end: Number(i64(232)),
    slice_code: i32(496),
    xyzt_units: i32(500),
    cal_max: f64(192),
    cal_min: f64(200),
    slice_duration: f64(208),
    toffset: f64(216),
    descrip: cstr(bytes, 240, 80),
    aux_file: cstr(bytes, 320, 24),
    qform_code: i32(344),
    sform_code: i32(348),
    quatern_b: f64(352),
    quatern_c: f64(360),
    quatern_d: f64(368),
    qoffset_x: f64(376),
    qoffset_y: f64(384),
    qoffset_z: f64(392),
    srow_x: [0, 1, 2, 3].map((k) => f64(400 + 8 * k)),
    srow_y: [0, 1, 2, 3].map((k) => f64(432 + 8 * k)),
    srow_z: [0, 1, 2, 3].map((k) => f64(464 + 8 * k)),
    intent_name: cstr(bytes, 508, 16),
  };
}

function putStr(bytes: Uint8Array, off: number, len: number, s: string): void {
  const enc = new TextEncoder().encode(s).subarray(0, len - 1);
  bytes.set(enc, off);
}

/** Serialises a header (little-endian) into a fresh buffer of sizeof_hdr + 4 extender bytes. */
export function serializeHeader(h: NiftiHeader): Uint8Array {
  const size = h.version === 1 ? N1_SIZE : N2_SIZE;
  const bytes = new Uint8Array(size + 4);
  const v = new DataView(bytes.buffer);
  const le = true;
  if (h.version === 1) {
    v.setInt32(0, N1_SIZE, le);
    bytes[38] = 'r'.charCodeAt(0);
    bytes[39] = h.dim_info;
    h.dim.forEach((d, k) => v.setInt16(40 + 2 * k, d, le));
    v.setFloat32(56, h.intent_p1, le);
    v.setFloat32(60, h.intent_p2, le);
    v.setFloat32(64, h.intent_p3, le);
    v.setInt16(68, h.intent_code, le);
    v.setInt16(70, h.datatype, le);
    v.setInt16(72, h.bitpix, le);
    v.setInt16(74, h.slice_start, le);
    h.pixdim.forEach((p, k) => v.setFloat32(76 + 4 * k, p, le));
    v.setFloat32(108, h.vox_offset, le);
    v.setFloat32(112, h.scl_slope, le);
    v.setFloat32(116, h.scl_inter, le);
    v.setInt16(120, h.slice_end, le);
    bytes[122] = h.slice_code;
    bytes[123] = h.xyzt_units;
    v.setFloat32(124, h.cal_max, le);
    v.setFloat32(128, h.cal_min, le);
    v.setFloat32(132, h.slice_duration, le);
    v.setFloat32(136, h.toffset, le);
    putStr(bytes, 148, 80, h.descrip);
    putStr(bytes, 228, 24, h.aux_file);
    v.setInt16(252, h.qform_code, le);
    v.setInt16(254, h.sform_code, le);
    v.setFloat32(256, h.quatern_b, le);
    v.setFloat32(260, h.quatern_c, le);
    v.setFloat32(264, h.quatern_d, le);
    v.setFloat32(268, h.qoffset_x, le);
    v.setFloat32(272, h.qoffset_y, le);
    v.setFloat32(276, h.qoffset_z, le);
    h.srow_x.forEach((x, k) => v.setFloat32(280 + 4 * k, x, le));
    h.srow_y.forEach((x, k) => v.setFloat32(296 + 4 * k, x, le));
    h.srow_z.forEach((x, k) => v.setFloat32(312 + 4 * k, x, le));
    putStr(bytes, 328, 16, h.intent_name);
    bytes.set([0x6e, 0x2b, 0x31, 0], 344);
    return bytes;
  }
  v.setInt32(0, N2_SIZE, le);
  bytes.set([0x6e, 0x2b, 0x32, 0, 0x0d, 0x0a, 0x1a, 0x0a], 4);
  v.setInt16(12, h.datatype, le);
  v.setInt16(14, h.bitpix, le);
  h.dim.forEach((d, k) => v.setBigInt64(16 + 8 * k, BigInt(d), le));
  v.setFloat64(80, h.intent_p1, le);
  v.setFloat64(88, h.intent_p2, le);
  v.setFloat64(96, h.intent_p3, le);
  h.pixdim.forEach((p, k) => v.setFloat64(104 + 8 * k, p, le));
  v.setBigInt64(168, BigInt(h.vox_offset), le);
  v.setFloat64(176, h.scl_slope, le);
  v.setFloat64(184, h.scl_inter, le);
  v.setFloat64(192, h.cal_max, le);
  v.setFloat64(200, h.cal_min, le);
  v.setFloat64(208, h.slice_duration, le);
  v.setFloat64(216, h.toffset, le);
  v.setBigInt64(224, BigInt(h.slice_start), le);
  v.setBigInt64(232, BigInt(h.slice_end), le);
  putStr(bytes, 240, 80, h.descrip);
  putStr(bytes, 320, 24, h.aux_file);
  v.setInt32(344, h.qform_code, le);
  v.setInt32(348, h.sform_code, le);
  v.setFloat64(352, h.quatern_b, le);
  v.setFloat64(360, h.quatern_c, le);
  v.setFloat64(368, h.quatern_d, le);
  v.setFloat64(376, h.qoffset_x, le);
  v.setFloat64(384, h.qoffset_y, le);
  v.setFloat64(392, h.qoffset_z, le);
  h.srow_x.forEach((x, k) => v.setFloat64(400 + 8 * k, x, le));
  h.srow_y.forEach((x, k) => v.setFloat64(432 + 8 * k, x, le));
  h.srow_z.forEach((x, k) => v.setFloat64(464 + 8 * k, x, le));
  v.setInt32(496, h.slice_code, le);
  v.setInt32(500, h.xyzt_units, le);
  v.setInt32(504, h.intent_code, le);
  putStr(bytes, 508, 16, h.intent_name);
  bytes[524] = h.dim_info;
  return bytes;
}

/** A blank header with nibabel's defaults for a new image. */
export function emptyHeader(version: 1 | 2 = 1): NiftiHeader {
  return {
    version,
    littleEndian: true,
    sizeof_hdr: version === 1 ? N1_SIZE : N2_SIZE,
    magic: version === 1 ? 'n+1' : 'n+2',
    dim_info: 0,
    dim: [0, 1, 1, 1, 1, 1, 1, 1],
    dimBig: [0n, 1n, 1n, 1n, 1n, 1n, 1n, 1n],
    intent_p1: 0,
    intent_p2: 0,
    intent_p3: 0,
    intent_code: 0,
    datatype: 16,
    bitpix: 32,
    slice_start: 0,
    pixdim: [1, 1, 1, 1, 1, 1, 1, 1],
    vox_offset: version === 1 ? 352 : 544,
    scl_slope: NaN,
    scl_inter: NaN,
    slice_end: 0,
    slice_code: 0,
    xyzt_units: 10,
    cal_max: 0,
    cal_min: 0,
    slice_duration: 0,
    toffset: 0,
    descrip: '',
    aux_file: '',
    qform_code: 0,
    sform_code: 0,
    quatern_b: 0,
    quatern_c: 0,
    quatern_d: 0,
    qoffset_x: 0,
    qoffset_y: 0,
    qoffset_z: 0,
    srow_x: [0, 0, 0, 0],
    srow_y: [0, 0, 0, 0],
    srow_z: [0, 0, 0, 0],
    intent_name: '',
  };
}
