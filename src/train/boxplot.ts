/**
 * Box plots of per-case metrics (one group per class, one box per fold or per run), drawn once as a
 * small display list and rendered both as SVG (sharp, for browsers and the README) and as PNG (for
 * tools that do not show SVG), with no plotting dependency. PNG text uses a built-in 3x5 pixel font.
 *
 * Boxes: quartiles with numpy's linear percentile, whiskers to the furthest value within 1.5 IQR,
 * points beyond as outliers, the mean as a diamond.
 */
import { PNG } from 'pngjs';

export interface Box {
  name: string;
  values: number[];
  color: string;
}
export interface BoxGroup {
  name: string;
  boxes: Box[];
}
export interface BoxPlotSpec {
  title: string;
  yLabel: string;
  groups: BoxGroup[];
  yMin?: number;
  yMax?: number;
  width?: number;
  height?: number;
}

type Item =
  | { k: 'rect'; x: number; y: number; w: number; h: number; fill: string; stroke?: string }
  | { k: 'line'; x1: number; y1: number; x2: number; y2: number; stroke: string }
  | { k: 'dot'; x: number; y: number; r: number; fill: string }
  | { k: 'text'; x: number; y: number; s: string; anchor: 'start' | 'middle' | 'end'; size: number };

/** numpy.percentile(values, q) with linear interpolation, on sorted values. */
export function quantile(sorted: readonly number[], q: number): number {
  if (!sorted.length) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos),
    hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export interface BoxStats {
  q1: number;
  median: number;
  q3: number;
  lo: number;
  hi: number;
  mean: number;
  outliers: number[];
}

export function boxStats(values: readonly number[]): BoxStats | null {
  const s = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return null;
  const q1 = quantile(s, 0.25),
    median = quantile(s, 0.5),
    q3 = quantile(s, 0.75);
  const iqr = q3 - q1;
  const inside = s.filter((v) => v >= q1 - 1.5 * iqr && v <= q3 + 1.5 * iqr);
  return {
    q1,
    median,
    q3,
    lo: inside[0]!,
    hi: inside[inside.length - 1]!,
    mean: s.reduce((a, b) => a + b, 0) / s.length,
    outliers: s.filter((v) => v < q1 - 1.5 * iqr || v > q3 + 1.5 * iqr),
  };
}

function niceRange(lo: number, hi: number): [number, number] {
  if (!(hi > lo)) return [lo - 0.5, lo + 0.5];
  const step = 10 ** Math.floor(Math.log10(hi - lo)) / 2;
  return [Math.floor(lo / step) * step, Math.ceil(hi / step) * step];
}

function layout(spec: BoxPlotSpec): { W: number; H: number; items: Item[] } {
  const W = spec.width ?? Math.max(480, 120 + spec.groups.reduce((a, g) => a + g.boxes.length * 34 + 30, 0));
  const slots = spec.groups.reduce((a, g) => a + g.boxes.length, 0) + spec.groups.length;
  const slot = (W - 64 - 20) / Math.max(1, slots);
  // Box names that would run into each other under their boxes (about 6 px a character at size 10)
  // go into a legend below the plot instead: one swatch per distinct name and colour.
  const legend = spec.groups.some((g) => g.boxes.some((b) => b.name.length * 6 > slot - 4));
  const entries = legend ? [...new Map(spec.groups.flatMap((g) => g.boxes.map((b) => [`${b.name}\0${b.color}`, b] as const))).values()] : [];
  const perRow = Math.max(1, Math.floor((W - 40) / Math.max(...entries.map((b) => 24 + b.name.length * 6 + 12), 1)));
  const legendRows = Math.ceil(entries.length / perRow);
  const H = spec.height ?? 360 + legendRows * 18;
  const m = { l: 64, r: 20, t: 40, b: 64 + legendRows * 18 };
  const pw = W - m.l - m.r,
    ph = H - m.t - m.b;
  const all = spec.groups.flatMap((g) => g.boxes.flatMap((b) => b.values.filter(Number.isFinite)));
  const [y0, y1] =
    spec.yMin !== undefined && spec.yMax !== undefined ? [spec.yMin, spec.yMax] : niceRange(Math.min(...all, spec.yMin ?? Infinity), Math.max(...all, spec.yMax ?? -Infinity));
  const y = (v: number) => m.t + ph - ((Math.min(y1, Math.max(y0, v)) - y0) / (y1 - y0)) * ph;
  const items: Item[] = [{ k: 'rect', x: 0, y: 0, w: W, h: H, fill: '#ffffff' }];
  items.push({ k: 'text', x: W / 2, y: 22, s: spec.title, anchor: 'middle', size: 14 });
  items.push({ k: 'text', x: m.l, y: m.t - 8, s: spec.yLabel, anchor: 'middle', size: 12 });
  for (let i = 0; i <= 5; i++) {
    const v = y0 + ((y1 - y0) * i) / 5;
    items.push({ k: 'line', x1: m.l, x2: m.l + pw, y1: y(v), y2: y(v), stroke: '#e6e6e6' });
    items.push({ k: 'text', x: m.l - 6, y: y(v) + 4, s: String(+v.toPrecision(3)), anchor: 'end', size: 12 });
  }
  items.push({ k: 'rect', x: m.l, y: m.t, w: pw, h: ph, fill: 'none', stroke: '#888888' });
  let at = m.l + slot / 2;
  for (const g of spec.groups) {
    const start = at;
    for (const b of g.boxes) {
      const cx = at + slot / 2;
      const bw = Math.min(24, slot * 0.7);
      const st = boxStats(b.values);
      if (st) {
        items.push({ k: 'line', x1: cx, x2: cx, y1: y(st.lo), y2: y(st.q1), stroke: b.color });
        items.push({ k: 'line', x1: cx, x2: cx, y1: y(st.q3), y2: y(st.hi), stroke: b.color });
        items.push({ k: 'line', x1: cx - bw / 4, x2: cx + bw / 4, y1: y(st.lo), y2: y(st.lo), stroke: b.color });
        items.push({ k: 'line', x1: cx - bw / 4, x2: cx + bw / 4, y1: y(st.hi), y2: y(st.hi), stroke: b.color });
        items.push({ k: 'rect', x: cx - bw / 2, y: y(st.q3), w: bw, h: Math.max(1, y(st.q1) - y(st.q3)), fill: 'none', stroke: b.color });
        items.push({ k: 'line', x1: cx - bw / 2, x2: cx + bw / 2, y1: y(st.median), y2: y(st.median), stroke: b.color });
        items.push({ k: 'dot', x: cx, y: y(st.mean), r: 2.5, fill: b.color });
        for (const o of st.outliers) items.push({ k: 'dot', x: cx, y: y(o), r: 1.5, fill: b.color });
      }
      if (!legend) items.push({ k: 'text', x: cx, y: m.t + ph + 14, s: b.name, anchor: 'middle', size: 10 });
      at += slot;
    }
    items.push({ k: 'text', x: (start + at) / 2, y: m.t + ph + (legend ? 20 : 34), s: g.name, anchor: 'middle', size: 12 });
    at += slot;
  }
  const colW = (W - 40) / perRow;
  entries.forEach((b, i) => {
    const x = 20 + (i % perRow) * colW,
      yy = m.t + ph + 44 + Math.floor(i / perRow) * 18;
    items.push({ k: 'rect', x, y: yy - 9, w: 12, h: 10, fill: b.color });
    items.push({ k: 'text', x: x + 18, y: yy, s: b.name, anchor: 'start', size: 10 });
  });
  return { W, H, items };
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function renderBoxPlotSvg(spec: BoxPlotSpec): string {
  const { W, H, items } = layout(spec);
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">`];
  const f = (v: number) => +v.toFixed(1);
  for (const it of items) {
    if (it.k === 'rect') out.push(`<rect x="${f(it.x)}" y="${f(it.y)}" width="${f(it.w)}" height="${f(it.h)}" fill="${it.fill}"${it.stroke ? ` stroke="${it.stroke}"` : ''}/>`);
    else if (it.k === 'line') out.push(`<line x1="${f(it.x1)}" y1="${f(it.y1)}" x2="${f(it.x2)}" y2="${f(it.y2)}" stroke="${it.stroke}"/>`);
    else if (it.k === 'dot') out.push(`<circle cx="${f(it.x)}" cy="${f(it.y)}" r="${it.r}" fill="${it.fill}"/>`);
    else out.push(`<text x="${f(it.x)}" y="${f(it.y)}" text-anchor="${it.anchor}" font-size="${it.size}">${esc(it.s)}</text>`);
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}

// 3x5 pixel glyphs, one 3-bit row per digit (top first); lower case is drawn as upper case.
const FONT: Record<string, string> = {
  '0': '75557',
  '1': '26227',
  '2': '71747',
  '3': '71717',
  '4': '55711',
  '5': '74717',
  '6': '74757',
  '7': '71122',
  '8': '75757',
  '9': '75717',
  A: '25755',
  B: '65656',
  C: '34443',
  D: '65556',
  E: '74647',
  F: '74644',
  G: '34553',
  H: '55755',
  I: '72227',
  J: '11152',
  K: '55655',
  L: '44447',
  M: '57755',
  N: '65555',
  O: '25552',
  P: '65644',
  Q: '25563',
  R: '65655',
  S: '34216',
  T: '72222',
  U: '55557',
  V: '55552',
  W: '55775',
  X: '55255',
  Y: '55222',
  Z: '71247',
  '.': '00002',
  '-': '00700',
  _: '00007',
  ' ': '00000',
  '/': '11244',
  '(': '24442',
  ')': '21112',
  ':': '02020',
  '+': '02720',
  '%': '51245',
  ',': '00024',
  '=': '07070',
  '±': '27207',
  '³': '70000',
  '×': '05250',
  '?': '71202',
};

function hex(c: string): [number, number, number] {
  const n = parseInt(c.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

export function renderBoxPlotPng(spec: BoxPlotSpec): Uint8Array {
  const { W, H, items } = layout(spec);
  const png = new PNG({ width: W, height: H });
  const px = (x: number, y: number, c: [number, number, number]) => {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= W || y >= H) return;
    const o = (y * W + x) * 4;
    png.data[o] = c[0];
    png.data[o + 1] = c[1];
    png.data[o + 2] = c[2];
    png.data[o + 3] = 255;
  };
  const line = (x1: number, y1: number, x2: number, y2: number, c: [number, number, number]) => {
    const n = Math.max(1, Math.ceil(Math.max(Math.abs(x2 - x1), Math.abs(y2 - y1))));
    for (let i = 0; i <= n; i++) px(x1 + ((x2 - x1) * i) / n, y1 + ((y2 - y1) * i) / n, c);
  };
  for (const it of items) {
    if (it.k === 'rect') {
      if (it.fill !== 'none') {
        const c = hex(it.fill);
        for (let y = Math.round(it.y); y < Math.round(it.y + it.h); y++) for (let x = Math.round(it.x); x < Math.round(it.x + it.w); x++) px(x, y, c);
      }
      if (it.stroke) {
        const c = hex(it.stroke);
        line(it.x, it.y, it.x + it.w, it.y, c);
        line(it.x, it.y + it.h, it.x + it.w, it.y + it.h, c);
        line(it.x, it.y, it.x, it.y + it.h, c);
        line(it.x + it.w, it.y, it.x + it.w, it.y + it.h, c);
      }
    } else if (it.k === 'line') {
      line(it.x1, it.y1, it.x2, it.y2, hex(it.stroke));
    } else if (it.k === 'dot') {
      const c = hex(it.fill);
      const r = Math.ceil(it.r);
      for (let dy = -r; dy <= r; dy++) for (let dx = -r; dx <= r; dx++) if (dx * dx + dy * dy <= it.r * it.r + 0.5) px(it.x + dx, it.y + dy, c);
    } else {
      const scale = it.size >= 12 ? 2 : 1;
      const cw = 4 * scale;
      const width = it.s.length * cw - scale;
      const x0 = it.anchor === 'start' ? it.x : it.anchor === 'middle' ? it.x - width / 2 : it.x - width;
      const yTop = it.y - 5 * scale;
      [...it.s].forEach((ch, i) => {
        const g = FONT[ch.toUpperCase()] ?? FONT['?'] ?? '00000';
        for (let r = 0; r < 5; r++) {
          const bits = parseInt(g[r]!, 16);
          for (let col = 0; col < 3; col++)
            if (bits & (4 >> col)) for (let sy = 0; sy < scale; sy++) for (let sx = 0; sx < scale; sx++) px(x0 + i * cw + col * scale + sx, yTop + r * scale + sy, [0, 0, 0]);
        }
      });
    }
  }
  return PNG.sync.write(png);
}

/** A distinct colour per box (matplotlib's tab10). */
export const BOX_COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
