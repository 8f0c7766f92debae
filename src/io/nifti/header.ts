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

function putStr(bytes: Uint8Array, off: number, len: number, s: string): void {
  const enc = new TextEncoder().encode(s).subarray(0, len - 1);
  bytes.set(enc, off);
}

type Kind = 'u8' | 'i16' | 'i32' | 'i64' | 'f32' | 'f64';
/** Where a field lives: [offset, kind] for a number, [offset, kind, count] for an array, [offset, 'str', bytes] for a string. */
type Slot = readonly [number, Kind] | readonly [number, Kind, number] | readonly [number, 'str', number];
/** The fields stored in the file, in NiftiHeader's order (`dim` is read as BigInt first, into `dimBig`). */
type Field = Exclude<keyof NiftiHeader, 'version' | 'littleEndian' | 'dimBig'>;
type Layout = Readonly<Record<Field, Slot>>;

/** Byte offsets and types of every field, one table per version: parse and serialize both read them. */
const LAYOUT: Record<1 | 2, Layout> = {
  1: {
    sizeof_hdr: [0, 'i32'],
    magic: [344, 'str', 4],
    dim_info: [39, 'u8'],
    dim: [40, 'i16', 8],
    intent_p1: [56, 'f32'],
    intent_p2: [60, 'f32'],
    intent_p3: [64, 'f32'],
    intent_code: [68, 'i16'],
    datatype: [70, 'i16'],
    bitpix: [72, 'i16'],
    slice_start: [74, 'i16'],
    pixdim: [76, 'f32', 8],
    vox_offset: [108, 'f32'],
    scl_slope: [112, 'f32'],
    scl_inter: [116, 'f32'],
    slice_end: [120, 'i16'],
    slice_code: [122, 'u8'],
    xyzt_units: [123, 'u8'],
    cal_max: [124, 'f32'],
    cal_min: [128, 'f32'],
    slice_duration: [132, 'f32'],
    toffset: [136, 'f32'],
    descrip: [148, 'str', 80],
    aux_file: [228, 'str', 24],
    qform_code: [252, 'i16'],
    sform_code: [254, 'i16'],
    quatern_b: [256, 'f32'],
    quatern_c: [260, 'f32'],
    quatern_d: [264, 'f32'],
    qoffset_x: [268, 'f32'],
    qoffset_y: [272, 'f32'],
    qoffset_z: [276, 'f32'],
    srow_x: [280, 'f32', 4],
    srow_y: [296, 'f32', 4],
    srow_z: [312, 'f32', 4],
    intent_name: [328, 'str', 16],
  },
  2: {
    sizeof_hdr: [0, 'i32'],
    magic: [4, 'str', 8],
    dim_info: [524, 'u8'],
    dim: [16, 'i64', 8],
    intent_p1: [80, 'f64'],
    intent_p2: [88, 'f64'],
    intent_p3: [96, 'f64'],
    intent_code: [504, 'i32'],
    datatype: [12, 'i16'],
    bitpix: [14, 'i16'],
    slice_start: [224, 'i64'],
    pixdim: [104, 'f64', 8],
    vox_offset: [168, 'i64'],
    scl_slope: [176, 'f64'],
    scl_inter: [184, 'f64'],
    slice_end: [232, 'i64'],
    slice_code: [496, 'i32'],
    xyzt_units: [500, 'i32'],
    cal_max: [192, 'f64'],
    cal_min: [200, 'f64'],
    slice_duration: [208, 'f64'],
    toffset: [216, 'f64'],
    descrip: [240, 'str', 80],
    aux_file: [320, 'str', 24],
    qform_code: [344, 'i32'],
    sform_code: [348, 'i32'],
    quatern_b: [352, 'f64'],
    quatern_c: [360, 'f64'],
    quatern_d: [368, 'f64'],
    qoffset_x: [376, 'f64'],
    qoffset_y: [384, 'f64'],
    qoffset_z: [392, 'f64'],
    srow_x: [400, 'f64', 4],
    srow_y: [432, 'f64', 4],
    srow_z: [464, 'f64', 4],
    intent_name: [508, 'str', 16],
  },
};
const WIDTH: Record<Kind, number> = { u8: 1, i16: 2, i32: 4, i64: 8, f32: 4, f64: 8 };

function getBig(v: DataView, o: number, kind: Kind, le: boolean): bigint {
  return kind === 'i64' ? v.getBigInt64(o, le) : BigInt(getNum(v, o, kind, le));
}

/** int64 fields are widened with Number() (exact up to 2^53). */
function getNum(v: DataView, o: number, kind: Kind, le: boolean): number {
  switch (kind) {
    case 'u8':
      return v.getUint8(o);
    case 'i16':
      return v.getInt16(o, le);
    case 'i32':
      return v.getInt32(o, le);
    case 'i64':
      return Number(v.getBigInt64(o, le));
    case 'f32':
      return v.getFloat32(o, le);
    case 'f64':
      return v.getFloat64(o, le);
  }
}

function setNum(v: DataView, o: number, kind: Kind, x: number, le: boolean): void {
  switch (kind) {
    case 'u8':
      return v.setUint8(o, x);
    case 'i16':
      return v.setInt16(o, x, le);
    case 'i32':
      return v.setInt32(o, x, le);
    case 'i64':
      return v.setBigInt64(o, BigInt(x), le);
    case 'f32':
      return v.setFloat32(o, x, le);
    case 'f64':
      return v.setFloat64(o, x, le);
  }
}

export function parseHeader(bytes: Uint8Array, file?: string): NiftiHeader {
  const { version, littleEndian: le } = sniffHeader(bytes, file);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h: Record<string, unknown> = { version, littleEndian: le };
  for (const [field, [off, kind, n]] of Object.entries(LAYOUT[version]) as [Field, Slot][]) {
    if (kind === 'str') h[field] = cstr(bytes, off, n!);
    else if (field === 'dim') {
      const dimBig = Array.from({ length: n! }, (_, k) => getBig(v, off + WIDTH[kind] * k, kind, le));
      h.dim = dimBig.map(Number);
      h.dimBig = dimBig;
    } else if (n !== undefined) h[field] = Array.from({ length: n }, (_, k) => getNum(v, off + WIDTH[kind] * k, kind, le));
    else h[field] = getNum(v, off, kind, le);
  }
  return h as unknown as NiftiHeader;
}

/** Serialises a header (little-endian) into a fresh buffer of sizeof_hdr + 4 extender bytes. */
export function serializeHeader(h: NiftiHeader): Uint8Array {
  const size = h.version === 1 ? N1_SIZE : N2_SIZE;
  const bytes = new Uint8Array(size + 4);
  const v = new DataView(bytes.buffer);
  const le = true;
  for (const [field, [off, kind, n]] of Object.entries(LAYOUT[h.version]) as [Field, Slot][]) {
    if (field === 'sizeof_hdr' || field === 'magic') continue; // fixed by the version, written below
    const x = h[field];
    if (kind === 'str') putStr(bytes, off, n!, x as string);
    else if (n !== undefined) (x as number[]).forEach((e, k) => setNum(v, off + WIDTH[kind] * k, kind, e, le));
    else setNum(v, off, kind, x as number, le);
  }
  v.setInt32(0, size, le);
  if (h.version === 1) {
    bytes[38] = 'r'.charCodeAt(0); // regular: nibabel writes it, old readers check it
    bytes.set([0x6e, 0x2b, 0x31, 0], 344); // "n+1\0"
  } else bytes.set([0x6e, 0x2b, 0x32, 0, 0x0d, 0x0a, 0x1a, 0x0a], 4); // "n+2\0" and the line-ending check bytes
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
