/// <reference types="@webgpu/types" />
/**
 * WGSL program generation and dispatch.
 *
 * A kernel supplies `fn kmain(wg: u32, li: u32)` (linear workgroup index, local invocation index)
 * and names its tensors; this module generates the rest of the shader:
 *
 * - every tensor is bound as one or more storage windows of at most `chunkElems` floats (the
 *   adapter's maxStorageBufferBindingSize, rounded down to 256 bytes), and read/written only through
 *   generated accessors `ld_<name>(i)` / `st_<name>(i, v)` that pick the window. With one window
 *   (the usual case) they are plain array accesses; tensors larger than one binding (a 48-channel
 *   96³ activation is 162 MiB, some adapters bind at most 128 MiB) get a branch per access.
 * - shapes and integer attributes are baked in as `const`s (pipelines are cached by source, and a
 *   model reuses a handful of shapes); float scalars that change between calls (AdamW's bias
 *   corrections) go through a small uniform buffer read with `U(i)`. Kernels that are costly to
 *   compile and meet many shapes (the tiled matmuls) pass their sizes as `dynamic` u32s instead.
 * - the workgroup count may exceed maxComputeWorkgroupsPerDimension: the grid is 2-D and `main`
 *   linearises it, returning early for the padding workgroups.
 */
import { addTransient, commandEncoder, context, recorded, USAGE, type GpuStorage } from './device.js';
import { cpuMs, profiling, recordCompile, recordDispatch } from './profile.js';

export type Mode = 'r' | 'w' | 'rw';

export interface TensorArg {
  name: string;
  s: GpuStorage;
  mode: Mode;
}

export interface ProgramSpec {
  /** shown in errors */
  label: string;
  /** WGSL defining `fn kmain(wg: u32, li: u32)` (and any helpers it needs). */
  src: string;
  tensors: TensorArg[];
  /** u32 constants */
  consts?: Record<string, number>;
  /** i32 constants */
  iconsts?: Record<string, number>;
  /** f32 constants, rounded to float32 */
  fconsts?: Record<string, number>;
  /** f32 values passed at run time, read with U(i) */
  uniforms?: number[];
  /**
   * u32 values passed at run time instead of baked in: kmain (only; not helper functions) reads them
   * by name like consts (`let`s read from a uniform buffer), and the grid size becomes a run-time
   * value too, so one pipeline serves every shape. For kernels whose compile is costly (workgroup
   * memory and barriers: SwiftShader takes ~2.4 s of CPU per 64×64 matmul pipeline) and whose
   * shapes vary a lot; shape-specialised consts stay the default.
   */
  dynamic?: Record<string, number>;
  /** total workgroups (linear) */
  workgroups: number;
  /** threads per workgroup (default 256) */
  wgSize?: number;
}

/** A float32 literal that parses back to exactly Math.fround(v). */
export function f32Lit(v: number): string {
  const f = Math.fround(v);
  if (!Number.isFinite(f)) throw new Error(`webgpu backend: non-finite constant ${v}`);
  if (f === 0) return Object.is(f, -0) ? '-0.0f' : '0.0f';
  return `${f.toExponential(9)}f`;
}

interface CachedPipeline {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

const pipelines = new Map<string, CachedPipeline>();

export function pipelineCount(): number {
  return pipelines.size;
}

/** Clears the pipeline cache (the device went away). */
export function resetPrograms(): void {
  pipelines.clear();
}

function windows(size: number, chunk: number): number {
  return Math.max(1, Math.ceil(size / chunk));
}

function accessors(t: TensorArg, chunk: number, firstBinding: number): { decl: string; count: number } {
  const k = windows(t.s.size, chunk);
  const access = t.mode === 'r' ? 'read' : 'read_write';
  let decl = '';
  for (let j = 0; j < k; j++) decl += `@group(0) @binding(${firstBinding + j}) var<storage, ${access}> ${t.name}_${j}: array<f32>;\n`;
  const ld = (j: number) => `${t.name}_${j}[i - ${j * chunk}u]`;
  if (k === 1) {
    decl += `fn ld_${t.name}(i: u32) -> f32 { return ${t.name}_0[i]; }\n`;
    if (t.mode !== 'r') decl += `fn st_${t.name}(i: u32, v: f32) { ${t.name}_0[i] = v; }\n`;
  } else {
    let body = '';
    for (let j = 0; j < k - 1; j++) body += `  ${j ? 'else ' : ''}if (i < ${(j + 1) * chunk}u) { return ${ld(j)}; }\n`;
    decl += `fn ld_${t.name}(i: u32) -> f32 {\n${body}  return ${ld(k - 1)};\n}\n`;
    if (t.mode !== 'r') {
      let sb = '';
      for (let j = 0; j < k - 1; j++) sb += `  ${j ? 'else ' : ''}if (i < ${(j + 1) * chunk}u) { ${ld(j)} = v; return; }\n`;
      decl += `fn st_${t.name}(i: u32, v: f32) {\n${sb}  ${ld(k - 1)} = v;\n}\n`;
    }
  }
  return { decl, count: k };
}

/** Records one compute dispatch of the program into the open command encoder. */
export function run(p: ProgramSpec): void {
  if (p.workgroups <= 0) return;
  const c = context();
  const chunk = c.chunkElems;
  const wgSize = p.wgSize ?? 256;
  const maxDim = c.maxWorkgroupsPerDim;
  const gx = Math.min(p.workgroups, maxDim);
  const gy = Math.ceil(p.workgroups / gx);
  if (gy > maxDim) throw new Error(`webgpu backend: ${p.label}: ${p.workgroups} workgroups exceed the adapter's grid`);

  const dyn: Record<string, number> | null = p.dynamic ? { ...p.dynamic, NWG: p.workgroups, WGX: gx } : null;
  let header = dyn ? `const WG: u32 = ${wgSize}u;\n` : `const WG: u32 = ${wgSize}u;\nconst NWG: u32 = ${p.workgroups}u;\nconst WGX: u32 = ${gx}u;\n`;
  for (const [k, v] of Object.entries(p.consts ?? {})) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`webgpu backend: ${p.label}: constant ${k} = ${v} is not a u32`);
    header += `const ${k}: u32 = ${v}u;\n`;
  }
  for (const [k, v] of Object.entries(p.iconsts ?? {})) {
    if (!Number.isInteger(v) || Math.abs(v) > 0x7fffffff) throw new Error(`webgpu backend: ${p.label}: constant ${k} = ${v} is not an i32`);
    header += `const ${k}: i32 = ${v}i;\n`;
  }
  for (const [k, v] of Object.entries(p.fconsts ?? {})) header += `const ${k}: f32 = ${f32Lit(v)};\n`;

  let binding = 0;
  const entries: { t: TensorArg; count: number }[] = [];
  for (const t of p.tensors) {
    const a = accessors(t, chunk, binding);
    header += a.decl;
    entries.push({ t, count: a.count });
    binding += a.count;
  }
  if (binding > c.maxStorageBuffersPerStage) {
    throw new Error(
      `webgpu backend: ${p.label} needs ${binding} storage bindings (tensors split into ${chunk * 4}-byte windows); this adapter allows ${c.maxStorageBuffersPerStage}`,
    );
  }
  const nu = p.uniforms?.length ?? 0;
  const uniformBinding = binding;
  if (nu > 0) {
    header += `struct UParams { v: array<vec4<f32>, ${Math.ceil(nu / 4)}> }\n@group(0) @binding(${uniformBinding}) var<uniform> uparams: UParams;\nfn U(i: u32) -> f32 { return uparams.v[i / 4u][i % 4u]; }\n`;
  }
  const dynNames = dyn ? Object.keys(dyn) : [];
  const dynBinding = uniformBinding + (nu > 0 ? 1 : 0);
  let dynInit = '';
  if (dyn) {
    header += `struct DParams { v: array<vec4<u32>, ${Math.ceil(dynNames.length / 4)}> }\n@group(0) @binding(${dynBinding}) var<uniform> dparams: DParams;\n`;
    dynNames.forEach((k, i) => {
      const v = dyn[k]!;
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`webgpu backend: ${p.label}: run-time value ${k} = ${v} is not a u32`);
      dynInit += `  let ${k} = dparams.v[${i >> 2}u][${i & 3}u];\n`;
    });
  }
  const main = `@compute @workgroup_size(${wgSize})\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {\n${dynInit}  let wg = wid.y * WGX + wid.x;\n  if (wg >= NWG) { return; }\n  kmain(wg, li);\n}\n`;
  const KMAIN = 'fn kmain(wg: u32, li: u32) {\n';
  if (dyn && !p.src.includes(KMAIN)) throw new Error(`webgpu backend: ${p.label}: a kernel with run-time values must define '${KMAIN.trim()}' on one line`);
  // Run-time values are `let`s read from the uniform buffer at the top of kmain and main (not
  // module-scope private variables: WGSL's uniformity analysis must see loop bounds ahead of
  // workgroupBarrier() as uniform), so only kmain itself may use them.
  const src = dyn ? p.src.replace(KMAIN, KMAIN + dynInit) : p.src;
  const code = `${header}\n${src}\n${main}`;

  let cached = pipelines.get(code);
  if (!cached) {
    const t0 = profiling ? cpuMs() : 0;
    const layoutEntries: GPUBindGroupLayoutEntry[] = [];
    for (const { t, count } of entries) {
      for (let j = 0; j < count; j++)
        layoutEntries.push({ binding: layoutEntries.length, visibility: 4 /* COMPUTE */, buffer: { type: t.mode === 'r' ? 'read-only-storage' : 'storage' } });
    }
    if (nu > 0) layoutEntries.push({ binding: uniformBinding, visibility: 4, buffer: { type: 'uniform' } });
    if (dyn) layoutEntries.push({ binding: dynBinding, visibility: 4, buffer: { type: 'uniform' } });
    const layout = c.device.createBindGroupLayout({ label: p.label, entries: layoutEntries });
    const module = c.device.createShaderModule({ label: p.label, code });
    const pipeline = c.device.createComputePipeline({
      label: p.label,
      layout: c.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: 'main' },
    });
    cached = { pipeline, layout };
    pipelines.set(code, cached);
    if (profiling) recordCompile(p.label, cpuMs() - t0);
  }

  const bgEntries: GPUBindGroupEntry[] = [];
  for (const { t, count } of entries) {
    if (t.s.freed) throw new Error(`webgpu backend: ${p.label}: tensor '${t.name}' was freed`);
    for (let j = 0; j < count; j++) {
      const start = j * chunk;
      const len = Math.max(1, Math.min(chunk, t.s.size - start));
      bgEntries.push({ binding: bgEntries.length, resource: { buffer: t.s.buffer, offset: start * 4, size: len * 4 } });
    }
  }
  if (nu > 0) {
    const ub = c.device.createBuffer({ size: Math.ceil(nu / 4) * 16, usage: USAGE.UNIFORM, mappedAtCreation: true });
    new Float32Array(ub.getMappedRange()).set(p.uniforms!);
    ub.unmap();
    addTransient(ub);
    bgEntries.push({ binding: uniformBinding, resource: { buffer: ub } });
  }
  if (dyn) {
    const db = c.device.createBuffer({ size: Math.ceil(dynNames.length / 4) * 16, usage: USAGE.UNIFORM, mappedAtCreation: true });
    new Uint32Array(db.getMappedRange()).set(dynNames.map((k) => dyn[k]!));
    db.unmap();
    addTransient(db);
    bgEntries.push({ binding: dynBinding, resource: { buffer: db } });
  }
  const bindGroup = c.device.createBindGroup({ label: p.label, layout: cached.layout, entries: bgEntries });
  const pass = commandEncoder().beginComputePass({ label: p.label });
  pass.setPipeline(cached.pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(gx, gy);
  pass.end();
  if (profiling) recordDispatch({ label: p.label, pipeline: cached.pipeline, bindGroup, gx, gy });
  recorded();
}

/** The Kahan–Babuška step alone (no workgroup memory), for kernels that reduce within one thread. */
export const WGSL_KADD_ONLY = /* wgsl */ `
fn kadd(k: vec2<f32>, x: f32) -> vec2<f32> {
  let t = k.x + x;
  var c = k.y;
  if (abs(k.x) >= abs(x)) { c = c + ((k.x - t) + x); } else { c = c + ((x - t) + k.x); }
  return vec2<f32>(t, c);
}
`;

/**
 * Shared WGSL helpers: Kahan-compensated accumulation (per thread) and a workgroup tree sum
 * (pairwise), used by every reduction instead of atomics.
 */
export const WGSL_REDUCE = /* wgsl */ `
var<workgroup> red: array<f32, 256>;
// Kahan–Babuška (Neumaier) step on (sum, compensation).
fn kadd(k: vec2<f32>, x: f32) -> vec2<f32> {
  let t = k.x + x;
  var c = k.y;
  if (abs(k.x) >= abs(x)) { c = c + ((k.x - t) + x); } else { c = c + ((x - t) + k.x); }
  return vec2<f32>(t, c);
}
// Sum of v over the 256-invocation workgroup (every invocation gets the result), in three
// barriers: 16 invocations each sum 16 neighbours in order, then every invocation sums those 16.
// Call from uniform control flow.
var<workgroup> red2: array<f32, 16>;
fn wg_sum(li: u32, v: f32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  if (li < 16u) {
    var s = 0.0f;
    for (var j = 0u; j < 16u; j = j + 1u) { s = s + red[li * 16u + j]; }
    red2[li] = s;
  }
  workgroupBarrier();
  var r = 0.0f;
  for (var j = 0u; j < 16u; j = j + 1u) { r = r + red2[j]; }
  workgroupBarrier();
  return r;
}
`;
