import { z } from 'zod';
import { parseWithSchema } from '../io/schema.js';

/** Version of the split file format; files without a version field are version 1. */
export const SPLIT_VERSION = 1;

/** A fixed train/validation partition by case id: {"train": [ids], "val": [ids]}. */
export const SplitFileSchema = z.object({
  version: z.literal(SPLIT_VERSION).optional(),
  train: z.array(z.string().min(1)),
  val: z.array(z.string().min(1)),
});
export type SplitFile = z.output<typeof SplitFileSchema>;

export function parseSplitFile(json: unknown, where: string, makeError?: (message: string) => Error): SplitFile {
  return parseWithSchema(SplitFileSchema, json, where, makeError);
}
