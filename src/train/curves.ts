/**
 * Training curves as a standalone SVG (no plotting dependency): loss per step on the left axis and
 * validation Dice on the right, so a run can be judged at a glance in any browser or README.
 */
export interface CurvePoint {
  step: number;
  value: number;
}

export interface CurveSeries {
  name: string;
  points: CurvePoint[];
  color: string;
  axis: 'left' | 'right';
}

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const e = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * e >= v) return m * e;
  return 10 * e;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Moving average that keeps noisy per-step losses readable. */
export function smooth(points: CurvePoint[], window: number): CurvePoint[] {
  if (window <= 1) return points;
  const out: CurvePoint[] = [];
  let acc = 0;
  for (let i = 0; i < points.length; i++) {
    acc += points[i]!.value;
    if (i >= window) acc -= points[i - window]!.value;
    out.push({ step: points[i]!.step, value: acc / Math.min(i + 1, window) });
  }
  return out;
}

export function renderCurvesSvg(title: string, series: CurveSeries[], opts: { width?: number; height?: number; leftLabel?: string; rightLabel?: string } = {}): string {
  const W = opts.width ?? 720;
  const H = opts.height ?? 360;
  const m = { l: 60, r: 60, t: 36, b: 44 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const all = series.flatMap((s) => s.points);
  const maxStep = Math.max(1, ...all.map((p) => p.step));
  const leftMax = niceMax(
    Math.max(
      0,
      ...series
        .filter((s) => s.axis === 'left')
        .flatMap((s) => s.points.map((p) => p.value))
        .filter(Number.isFinite),
    ),
  );
  const rightMax = 1; // Dice lives in [0, 1]
  const x = (step: number) => m.l + (step / maxStep) * pw;
  const y = (v: number, axis: 'left' | 'right') => m.t + ph - (Math.max(0, v) / (axis === 'left' ? leftMax : rightMax)) * ph;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`);
  for (let i = 0; i <= 5; i++) {
    const yy = m.t + (ph * i) / 5;
    parts.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${yy}" y2="${yy}" stroke="#eee"/>`);
    parts.push(`<text x="${m.l - 6}" y="${yy + 4}" text-anchor="end">${+(leftMax * (1 - i / 5)).toPrecision(3)}</text>`);
    parts.push(`<text x="${m.l + pw + 6}" y="${yy + 4}">${+(rightMax * (1 - i / 5)).toFixed(2)}</text>`);
    const sx = m.l + (pw * i) / 5;
    parts.push(`<text x="${sx}" y="${m.t + ph + 16}" text-anchor="middle">${Math.round((maxStep * i) / 5)}</text>`);
  }
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  parts.push(`<text x="${m.l + pw / 2}" y="${H - 8}" text-anchor="middle">step</text>`);
  parts.push(`<text transform="translate(16 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(opts.leftLabel ?? 'loss')}</text>`);
  parts.push(`<text transform="translate(${W - 12} ${m.t + ph / 2}) rotate(90)" text-anchor="middle">${esc(opts.rightLabel ?? 'Dice')}</text>`);
  series.forEach((s, k) => {
    const pts = s.points.filter((p) => Number.isFinite(p.value));
    if (pts.length) {
      const d = pts.map((p, i) => `${i ? 'L' : 'M'}${x(p.step).toFixed(1)},${y(p.value, s.axis).toFixed(1)}`).join('');
      parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.5"/>`);
      if (pts.length < 60) for (const p of pts) parts.push(`<circle cx="${x(p.step).toFixed(1)}" cy="${y(p.value, s.axis).toFixed(1)}" r="2.5" fill="${s.color}"/>`);
    }
    parts.push(`<rect x="${m.l + 10}" y="${m.t + 8 + k * 16}" width="12" height="3" fill="${s.color}"/><text x="${m.l + 28}" y="${m.t + 13 + k * 16}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
