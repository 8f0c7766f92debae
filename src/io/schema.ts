import type { z } from 'zod';
import { InputError } from '../engine/errors.js';

/**
 * File formats are schema-first (zod): each reader validates with its format's schema and reports
 * the first problem as one line naming the file, the field path and what was expected.
 */

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** `steps[2].pixdim` for ['steps', 2, 'pixdim']. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out ? '.' : ''}${String(p)}`;
  return out;
}

/** What was wrong with one field, as "expected ..., got ...". */
export function describeIssue(iss: z.core.$ZodIssue): string {
  const got = 'input' in iss ? `, got ${show(iss.input)}` : '';
  switch (iss.code) {
    case 'invalid_type':
      return iss.input === undefined ? `is required (expected ${iss.expected})` : `expected ${iss.expected}${got}`;
    case 'invalid_value':
      return `expected ${iss.values.length === 1 ? show(iss.values[0]) : `one of ${iss.values.map(show).join(', ')}`}${got}`;
    case 'invalid_union': {
      const d = (iss as { discriminator?: string; options?: unknown[] }).discriminator;
      if (d) {
        const opts = (iss as { options?: unknown[] }).options ?? [];
        const value = (iss.input as Record<string, unknown> | undefined)?.[d];
        return `unknown ${d} ${show(value)} (known: ${opts.map(String).join(', ')})`;
      }
      return `does not match any allowed form${got}`;
    }
    case 'unrecognized_keys':
      return `unknown field${iss.keys.length > 1 ? 's' : ''} ${iss.keys.map((k) => show(k)).join(', ')}`;
    case 'too_small':
    case 'too_big': {
      const m = iss.message.replace(/^Too (small|big): /, '');
      return `${m}${got}`;
    }
    case 'custom':
      // Our own refinements: a value is shown when it is a single one (objects are described by the message).
      return /\bgot\b/.test(iss.message) || typeof iss.input === 'object' || iss.input === undefined ? iss.message : `${iss.message}${got}`;
    default:
      return `${iss.message}${got}`;
  }
}

/**
 * Parses `value` with `schema`; on failure throws `makeError(message)` where the message is
 * "WHERE: FIELD: what was expected, got what" (plus how many further problems there are).
 */
export function parseWithSchema<S extends z.ZodType>(schema: S, value: unknown, where: string, makeError: (message: string) => Error = (m) => new InputError(m)): z.output<S> {
  const r = schema.safeParse(value, { reportInput: true });
  if (r.success) return r.data;
  const [first, ...rest] = r.error.issues;
  const path = fieldPath(first!.path);
  const more = rest.length ? ` (and ${rest.length} more problem${rest.length > 1 ? 's' : ''})` : '';
  throw makeError(`${where}: ${path ? `${path}: ` : ''}${describeIssue(first!)}${more}`);
}
