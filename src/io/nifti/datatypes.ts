export type VoxelArray = Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array | BigInt64Array | BigUint64Array;

export type NumericArray = Exclude<VoxelArray, BigInt64Array | BigUint64Array>;

export interface DatatypeInfo {
  code: number;
  name: 'uint8' | 'int8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64' | 'float32' | 'float64';
  bytes: number;
  /**
   * nibabel's get_fdata(dtype=float32) scales these in float32 (numpy's result_type(raw, float32) is
   * float32); every wider type is scaled in float64 and then rounded.
   */
  scalesInFloat32: boolean;
}

export const DATATYPES: readonly DatatypeInfo[] = [
  { code: 2, name: 'uint8', bytes: 1, scalesInFloat32: true },
  { code: 256, name: 'int8', bytes: 1, scalesInFloat32: true },
  { code: 4, name: 'int16', bytes: 2, scalesInFloat32: true },
  { code: 512, name: 'uint16', bytes: 2, scalesInFloat32: true },
  { code: 8, name: 'int32', bytes: 4, scalesInFloat32: false },
  { code: 768, name: 'uint32', bytes: 4, scalesInFloat32: false },
  { code: 1024, name: 'int64', bytes: 8, scalesInFloat32: false },
  { code: 1280, name: 'uint64', bytes: 8, scalesInFloat32: false },
  { code: 16, name: 'float32', bytes: 4, scalesInFloat32: true },
  { code: 64, name: 'float64', bytes: 8, scalesInFloat32: false },
];

/** Codes defined by the standard that this reader does not decode (complex, RGB, float128). */
export const UNSUPPORTED_DATATYPES: Readonly<Record<number, string>> = {
  1: 'binary',
  32: 'complex64',
  128: 'rgb24',
  1536: 'float128',
  1792: 'complex128',
  2048: 'complex256',
  2304: 'rgba32',
};

export function datatypeByCode(code: number): DatatypeInfo | undefined {
  return DATATYPES.find((d) => d.code === code);
}

export function datatypeByName(name: DatatypeInfo['name']): DatatypeInfo {
  return DATATYPES.find((d) => d.name === name)!;
}

export function allocate(info: DatatypeInfo, n: number): VoxelArray {
  switch (info.name) {
    case 'uint8':
      return new Uint8Array(n);
    case 'int8':
      return new Int8Array(n);
    case 'int16':
      return new Int16Array(n);
    case 'uint16':
      return new Uint16Array(n);
    case 'int32':
      return new Int32Array(n);
    case 'uint32':
      return new Uint32Array(n);
    case 'int64':
      return new BigInt64Array(n);
    case 'uint64':
      return new BigUint64Array(n);
    case 'float32':
      return new Float32Array(n);
    case 'float64':
      return new Float64Array(n);
  }
}

/** Which NIfTI datatype a typed array is written as. */
export function datatypeOfArray(a: VoxelArray): DatatypeInfo {
  const name: DatatypeInfo['name'] =
    a instanceof Uint8Array
      ? 'uint8'
      : a instanceof Int8Array
        ? 'int8'
        : a instanceof Int16Array
          ? 'int16'
          : a instanceof Uint16Array
            ? 'uint16'
            : a instanceof Int32Array
              ? 'int32'
              : a instanceof Uint32Array
                ? 'uint32'
                : a instanceof BigInt64Array
                  ? 'int64'
                  : a instanceof BigUint64Array
                    ? 'uint64'
                    : a instanceof Float32Array
                      ? 'float32'
                      : 'float64';
  return datatypeByName(name);
}
