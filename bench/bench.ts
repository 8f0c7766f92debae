/**
 * `npm run bench [-- --json FILE] [--only fwd64,conv3x3] [--reps N] [--backend native|webgpu] [--tiny]`:
 * the native backend against onnxruntime-node (CPU, same thread count) on the paper configuration
 * of 3D UX-Net and on the conv micro-benchmarks. `--backend webgpu` times the WebGPU backend instead
 * (the adapter is printed; ORT fields are null: onnxruntime-node has no WebGPU counterpart here);
 * `--tiny` uses the small 8/16/32/64 network, for slow adapters such as SwiftShader. Every workload runs in its own child process (clean peak RSS); min and median
 * of N timed runs after one warm-up. PyTorch is timed on the same workloads, network sizes and threads by
 * bench/torch_bench.py (one process per workload) when a python3 with torch is found ($UXNET_PYTHON, python3,
 * /usr/bin/python3); the JSON then adds torch_min_s, torch_median_s, ratio_torch and torch_peak_rss_mb.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const WORKLOADS = [
  'fwd64',
  'fwd96',
  'train64',
  'train96',
  'conv3x3',
  'dw7',
  'convT',
  'norm',
  'gemm',
  'attn',
  'swin_unetr.fwd96',
  'swin_unetr.train96',
  'unetr.fwd96',
  'unetr.train96',
  'nnformer.fwd96',
  'nnformer.train96',
  'transbts.fwd96',
  'transbts.train96',
] as const;
type Workload = (typeof WORKLOADS)[number];
const HAS_ORT: Record<Workload, boolean> = {
  fwd64: true,
  fwd96: true,
  train64: false,
  train96: false,
  conv3x3: true,
  dw7: true,
  convT: true,
  norm: true,
  gemm: true,
  attn: true,
  'swin_unetr.fwd96': true,
  'swin_unetr.train96': false,
  'unetr.fwd96': true,
  'unetr.train96': false,
  'nnformer.fwd96': true,
  'nnformer.train96': false,
  'transbts.fwd96': true,
  'transbts.train96': false,
};
const DESCRIPTION: Record<Workload, string> = {
  fwd64: 'UX-Net forward 1x1x64^3 (paper config)',
  fwd96: 'UX-Net forward 1x1x96^3 (paper config)',
  train64: 'train step 64^3 (fwd+DiceCE+bwd+AdamW)',
  train96: 'train step 96^3 (fwd+DiceCE+bwd+AdamW)',
  conv3x3: 'conv3d 48->48 k3 at 96^3',
  dw7: 'depthwise 7^3 x 48 at 48^3',
  convT: 'conv-transpose 96->48 k2s2 to 96^3',
  norm: 'instance norm + LeakyReLU 48 ch at 96^3',
  gemm: 'linear 4096x768 -> 768 (x·wT, transformer MLP/QKV size)',
  attn: 'batched q·kT 1029 x (343x16 · 16x343) (Swin 7^3 windows, 3 heads)',
  'swin_unetr.fwd96': 'SwinUNETR forward 1x1x96^3 (official FLARE config, feature_size 48, out 5)',
  'swin_unetr.train96': 'SwinUNETR train step 96^3 (fwd+DiceCE+bwd+AdamW)',
  'unetr.fwd96': 'UNETR forward 1x1x96^3 (official FLARE config, hidden 768, out 5)',
  'unetr.train96': 'UNETR train step 96^3 (fwd+DiceCE+bwd+AdamW)',
  'nnformer.fwd96': 'nnFormer forward 1x1x96^3 (official FLARE config, 149.3 M params)',
  'nnformer.train96': 'nnFormer train step 96^3 (fwd+DiceCE+bwd+AdamW)',
  'transbts.fwd96': 'TransBTS forward 1x1x96^3 (official config, 5 classes)',
  'transbts.train96': 'TransBTS train step 96^3 (fwd+DiceCE+bwd+AdamW)',
};

export interface WorkerResult {
  times: number[];
  gflop: number | null;
  peakRssMb: number;
  info?: string;
}

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function runWorker(w: Workload, impl: 'ours' | 'ort', reps: number, backend: string, config: string): WorkerResult | { error: string } {
  const self = fileURLToPath(import.meta.url);
  const r = spawnSync(process.execPath, ['--max-old-space-size=8192', join(dirname(self), 'worker.js'), w, impl, String(reps), backend, config], {
    encoding: 'utf8',
    maxBuffer: 1 << 24,
    env: process.env,
  });
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (r.status !== 0 || !line) return { error: `${impl} ${w} failed (status ${r.status}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}` };
  return JSON.parse(line.slice(7)) as WorkerResult;
}

/**
 * The first Python that can `import torch`: $UXNET_PYTHON, then `python3` on the PATH, then Debian's
 * /usr/bin/python3 (python3-torch installs there, and a pyenv shim on the PATH would hide it).
 */
function torchPython(): string | null {
  const candidates = [process.env.UXNET_PYTHON, 'python3', '/usr/bin/python3'].filter((c): c is string => !!c);
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' });
    if (r.status === 0) return py;
  }
  return null;
}

interface TorchResult {
  minS: number;
  medianS: number;
  peakRssMb: number | null;
}

/** The `NAME: min X s, median Y s [R GFLOP/s], peak RSS Z MB` line of bench/torch_bench.py for `name`. */
function parseTorchLine(text: string, name: string): TorchResult | null {
  for (const m of text.matchAll(/^([\w.]+): min ([\d.]+) s, median ([\d.]+) s(?:.*?, peak RSS ([\d.]+) MB)?/gm)) {
    if (m[1] === name) return { minS: Number(m[2]), medianS: Number(m[3]), peakRssMb: m[4] === undefined ? null : Number(m[4]) };
  }
  return null;
}

/**
 * PyTorch on one workload in its own process (as ours and ORT: the peak RSS is that workload's), same
 * threads, same network size (`--tiny` passed on).
 */
function runTorch(py: string, w: Workload, reps: number, threads: string, config: string): TorchResult | { error: string } {
  const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'torch_bench.py');
  const argv = [script, '--threads', threads, '--reps', String(reps), '--only', w, ...(config === 'tiny' ? ['--tiny'] : [])];
  const t = spawnSync(py, argv, { encoding: 'utf8', maxBuffer: 1 << 24 });
  const r = t.status === 0 ? parseTorchLine(t.stdout, w) : null;
  return r ?? { error: `PyTorch ${w} failed (status ${t.status}): ${(t.stderr || t.stdout).trim().split('\n').slice(-3).join(' | ')}` };
}

function main(): void {
  const args = process.argv.slice(2);
  let jsonFile: string | null = null;
  let only: Workload[] = [...WORKLOADS];
  let reps = 3;
  let backend = 'native';
  let config = 'paper';
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--json') jsonFile = args[++i] ?? null;
    else if (a === '--backend') backend = args[++i] ?? '';
    else if (a === '--tiny') config = 'tiny';
    else if (a === '--only') only = (args[++i] ?? '').split(',').filter((x): x is Workload => (WORKLOADS as readonly string[]).includes(x));
    else if (a === '--reps') reps = Math.max(3, Number(args[++i]) || 3);
    else if (a === '--help' || a === '-h') {
      console.log(
        'usage: npm run bench -- [--json FILE] [--only fwd64,fwd96,train64,train96,conv3x3,dw7,convT,norm,gemm,attn,swin_unetr.fwd96,swin_unetr.train96,unetr.fwd96,unetr.train96,nnformer.fwd96,nnformer.train96,transbts.fwd96,transbts.train96] [--reps N>=3] [--backend native|webgpu] [--tiny]',
      );
      return;
    }
  }
  if (backend !== 'native' && backend !== 'webgpu') {
    console.error(`bench: --backend must be native or webgpu, got '${backend}'`);
    process.exitCode = 2;
    return;
  }
  const gpu = backend === 'webgpu';
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const threads = process.env.UXNET_THREADS ?? String(cpus().length);
  console.log(
    `machine: ${cpu}, ${cpus().length} logical cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM; node ${process.version}; ${gpu ? 'backend webgpu' : `threads ${threads} (ours and ORT)`}; model ${config === 'tiny' ? 'tiny (8/16/32/64, hidden 128)' : 'paper (48/96/192/384, hidden 768)'}`,
  );
  let adapterShown = false;
  const py = gpu ? null : torchPython();
  const torch = py
    ? `PyTorch ${spawnSync(py, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' }).stdout.trim()} (${py}, same threads)`
    : gpu
      ? 'skipped (PyTorch CUDA timing needs a GPU machine; see README)'
      : 'skipped (no python3 with torch: tried $UXNET_PYTHON, python3, /usr/bin/python3)';
  console.log(`PyTorch: ${torch}`);
  const results: Record<string, unknown> = {};
  const rows: string[][] = [
    [
      'workload',
      'ours min s',
      'ours median s',
      'GFLOP/s',
      'ORT min s',
      'ORT median s',
      'ratio ours/ORT',
      'peak RSS MB',
      'PyTorch median s',
      'ratio ours/PyTorch',
      'PyTorch RSS MB',
    ],
  ];
  for (const w of only) {
    process.stderr.write(`running ${w} ...\n`);
    const ours = runWorker(w, 'ours', reps, backend, config);
    const ort = HAS_ORT[w] && !gpu ? runWorker(w, 'ort', reps, backend, config) : null;
    const pt = py ? runTorch(py, w, reps, threads, config) : null;
    if (gpu && !adapterShown && !('error' in ours) && ours.info) {
      console.log(`webgpu adapter: ${(JSON.parse(ours.info) as { adapter?: string }).adapter ?? 'unknown'}`);
      adapterShown = true;
    }
    if ('error' in ours) console.error(ours.error);
    if (ort && 'error' in ort) console.error(ort.error);
    if (pt && 'error' in pt) console.error(pt.error);
    const o = 'error' in ours ? null : ours;
    const r = ort && !('error' in ort) ? ort : null;
    const t = pt && !('error' in pt) ? pt : null;
    const entry = {
      description:
        config === 'tiny' && w.match(/^(fwd|train)/)
          ? DESCRIPTION[w].replace('(paper config)', '').trimEnd() + ' (tiny config 8/16/32/64)'
          : config === 'tiny' && w.includes('.')
            ? DESCRIPTION[w].replace(/\(official FLARE config[^)]*\)/, '(tiny config)')
            : DESCRIPTION[w],
      ours_min_s: o ? Math.min(...o.times) : null,
      ours_median_s: o ? median(o.times) : null,
      ours_times_s: o?.times ?? null,
      gflop: o?.gflop ?? null,
      gflops_per_s: o && o.gflop ? o.gflop / median(o.times) : null,
      ort_min_s: r ? Math.min(...r.times) : null,
      ort_median_s: r ? median(r.times) : null,
      ratio: o && r ? median(o.times) / median(r.times) : null,
      peak_rss_mb: o?.peakRssMb ?? null,
      ort_peak_rss_mb: r?.peakRssMb ?? null,
      torch_min_s: t?.minS ?? null,
      torch_median_s: t?.medianS ?? null,
      ratio_torch: o && t ? median(o.times) / t.medianS : null,
      torch_peak_rss_mb: t?.peakRssMb ?? null,
      info: o?.info,
    };
    results[w] = entry;
    const f = (v: number | null, d = 3) => (v === null ? '-' : v.toFixed(d));
    rows.push([
      w,
      f(entry.ours_min_s),
      f(entry.ours_median_s),
      f(entry.gflops_per_s, entry.gflops_per_s !== null && entry.gflops_per_s < 10 ? 2 : 0),
      f(entry.ort_min_s),
      f(entry.ort_median_s),
      f(entry.ratio, 2),
      f(entry.peak_rss_mb, 0),
      f(entry.torch_median_s),
      f(entry.ratio_torch, 2),
      f(entry.torch_peak_rss_mb, 0),
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const r of rows) console.log(r.map((c, i) => c.padStart(widths[i]!)).join('  '));
  if (jsonFile) {
    const machine = { cpu, cores: cpus().length, threads: Number(threads), node: process.version, torch, backend, model: config };
    for (const v of Object.values(results)) (v as Record<string, unknown>).machine = machine;
    writeFileSync(jsonFile, JSON.stringify(results, null, 2) + '\n');
    console.log(`wrote ${jsonFile}`);
  }
}

main();
