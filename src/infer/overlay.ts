import { PNG } from 'pngjs';
import { writeFileAtomic } from '../io/fs.js';
import type { VoxelData } from '../data/volume.js';
import { LABEL_COLORS } from './label-colors.js';
import { drawText, GLYPH_H, textWidth } from './bitmap-font.js';

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
  let n = 0,
    sx = 0,
    sy = 0,
    sz = 0;
  for (let x = 0; x < X; x++)
    for (let y = 0; y < Y; y++)
      for (let z = 0; z < Z; z++) {
        if (labels[(x * Y + y) * Z + z]! > 0) {
          n++;
          sx += x;
          sy += y;
          sz += z;
        }
      }
  return n ? [Math.round(sx / n), Math.round(sy / n), Math.round(sz / n)] : [X >> 1, Y >> 1, Z >> 1];
}

export interface OverlayLegendEntry {
  id: number;
  name: string;
}

export interface OverlayOptions {
  /** Pixels per voxel (default: fit the tallest panel to about 384 px, at most 8). */
  scale?: number;
  alpha?: number;
  /** Classes in the legend (default: every label present, named "class N"). */
  legend?: OverlayLegendEntry[];
}

export interface OverlayLayout {
  width: number;
  height: number;
  /** Pixels per font pixel of the titles and legend. */
  textScale: number;
  /** Each panel's rectangle and its title's top-left (tx, ty). */
  panels: { x: number; y: number; w: number; h: number; title: string; tx: number; ty: number }[];
  /** Top-left of each legend entry's colour swatch (a square of `swatch` px) and of its name. */
  legend: { id: number; name: string; x: number; y: number; textX: number }[];
  swatch: number;
}

const MARGIN = 4;
const PLANES = ['axial', 'coronal', 'sagittal'] as const;

/**
 * Where everything goes: the three plane titles on a strip above their panels, the panels side by
 * side, and the legend (swatch + class name per class, wrapping) on a strip below.
 */
export function overlayLayout(shape: readonly number[], legend: readonly OverlayLegendEntry[], scale?: number): OverlayLayout {
  const [X, Y, Z] = shape as [number, number, number];
  const dims = [
    [X, Y],
    [X, Z],
    [Y, Z],
  ] as const;
  const maxH = Math.max(Y, Z);
  const s = scale ?? Math.max(1, Math.min(8, Math.floor(384 / maxH)));
  const gap = 4;
  // Titles at double size when every one fits over its panel.
  const textScale = dims.every(([w], i) => textWidth(PLANES[i]!, 2) + MARGIN <= w * s) ? 2 : 1;
  const lineH = GLYPH_H * textScale;
  const top = lineH + 2 * MARGIN;
  const panels: OverlayLayout['panels'] = [];
  let x = 0;
  for (const [i, [w, h]] of dims.entries()) {
    panels.push({ x, y: top, w: w * s, h: h * s, title: PLANES[i]!, tx: x + MARGIN, ty: MARGIN });
    x += w * s + gap;
  }
  const width = x - gap;
  const out: OverlayLayout['legend'] = [];
  let lx = MARGIN;
  let ly = top + maxH * s + MARGIN;
  for (const e of legend) {
    const w = lineH + MARGIN + textWidth(e.name, textScale);
    if (lx > MARGIN && lx + w > width) {
      lx = MARGIN;
      ly += lineH + MARGIN;
    }
    out.push({ id: e.id, name: e.name, x: lx, y: ly, textX: lx + lineH + MARGIN });
    lx += w + 3 * MARGIN;
  }
  const height = legend.length ? ly + lineH + MARGIN : top + maxH * s;
  return { width, height, textScale, panels, legend: out, swatch: lineH };
}

function labelsPresent(labels: VoxelData): OverlayLegendEntry[] {
  const seen = new Set<number>();
  for (let i = 0; i < labels.length; i++) if (labels[i]! > 0) seen.add(labels[i] as number);
  return [...seen].sort((a, b) => a - b).map((id) => ({ id, name: `class ${id}` }));
}

const labelColor = (l: number) => LABEL_COLORS[(l - 1) % LABEL_COLORS.length]!;
const WHITE = [255, 255, 255] as const;

/**
 * Renders axial, coronal and sagittal slices (voxel axes k, j, i; through the labels' centre of
 * mass) of the first image channel, windowed at its 1st–99th percentile, with the labels blended on
 * top, side by side and scaled up so small volumes are readable, each panel titled with its plane,
 * and a legend of the class colours and names below. Returns PNG bytes.
 */
export function renderOverlayPng(image: Float32Array, labels: VoxelData, shape: readonly number[], opts: OverlayOptions = {}): Uint8Array {
  const [X, Y, Z] = shape as [number, number, number];
  const [cx, cy, cz] = focus(labels, shape);
  const [lo, hi] = percentiles(image.subarray(0, X * Y * Z), 1, 99);
  const alpha = opts.alpha ?? 0.45;
  const layout = overlayLayout(shape, opts.legend ?? labelsPresent(labels), opts.scale);
  const { width, height } = layout;
  const scale = layout.panels[0]!.w / X;
  // Each panel maps (u, v) -> voxel index; v runs top to bottom, so "up" is the +axis (flip).
  const at: ((u: number, v: number) => number)[] = [
    (u, v) => (u * Y + (Y - 1 - v)) * Z + cz, // axial: i across, j up
    (u, v) => (u * Y + cy) * Z + (Z - 1 - v), // coronal: i across, k up
    (u, v) => (cx * Y + u) * Z + (Z - 1 - v), // sagittal: j across, k up
  ];
  const png = new PNG({ width, height });
  png.data.fill(0);
  for (let i = 3; i < png.data.length; i += 4) png.data[i] = 255;
  for (const [k, p] of layout.panels.entries()) {
    const pw = p.w / scale,
      ph = p.h / scale;
    for (let v = 0; v < ph; v++)
      for (let u = 0; u < pw; u++) {
        const idx = at[k]!(u, v);
        const g = Math.max(0, Math.min(255, Math.round(((image[idx]! - lo) / (hi - lo)) * 255)));
        let r = g,
          gg = g,
          b = g;
        const l = labels[idx]!;
        if (l > 0) {
          const c = labelColor(l);
          r = Math.round((1 - alpha) * g + alpha * c[0]);
          gg = Math.round((1 - alpha) * g + alpha * c[1]);
          b = Math.round((1 - alpha) * g + alpha * c[2]);
        }
        for (let dy = 0; dy < scale; dy++)
          for (let dx = 0; dx < scale; dx++) {
            const o = ((p.y + v * scale + dy) * width + p.x + u * scale + dx) * 4;
            png.data[o] = r;
            png.data[o + 1] = gg;
            png.data[o + 2] = b;
          }
      }
    drawText(png.data, width, p.tx, p.ty, p.title, layout.textScale, WHITE, p.x + p.w);
  }
  for (const e of layout.legend) {
    const c = labelColor(e.id);
    for (let dy = 0; dy < layout.swatch; dy++)
      for (let dx = 0; dx < layout.swatch; dx++) {
        const o = ((e.y + dy) * width + e.x + dx) * 4;
        png.data[o] = c[0];
        png.data[o + 1] = c[1];
        png.data[o + 2] = c[2];
      }
    drawText(png.data, width, e.textX, e.y, e.name, layout.textScale, WHITE);
  }
  return PNG.sync.write(png);
}

export async function writeOverlayPng(path: string, image: Float32Array, labels: VoxelData, shape: readonly number[], opts: OverlayOptions = {}): Promise<void> {
  await writeFileAtomic(path, renderOverlayPng(image, labels, shape, opts));
}

/** The legend of a model's classes (background left out), from model.json's label names. */
export function legendOf(labelNames: Record<string, string>): OverlayLegendEntry[] {
  return Object.keys(labelNames)
    .map(Number)
    .filter((id) => id > 0)
    .sort((a, b) => a - b)
    .map((id) => ({ id, name: labelNames[String(id)]! }));
}
