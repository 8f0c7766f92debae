/**
 * Block fixtures (tiny_blocks.safetensors, made with the official ux_block/LayerNorm and the real
 * MONAI 0.9.0 blocks): output, input/skip gradients and every parameter gradient, on every backend,
 * element by element under README rule 1 (|Δ| ≤ 10·dev + 1e-6·max|ref|).
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { initTestBackends, testBackends } from '../helpers/backends.js';
import { assertMatchesFixture, fixture, get } from '../helpers/fixtures.js';
import { setBackend, tensor, type Tensor } from '../../src/engine/index.js';
import { Conv3d, LayerNorm, Sequential, type Module } from '../../src/nn/index.js';
import { UxBlock } from '../../src/models/uxnet-encoder.js';
import { UnetOutBlock, UnetrBasicBlock, UnetrUpBlock } from '../../src/models/blocks/index.js';

await initTestBackends();

const FILE = 'tiny_blocks.safetensors';

interface BlockCase {
  name: string;
  build: () => Module & { forward(x: Tensor, skip?: Tensor): Tensor };
  skip?: boolean;
}

const cases: BlockCase[] = [
  { name: 'ux_block', build: () => new UxBlock(6) },
  { name: 'downsample_layer', build: () => new Sequential([new LayerNorm(6), new Conv3d(6, 8, 2, { stride: 2 })]) },
  { name: 'unetr_basic_block_res', build: () => new UnetrBasicBlock(3, 5) },
  { name: 'unetr_basic_block_res_identity', build: () => new UnetrBasicBlock(4, 4) },
  { name: 'unetr_up_block', build: () => new UnetrUpBlock(6, 4), skip: true },
  { name: 'unet_out_block', build: () => new UnetOutBlock(5, 3) },
];

function leaf(name: string): Tensor {
  const t = get(FILE, name);
  return tensor(t.data, t.shape, { requiresGrad: true });
}

for (const backend of testBackends()) {
  describe(`block fixtures vs PyTorch/MONAI [${backend}]`, () => {
    before(() => setBackend(backend));
    for (const c of cases) {
      it(c.name, async () => {
        const block = c.build();
        const prefix = `${c.name}.param.`;
        const params = new Map([...fixture(FILE)].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
        // The block's own keys must be exactly the PyTorch module's state_dict keys, in order.
        assert.deepEqual(
          block.namedParameters().map(([k]) => k),
          [...params.keys()],
        );
        block.loadStateDict(params);
        const x = leaf(`${c.name}.input`);
        const skip = c.skip ? leaf(`${c.name}.skip`) : undefined;
        const y = skip ? block.forward(x, skip) : block.forward(x);
        assertMatchesFixture(await y.data(), FILE, `${c.name}.output`);
        const gy = get(FILE, `${c.name}.grad_output`);
        y.backward(tensor(gy.data, gy.shape));
        assertMatchesFixture(await x.grad!.data(), FILE, `${c.name}.grad_input`);
        if (skip) assertMatchesFixture(await skip.grad!.data(), FILE, `${c.name}.grad_skip`);
        for (const [k, p] of block.namedParameters()) {
          assert.ok(p.grad, `no gradient for ${k}`);
          assertMatchesFixture(await p.grad.data(), FILE, `${c.name}.grad_param.${k}`);
        }
        for (const t of [x, skip, y, x.grad, skip?.grad]) t?.dispose();
        block.dispose();
      });
    }
  });
}
