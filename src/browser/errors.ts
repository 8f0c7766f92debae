/**
 * Which errors are the user's input (a file that is not a NIfTI, weights that do not fit the model)
 * rather than bugs: the browser app shows their message as is.
 */
import { NiftiError } from '../io/nifti/errors.js';
import { VolumeError } from '../data/nifti-volume.js';
import { WeightsFormatError } from '../io/weights-format.js';
import { SafetensorsError } from '../io/safetensors-format.js';
import { PthError } from '../io/pth-format.js';
import { ModelFolderError } from '../infer/model-manifest.js';

export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

const USER_ERRORS = [NiftiError, VolumeError, WeightsFormatError, SafetensorsError, PthError, ModelFolderError, InputError];

export function isInputError(e: unknown): e is Error {
  return USER_ERRORS.some((C) => e instanceof C);
}
