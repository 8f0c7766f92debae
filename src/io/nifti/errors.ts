/**
 * Why a NIfTI file was rejected. Every rejection names the file and the exact problem, so a user can
 * tell a truncated download from a wrong file type without a debugger.
 */
import { InputError } from '../../engine/errors.js';
export type NiftiErrorCode =
  | 'EMPTY'
  | 'TRUNCATED_HEADER'
  | 'BAD_SIZEOF_HDR'
  | 'BAD_MAGIC'
  | 'BAD_DIM'
  | 'BAD_DATATYPE'
  | 'BAD_VOX_OFFSET'
  | 'BAD_SCALING'
  | 'TRUNCATED_DATA'
  | 'TOO_LARGE'
  | 'GZIP'
  | 'IO'
  | 'WRITE';

export class NiftiError extends InputError {
  constructor(
    readonly code: NiftiErrorCode,
    message: string,
    readonly file?: string,
  ) {
    super(file ? `${file}: ${message}` : message);
    this.name = 'NiftiError';
  }
}
