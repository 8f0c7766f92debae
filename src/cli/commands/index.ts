import type { Command } from 'commander';

/** Each CLI command lives in its own module and adds itself to the program. */
export type CommandRegistrar = (program: Command) => void;

export const commands: CommandRegistrar[] = [];
