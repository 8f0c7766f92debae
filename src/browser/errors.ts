/**
 * Which errors are the user's input (a file that is not a NIfTI, weights that do not fit the model)
 * rather than bugs: the browser app shows their message as is. Every such error extends the
 * library's one InputError, so this is a single instanceof (the CLI maps the same type in src/cli/main.ts).
 */
export { InputError, isInputError } from '../engine/errors.js';
