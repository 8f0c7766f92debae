import { PNG } from 'pngjs';
import { writeFileAtomic } from '../io/fs.js';
import type { VoxelData } from '../data/volume.js';
import { LABEL_COLORS } from './label-colors.js';

export { LABEL_COLORS } from './label-colors.js';


function percentiles(data: Float32Array, lo: number, hi: number): [number, number] {
  const step = Math.max(1, Math.floor(data.length / 100000));
  const s: number[] = [];
  for (let i = 0; i < data.length; i += step) if (Number.isFinite(data[i]!)) s.push(data[i]!);
  s.sort((a, b) => a - b);
  if (!s.length) return [0, 1];
  const a = s[Math.floor((lo / 100) * (s.length - 1))]!;
  const b = s[Math.floor((hi / 100) * (s.length - 1))]!;
  return [a, b > a ? b : a + 1];
}

/** Centre of mass of the foreground (or the volume centre when there is none). */
function focus(labels: VoxelData, shape: readonly number[]): [number, number, number] {
  const [X, Y, Z] = shape as [number, number, number];
  let n = 0, sx = 0, sy = 0, sz = 0;
  for (let x = 0; x < X; x++) for (let y = 0; y < Y; y++) for (let z = 0; z < Z; z++) {
    if (labels[(x * Y + y) * Z + z]! > 0) { n++; sx += x; sy += y; sz += z; }
  }
  return n ? [Math.round(sx / n), Math.round(sy / n), Math.round(sz / n)] : [X >> 1, Y >> 1, Z >> 1];
}

/**
 * Renders axial, coronal and sagittal slices (voxel axes k, j, i; through the labels' centre of
 * mass) of the first image channel, windowed at its 1st–99th percentile, with the labels blended on
 * top, side by side and scaled up so small volumes are readable. Returns PNG bytes.
 */
export function renderOverlayPng(image: Float32Array, labels: VoxelData, shape: readonly number[], opts: { scale?: number; alpha?: number } = {}): Uint8Array {
  const [X, Y, Z] = shape as [number, number, number];
  const [cx, cy, cz] = focus(labels, shape);
  const [lo, hi] = percentiles(image.subarray(0, X * Y * Z), 1, 99);
  const alpha = opts.alpha ?? 0.45;
  // Each panel maps (u, v) -> voxel index; v runs top to bottom, so "up" is the +axis (flip).
  const panels: { w: number; h: number; at: (u: number, v: number) => number }[] = [
    { w: X, h: Y, at: (u, v) => (u * Y + (Y - 1 - v)) * Z + cz }, // axial: i across, j up
    { w: X, h: Z, at: (u, v) => (u * Y + cy) * Z + (Z - 1 - v) }, // coronal: i across, k up
    { w: Y, h: Z, at: (u, v) => (cx * Y + u) * Z + (Z - 1 - v) }, // sagittal: j across, k up
  ];
  const maxH = Math.max(...panels.map((p) => p.h));
  const scale = opts.scale ?? Math.max(1, Math.min(8, Math.floor(384 / maxH)));
  const gap = 4;
  const width = panels.reduce((a, p) => a + p.w * scale, 0) + gap * (panels.length - 1);
  const height = maxH * scale;
  const png = new PNG({ width, height });
  png.data.fill(0);
  for (let i = 3; i < png.data.length; i += 4) png.data[i] = 255;
  let ox = 0;
  for (const p of panels) {
    for (let v = 0; v < p.h; v++) for (let u = 0; u < p.w; u++) {
      const idx = p.at(u, v);
      const g = Math.max(0, Math.min(255, Math.round(((image[idx]! - lo) / (hi - lo)) * 255)));
      let r = g, gg = g, b = g;
      const l = labels[idx]!;
      if (l > 0) {
        const c = LABEL_COLORS[(l - 1) % LABEL_COLORS.length]!;
        r = Math.round((1 - alpha) * g + alpha * c[0]);
        gg = Math.round((1 - alpha) * g + alpha * c[1]);
        b = Math.round((1 - alpha) * g + alpha * c[2]);
      }
      for (let dy = 0; dy < scale; dy++) for (let dx = 0; dx < scale; dx++) {
        const o = ((v * scale + dy) * width + ox + u * scale + dx) * 4;
        png.data[o] = r; png.data[o + 1] = gg; png.data[o + 2] = b;
      }
    }
    ox += p.w * scale + gap;
  }
  return PNG.sync.write(png);
}

export async function writeOverlayPng(path: string, image: Float32Array, labels: VoxelData, shape: readonly number[]): Promise<void> {
  await writeFileAtomic(path, renderOverlayPng(image, labels, shape));
}
