/** Conv/linear MAC counting, on layers whose count is worked out by hand. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Conv3d, ConvTranspose3d, GELU } from '../../src/nn/layers.js';
import { Sequential } from '../../src/nn/module.js';
import { countMacs } from '../../src/nn/macs.js';
import { UXNet } from '../../src/models/uxnet.js';
import { TransBTS } from '../../src/models/transbts.js';
import { Linear } from '../../src/nn/linear.js';
import { Module } from '../../src/nn/module.js';
import { permute, reshape } from '../../src/engine/ops/index.js';
import type { Tensor } from '../../src/engine/tensor.js';
import '../../src/backends/index.js';

describe('countMacs', () => {
  it('counts dense, depthwise, strided and transposed convolutions by hand', () => {
    const net = new Sequential([
      new Conv3d(2, 4, 3, { padding: 1 }), // 8x8x8 out: 512 voxels x 4 out x 2 in x 27 = 110,592
      new GELU(), // not counted
      new Conv3d(4, 4, 3, { padding: 1, groups: 4 }), // depthwise: 512 x 4 x 1 x 27 = 55,296
      new Conv3d(4, 6, 2, { stride: 2 }), // 4x4x4 out: 64 x 6 x 4 x 8 = 12,288
      new ConvTranspose3d(6, 3, 2, { stride: 2 }), // 64 in voxels x 6 in x 3 out x 8 = 9,216
    ]);
    assert.equal(countMacs(net, [1, 2, 8, 8, 8]), 110592 + 55296 + 12288 + 9216);
    // batch 2 doubles it, and the layers' forward is restored afterwards (no own property left)
    assert.equal(countMacs(net, [2, 2, 8, 8, 8]), 2 * (110592 + 55296 + 12288 + 9216));
    assert.ok(!Object.prototype.hasOwnProperty.call(net.layers[0], 'forward'));
    net.dispose();
  });

  it('counts the fused forwards as the plain ones: Conv3d.forwardFused over concatenated inputs, Linear.forwardGelu', () => {
    class Fused extends Module {
      readonly a = this.registerModule('a', new Conv3d(2, 4, 3, { padding: 1 }));
      readonly b = this.registerModule('b', new Conv3d(6, 5, 1));
      readonly fc = this.registerModule('fc', new Linear(5, 7));
      forward(x: Tensor): Tensor {
        const y = this.b.forwardFused([x, this.a.forward(x)], { relu: true }); // reads 2 + 4 channels
        return this.fc.forwardGelu(reshape(permute(y, [0, 2, 3, 4, 1]), [-1, 5]));
      }
    }
    const m = new Fused();
    // a: 64 voxels x 4 out x 2 in x 27 = 13,824; b: 64 x 5 x 6 x 1 = 1,920; fc: 64 tokens x 7 out x 5 in = 2,240
    assert.equal(countMacs(m, [1, 2, 4, 4, 4]), 13824 + 1920 + 2240);
    assert.ok(!Object.prototype.hasOwnProperty.call(m.b, 'forwardFused') && !Object.prototype.hasOwnProperty.call(m.fc, 'forwardGelu'));
    m.dispose();
  });

  it("TransBTS's fused eval path counts what its training path does", () => {
    const m = new TransBTS({ img_dim: 16, num_classes: 2, embedding_dim: 256, hidden_dim: 8, unet_base_channels: 8 }, { seed: 1 });
    const train = countMacs(m, [1, 1, 16, 16, 16]);
    m.eval();
    assert.equal(countMacs(m, [1, 1, 16, 16, 16]), train);
    assert.ok(train > 0);
    m.dispose();
  });

  it('scales with the input volume on a UX-Net (every layer is a conv: 8x the voxels, 8x the MACs)', () => {
    const m = new UXNet({ inChans: 1, outChans: 3, featSize: [4, 8, 16, 32], hiddenSize: 16, depths: [1, 1, 1, 1] }, { seed: 1 });
    const a = countMacs(m, [1, 1, 32, 32, 32]);
    const b = countMacs(m, [1, 1, 64, 64, 64]);
    assert.ok(a > 0);
    assert.equal(b, 8 * a);
    m.dispose();
  });
});
