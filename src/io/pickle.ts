/**
 * A restricted Python unpickler: it interprets the pickle opcodes that build containers and
 * primitives (protocols 0-5 as far as torch.save uses them) and never executes anything. Every
 * GLOBAL / STACK_GLOBAL is resolved through the caller's `findClass`, every REDUCE / NEWOBJ through
 * `call`, every BUILD through `build` and every persistent id through `persistentLoad`. The caller
 * decides what exists; anything it does not know must throw. That is the whole security model: no
 * name is ever looked up in a real module system.
 *
 * Value mapping: None -> null, bool -> boolean, int -> number (bigint beyond 2^53), float -> number,
 * str -> string, bytes/bytearray -> Uint8Array, list -> Array, tuple -> PyTuple, dict -> Map
 * (insertion order kept), set/frozenset -> Set.
 */
import { InputError } from '../engine/errors.js';

export class PickleError extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'PickleError';
  }
}

/** A Python tuple (kept distinct from list so callers can tell `(a, b)` from `[a, b]`). */
export class PyTuple {
  constructor(readonly items: unknown[]) {}
}

export interface UnpicklerHooks {
  /** GLOBAL / STACK_GLOBAL. Must throw for anything not explicitly allowed. */
  findClass(module: string, name: string): unknown;
  /** REDUCE: callable(*args); NEWOBJ: cls.__new__(cls, *args) (kind tells which). */
  call(callable: unknown, args: unknown[], kind: 'reduce' | 'newobj'): unknown;
  /** BINPERSID / PERSID. */
  persistentLoad(pid: unknown): unknown;
  /** BUILD: obj.__setstate__(state); returns the object left on the stack. */
  build(obj: unknown, state: unknown): unknown;
}

export function unpickle(bytes: Uint8Array, hooks: UnpicklerHooks): unknown {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const n = bytes.byteLength;
  let pos = 0;
  let stack: unknown[] = [];
  const metastack: unknown[][] = [];
  const memo = new Map<number, unknown>();

  const need = (k: number): void => {
    if (pos + k > n) throw new PickleError(`truncated pickle (needs ${k} more bytes at offset ${pos})`);
  };
  const u8 = (): number => {
    need(1);
    return bytes[pos++]!;
  };
  const u16 = (): number => {
    need(2);
    const v = dv.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const i32 = (): number => {
    need(4);
    const v = dv.getInt32(pos, true);
    pos += 4;
    return v;
  };
  const u32 = (): number => {
    need(4);
    const v = dv.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = (): number => {
    need(8);
    const v = dv.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new PickleError(`length ${v} is too large`);
    return Number(v);
  };
  const take = (k: number): Uint8Array => {
    need(k);
    const b = bytes.subarray(pos, pos + k);
    pos += k;
    return b;
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) throw new PickleError(`truncated pickle (unterminated text line at offset ${pos})`);
    const s = new TextDecoder('latin1').decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const str = (b: Uint8Array): string => {
    try {
      return utf8.decode(b);
    } catch {
      throw new PickleError(`invalid UTF-8 string at offset ${pos - b.byteLength}`);
    }
  };
  const pop = (): unknown => {
    if (stack.length === 0) throw new PickleError(`stack underflow at offset ${pos - 1}`);
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) throw new PickleError(`stack underflow at offset ${pos - 1}`);
    return stack[stack.length - 1];
  };
  // Note: `stack.push(popMark())` would push onto the array popMark just discarded (the member
  // reference is evaluated before the argument), so results of popMark go through push().
  const push = (v: unknown): void => {
    stack.push(v);
  };
  const popMark = (): unknown[] => {
    const items = stack;
    const prev = metastack.pop();
    if (!prev) throw new PickleError(`MARK expected at offset ${pos - 1}`);
    stack = prev;
    return items;
  };
  const memoGet = (k: number): unknown => {
    if (!memo.has(k)) throw new PickleError(`memo key ${k} not found`);
    return memo.get(k);
  };
  const asDict = (d: unknown, op: string): Map<unknown, unknown> => {
    if (!(d instanceof Map)) throw new PickleError(`${op} on a non-dict`);
    return d;
  };
  const asList = (l: unknown, op: string): unknown[] => {
    if (!Array.isArray(l)) throw new PickleError(`${op} on a non-list`);
    return l;
  };
  /** Little-endian two's-complement integer of arbitrary length (LONG1 / LONG4). */
  const long = (b: Uint8Array): number | bigint => {
    if (b.byteLength === 0) return 0;
    let v = 0n;
    for (let i = b.byteLength - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b[b.byteLength - 1]! & 0x80) v -= 1n << BigInt(8 * b.byteLength);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const textInt = (s: string): number | bigint | boolean => {
    // Protocol 0 encodes True/False as INT "01"/"00".
    if (s === '01') return true;
    if (s === '00') return false;
    const t = s.endsWith('L') ? s.slice(0, -1) : s;
    if (!/^[+-]?\d+$/.test(t)) throw new PickleError(`bad integer literal '${s}'`);
    const v = BigInt(t);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };

  for (;;) {
    const at = pos;
    const op = u8();
    switch (op) {
      case 0x80: {
        // PROTO
        const proto = u8();
        if (proto > 5) throw new PickleError(`unsupported pickle protocol ${proto}`);
        break;
      }
      case 0x95:
        u64();
        break; // FRAME: framing is only a read-ahead hint
      case 0x2e: // STOP
        // Python returns the top of the stack; an empty stack means a corrupt stream.
        if (stack.length === 0) throw new PickleError('STOP with an empty stack');
        return stack[stack.length - 1];

      // ---- globals and calls (delegated; the hooks enforce the allow-list) ----
      case 0x63: {
        // GLOBAL
        const module = line();
        const name = line();
        stack.push(hooks.findClass(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw new PickleError('STACK_GLOBAL needs two strings');
        stack.push(hooks.findClass(module, name));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        if (!(args instanceof PyTuple)) throw new PickleError(`REDUCE arguments are not a tuple (offset ${at})`);
        stack.push(hooks.call(fn, args.items, 'reduce'));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        const cls = pop();
        if (!(args instanceof PyTuple)) throw new PickleError(`NEWOBJ arguments are not a tuple (offset ${at})`);
        stack.push(hooks.call(cls, args.items, 'newobj'));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!(args instanceof PyTuple)) throw new PickleError(`NEWOBJ_EX arguments are not a tuple (offset ${at})`);
        if (!(kwargs instanceof Map) || kwargs.size !== 0) throw new PickleError('NEWOBJ_EX with keyword arguments is not supported');
        stack.push(hooks.call(cls, args.items, 'newobj'));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        const obj = pop();
        stack.push(hooks.build(obj, state));
        break;
      }
      case 0x51:
        stack.push(hooks.persistentLoad(pop()));
        break; // BINPERSID
      case 0x50:
        stack.push(hooks.persistentLoad(line()));
        break; // PERSID
      case 0x69:
      case 0x6f: // INST, OBJ: old-style class instantiation
        throw new PickleError(`opcode ${op === 0x69 ? 'INST' : 'OBJ'} is not supported (class instantiation)`);
      case 0x82:
      case 0x83:
      case 0x84: // EXT1/2/4: the copyreg extension registry resolves to arbitrary callables
        throw new PickleError('extension-registry opcodes (EXT1/EXT2/EXT4) are not supported');
      case 0x97:
      case 0x98: // NEXT_BUFFER, READONLY_BUFFER (out-of-band buffers)
        throw new PickleError('out-of-band buffers (pickle protocol 5) are not supported');

      // ---- memo ----
      case 0x71:
        memo.set(u8(), top());
        break; // BINPUT
      case 0x72:
        memo.set(u32(), top());
        break; // LONG_BINPUT
      case 0x94:
        memo.set(memo.size, top());
        break; // MEMOIZE
      case 0x70:
        memo.set(Number(line()), top());
        break; // PUT
      case 0x68:
        stack.push(memoGet(u8()));
        break; // BINGET
      case 0x6a:
        stack.push(memoGet(u32()));
        break; // LONG_BINGET
      case 0x67:
        stack.push(memoGet(Number(line())));
        break; // GET

      // ---- stack manipulation ----
      case 0x28:
        metastack.push(stack);
        stack = [];
        break; // MARK
      case 0x30:
        pop();
        break; // POP
      case 0x31:
        popMark();
        break; // POP_MARK
      case 0x32:
        stack.push(top());
        break; // DUP

      // ---- containers ----
      case 0x29:
        stack.push(new PyTuple([]));
        break; // EMPTY_TUPLE
      case 0x74:
        push(new PyTuple(popMark()));
        break; // TUPLE
      case 0x85:
        stack.push(new PyTuple([pop()]));
        break; // TUPLE1
      case 0x86: {
        const b = pop();
        const a = pop();
        stack.push(new PyTuple([a, b]));
        break;
      } // TUPLE2
      case 0x87: {
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push(new PyTuple([a, b, c]));
        break;
      } // TUPLE3
      case 0x5d:
        stack.push([]);
        break; // EMPTY_LIST
      case 0x6c:
        push(popMark());
        break; // LIST
      case 0x61: {
        const v = pop();
        asList(top(), 'APPEND').push(v);
        break;
      } // APPEND
      case 0x65: {
        const items = popMark();
        const l = asList(top(), 'APPENDS');
        for (const it of items) l.push(it);
        break;
      } // APPENDS (no spread: lists can exceed the argument limit)
      case 0x7d:
        stack.push(new Map());
        break; // EMPTY_DICT
      case 0x64: {
        // DICT
        const items = popMark();
        const d = new Map<unknown, unknown>();
        for (let i = 0; i + 1 < items.length; i += 2) d.set(items[i], items[i + 1]);
        stack.push(d);
        break;
      }
      case 0x73: {
        const v = pop();
        const k = pop();
        asDict(top(), 'SETITEM').set(k, v);
        break;
      } // SETITEM
      case 0x75: {
        // SETITEMS
        const items = popMark();
        if (items.length % 2) throw new PickleError('SETITEMS with an odd number of items');
        const d = asDict(top(), 'SETITEMS');
        for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
        break;
      }
      case 0x8f:
        stack.push(new Set());
        break; // EMPTY_SET
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) throw new PickleError('ADDITEMS on a non-set');
        for (const it of items) s.add(it);
        break;
      }
      case 0x91:
        push(new Set(popMark()));
        break; // FROZENSET

      // ---- primitives ----
      case 0x4e:
        stack.push(null);
        break; // NONE
      case 0x88:
        stack.push(true);
        break; // NEWTRUE
      case 0x89:
        stack.push(false);
        break; // NEWFALSE
      case 0x4a:
        stack.push(i32());
        break; // BININT
      case 0x4b:
        stack.push(u8());
        break; // BININT1
      case 0x4d:
        stack.push(u16());
        break; // BININT2
      case 0x8a:
        stack.push(long(take(u8())));
        break; // LONG1
      case 0x8b: {
        // LONG4
        const k = i32();
        if (k < 0) throw new PickleError('LONG4 with a negative length');
        stack.push(long(take(k)));
        break;
      }
      case 0x49:
        stack.push(textInt(line()));
        break; // INT
      case 0x4c:
        stack.push(textInt(line()));
        break; // LONG
      case 0x46: {
        // FLOAT
        const s = line();
        const v = Number(s);
        if (Number.isNaN(v) && !/nan/i.test(s)) throw new PickleError(`bad float literal '${s}'`);
        stack.push(v);
        break;
      }
      case 0x47: {
        need(8);
        stack.push(dv.getFloat64(pos, false));
        pos += 8;
        break;
      } // BINFLOAT (big-endian)
      case 0x58:
        stack.push(str(take(u32())));
        break; // BINUNICODE
      case 0x8c:
        stack.push(str(take(u8())));
        break; // SHORT_BINUNICODE
      case 0x8d:
        stack.push(str(take(u64())));
        break; // BINUNICODE8
      case 0x54: {
        // BINSTRING (python 2 str; torch.load decodes these as UTF-8)
        const k = i32();
        if (k < 0) throw new PickleError('BINSTRING with a negative length');
        stack.push(str(take(k)));
        break;
      }
      case 0x55:
        stack.push(str(take(u8())));
        break; // SHORT_BINSTRING
      case 0x42:
        stack.push(take(u32()).slice());
        break; // BINBYTES
      case 0x43:
        stack.push(take(u8()).slice());
        break; // SHORT_BINBYTES
      case 0x8e:
        stack.push(take(u64()).slice());
        break; // BINBYTES8
      case 0x96:
        stack.push(take(u64()).slice());
        break; // BYTEARRAY8
      default:
        throw new PickleError(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')} at offset ${at}`);
    }
  }
}
