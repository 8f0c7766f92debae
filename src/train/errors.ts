import { InputError } from '../engine/errors.js';

/** A problem with the run's inputs (dataset, split, weights, output folder) that the user must fix. */
export class TrainRunError extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'TrainRunError';
  }
}
