/**
 * Overlay PNGs carry their own key: each panel is titled with its plane and a legend shows every
 * class's colour next to its name. Checked on the decoded pixels at the places the layout gives.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PNG } from 'pngjs';
import { overlayLayout, renderOverlayPng, legendOf, LABEL_COLORS } from '../../src/infer/overlay.js';
import { glyph } from '../../src/infer/bitmap-font.js';

const shape = [20, 16, 12] as const;
const n = shape[0] * shape[1] * shape[2];
const image = Float32Array.from({ length: n }, (_, i) => i % 13);
const labels = new Uint8Array(n);
for (let i = 0; i < n; i++) labels[i] = i % 11 === 0 ? 2 : i % 7 === 0 ? 1 : 0;

function pixel(png: PNG, x: number, y: number): number[] {
  const o = (y * png.width + x) * 4;
  return [png.data[o]!, png.data[o + 1]!, png.data[o + 2]!];
}

const WHITE = [255, 255, 255];
const BLACK = [0, 0, 0];

/** Asserts that the first column of `ch` drawn at (x, y) with `s` px per font pixel is on the image. */
function assertFirstColumn(png: PNG, ch: string, x: number, y: number, s: number): void {
  const col = glyph(ch)[0]!;
  for (let r = 0; r < 7; r++) {
    assert.deepEqual(pixel(png, x, y + r * s), (col >> r) & 1 ? WHITE : BLACK, `'${ch}' row ${r}`);
  }
}

describe('overlay PNG legend and plane titles', () => {
  const legend = legendOf({ 0: 'background', 1: 'anterior', 2: 'posterior' });

  it('legendOf lists the foreground classes in order with their names', () => {
    assert.deepEqual(legend, [
      { id: 1, name: 'anterior' },
      { id: 2, name: 'posterior' },
    ]);
  });

  it('draws each class swatch in its colour and its name beside it, and the plane names above the panels', () => {
    const png = PNG.sync.read(Buffer.from(renderOverlayPng(image, labels, shape, { scale: 8, legend })));
    const layout = overlayLayout(shape, legend, 8);
    assert.equal(png.width, layout.width);
    assert.equal(png.height, layout.height);
    assert.equal(layout.textScale, 2);
    assert.deepEqual(
      layout.panels.map((p) => p.title),
      ['axial', 'coronal', 'sagittal'],
    );
    for (const [k, e] of layout.legend.entries()) {
      const c = LABEL_COLORS[k]!;
      assert.deepEqual(pixel(png, e.x + 1, e.y + 1), c, `swatch of class ${e.id}`);
      assert.deepEqual(pixel(png, e.x + layout.swatch - 1, e.y + layout.swatch - 1), c);
      assertFirstColumn(png, e.name[0]!, e.textX, e.y, layout.textScale);
    }
    for (const p of layout.panels) {
      assertFirstColumn(png, p.title[0]!, p.tx, p.ty, layout.textScale);
      // The title strip is above the image: the panel's first row starts below it.
      assert.ok(p.ty + 7 * layout.textScale <= p.y);
    }
    // Legend strip under the tallest panel.
    assert.ok(layout.legend.every((e) => e.y >= layout.panels[0]!.y + 16 * 8));
  });

  it('without names, the legend lists the labels present as "class N"; small panels get small titles', () => {
    const layout = overlayLayout(shape, [], 1);
    assert.equal(layout.textScale, 1, 'a 16-px panel cannot hold a 2x title');
    const png = PNG.sync.read(Buffer.from(renderOverlayPng(image, labels, shape, { scale: 8 })));
    const named = overlayLayout(
      shape,
      [
        { id: 1, name: 'class 1' },
        { id: 2, name: 'class 2' },
      ],
      8,
    );
    assert.equal(png.height, named.height);
    assertFirstColumn(png, 'c', named.legend[1]!.textX, named.legend[1]!.y, named.textScale);
    assert.deepEqual(pixel(png, named.legend[1]!.x + 2, named.legend[1]!.y + 2), LABEL_COLORS[1]);
  });
});
