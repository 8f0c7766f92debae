/** A mistake in what the user asked for (URL, paths, options): the CLI turns it into one line. */
export class QueueConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QueueConfigError';
  }
}

/** A job that can never succeed as submitted: it fails at once instead of using up its attempts. */
export class PermanentJobError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PermanentJobError';
  }
}

/** A job named a path outside the worker's --root folders; retrying cannot help. */
export class RootRefusal extends PermanentJobError {
  constructor(message: string) {
    super(message);
    this.name = 'RootRefusal';
  }
}

/** A payload that does not match its schema; retrying cannot help. */
export class JobPayloadError extends PermanentJobError {
  constructor(message: string) {
    super(message);
    this.name = 'JobPayloadError';
  }
}

/**
 * A training job stopped by its worker's shutdown after a completed step, its checkpoint saved:
 * not a failure. The worker hands the job back to waiting, and the next attempt continues from `step`.
 */
export class JobStoppedError extends Error {
  constructor(
    /** Training steps in the checkpoint the next attempt resumes from. */
    readonly step: number,
    readonly steps: number,
  ) {
    super(`stopped after step ${step} of ${steps}`);
    this.name = 'JobStoppedError';
  }
}
