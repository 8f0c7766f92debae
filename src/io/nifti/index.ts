export { NiftiError, type NiftiErrorCode } from './errors.js';
export { DATATYPES, datatypeByCode, datatypeOfArray, type DatatypeInfo, type VoxelArray, type NumericArray } from './datatypes.js';
export { parseHeader, serializeHeader, emptyHeader, type NiftiHeader } from './header.js';
export { bestAffine, fixGeometry, monaiAffine, qformMatrix, sformMatrix, baseAffine, affineToQuaternion, type AffineSource } from './geometry.js';
export {
  parseNifti,
  parseDecompressed,
  parseNiftiAsync,
  isGzip,
  readNiftiFile,
  decodeRaw,
  decodeFloat32,
  decodeFloat64,
  maybeGunzip,
  type NiftiImage,
  type NiftiExtension,
  type DecodeOptions,
} from './read.js';
export { encodeNifti, writeNiftiFile, buildHeader, compactLabelArray, type NiftiWriteInput } from './write.js';
export { readNiftiHeaderFile, headerShape, voxelSpacing } from './header-file.js';
