/**
 * An error whose message is meant for the person at the terminal: the CLI prints it without a stack
 * trace and exits with `exitCode`. Anything else that escapes a command is a bug and is printed in full.
 */
export class UserError extends Error {
  constructor(message: string, readonly exitCode = 2) {
    super(message);
    this.name = 'UserError';
  }
}
