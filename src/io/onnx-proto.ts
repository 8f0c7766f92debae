/**
 * A minimal protobuf writer for the subset of onnx.proto (ONNX IR) that model export needs:
 * ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto. Field numbers follow
 * https://github.com/onnx/onnx/blob/main/onnx/onnx.proto. Repeated scalars are written unpacked (proto2).
 */

class Writer {
  private chunks: Uint8Array[] = [];
  private cur: number[] = [];
  private size = 0;

  private flush(): void {
    if (this.cur.length) {
      this.chunks.push(Uint8Array.from(this.cur));
      this.size += this.cur.length;
      this.cur = [];
    }
  }
  varint(v: number | bigint): void {
    let b = BigInt.asUintN(64, BigInt(v));
    do {
      let byte = Number(b & 0x7fn);
      b >>= 7n;
      if (b) byte |= 0x80;
      this.cur.push(byte);
    } while (b);
  }
  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }
  bytes(field: number, data: Uint8Array): void {
    this.tag(field, 2);
    this.varint(data.length);
    this.flush();
    this.chunks.push(data);
    this.size += data.length;
  }
  string(field: number, s: string): void {
    this.bytes(field, new TextEncoder().encode(s));
  }
  int(field: number, v: number | bigint): void {
    this.tag(field, 0);
    this.varint(v);
  }
  float(field: number, v: number): void {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    for (const x of b) this.cur.push(x);
  }
  message(field: number, m: Writer): void {
    this.bytes(field, m.finish());
  }
  finish(): Uint8Array {
    this.flush();
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

export const ONNX_FLOAT = 1;
export const ONNX_INT64 = 7;

export type OnnxAttr =
  | { name: string; type: 'int'; value: number }
  | { name: string; type: 'float'; value: number }
  | { name: string; type: 'ints'; value: readonly number[] }
  | { name: string; type: 'string'; value: string };

export interface OnnxNode {
  opType: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  attrs?: OnnxAttr[];
}

export interface OnnxTensor {
  name: string;
  dims: readonly number[];
  dataType: number;
  /** little-endian bytes */
  raw: Uint8Array;
}

export interface OnnxValueInfo {
  name: string;
  elemType: number;
  /** a number, or a symbolic dimension name */
  dims: readonly (number | string)[];
}

export interface OnnxModel {
  producer: string;
  opset: number;
  graphName: string;
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  docString?: string;
}

function attrProto(a: OnnxAttr): Writer {
  const w = new Writer();
  w.string(1, a.name);
  switch (a.type) {
    case 'float':
      w.float(2, a.value);
      w.int(20, 1);
      break;
    case 'int':
      w.int(3, a.value);
      w.int(20, 2);
      break;
    case 'string':
      w.string(4, a.value);
      w.int(20, 3);
      break;
    case 'ints':
      for (const v of a.value) w.int(8, v);
      w.int(20, 7);
      break;
  }
  return w;
}

function valueInfo(v: OnnxValueInfo): Writer {
  const shape = new Writer();
  for (const d of v.dims) {
    const dim = new Writer();
    if (typeof d === 'number') dim.int(1, d);
    else dim.string(2, d);
    shape.message(1, dim);
  }
  const tt = new Writer();
  tt.int(1, v.elemType);
  tt.message(2, shape);
  const type = new Writer();
  type.message(1, tt);
  const w = new Writer();
  w.string(1, v.name);
  w.message(2, type);
  return w;
}

/** Serialises a model to ONNX protobuf bytes. */
export function encodeOnnxModel(m: OnnxModel): Uint8Array {
  const g = new Writer();
  m.nodes.forEach((n, i) => {
    const w = new Writer();
    for (const s of n.inputs) w.string(1, s);
    for (const s of n.outputs) w.string(2, s);
    w.string(3, n.name ?? `${n.opType}_${i}`);
    w.string(4, n.opType);
    for (const a of n.attrs ?? []) w.message(5, attrProto(a));
    g.message(1, w);
  });
  g.string(2, m.graphName);
  for (const t of m.initializers) {
    const w = new Writer();
    for (const d of t.dims) w.int(1, d);
    w.int(2, t.dataType);
    w.string(8, t.name);
    w.bytes(9, t.raw);
    g.message(5, w);
  }
  for (const v of m.inputs) g.message(11, valueInfo(v));
  for (const v of m.outputs) g.message(12, valueInfo(v));
  const model = new Writer();
  model.int(1, 8); // ir_version 8 (ONNX 1.10+, opset up to 17/18)
  model.string(2, m.producer);
  model.message(7, g);
  if (m.docString) model.string(6, m.docString);
  const opset = new Writer();
  opset.string(1, '');
  opset.int(2, m.opset);
  model.message(8, opset);
  return model.finish();
}

export function floatTensor(name: string, dims: readonly number[], data: Float32Array): OnnxTensor {
  const raw = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  return { name, dims, dataType: ONNX_FLOAT, raw };
}

export function int64Tensor(name: string, values: readonly number[]): OnnxTensor {
  const raw = new Uint8Array(values.length * 8);
  const dv = new DataView(raw.buffer);
  values.forEach((v, i) => dv.setBigInt64(i * 8, BigInt(v), true));
  return { name, dims: [values.length], dataType: ONNX_INT64, raw };
}
