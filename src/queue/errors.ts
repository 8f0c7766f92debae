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
