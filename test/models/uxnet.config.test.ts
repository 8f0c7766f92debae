/** UX-Net construction: config normalisation, parameter counts without allocation, init. */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/backends/index.js';
import { listBackends, memory, setBackend } from '../../src/engine/index.js';
import { UXNet, normalizeUXNetConfig, UXNetConfigError, DEFAULT_UXNET_CONFIG } from '../../src/models/index.js';
import { fixture } from '../helpers/fixtures.js';

const TINY = { inChans: 1, outChans: 3, featSize: [8, 16, 32, 64], hiddenSize: 128 };

describe('UXNet config and parameter counts', () => {
  before(() => setBackend(listBackends().includes('reference') ? 'reference' : listBackends()[0]!));

  it('counts the paper configurations without allocating', () => {
    const before = memory();
    assert.equal(UXNet.countParameters(), 53_006_461);
    assert.equal(UXNet.countParameters({ outChans: 5 }), 53_006_069);
    assert.equal(UXNet.countParameters({ out_chans: 8 }), 53_006_216);
    assert.equal(UXNet.countParameters({ out_chans: 16 }), 53_006_608);
    assert.deepEqual(memory(), before);
  });

  it('per-module counts of the default config match the official table', () => {
    const shapes = UXNet.parameterShapes();
    const count = (prefix: string) => shapes.filter(([k]) => k.startsWith(prefix)).reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0);
    assert.equal(count('uxnet_3d.'), 1_311_936);
    assert.equal(count('uxnet_3d.downsample_layers.0.'), 16_608);
    assert.equal(count('uxnet_3d.stages.3.'), 276_480);
    assert.equal(count('encoder5.'), 24_182_784);
    assert.equal(count('decoder5.'), 14_598_144);
    assert.equal(count('decoder1.'), 124_416);
    assert.equal(count('out.'), 637);
  });

  it('tiny config: 1,547,291 parameters, 131 keys equal to the fixture key list', () => {
    const shapes = UXNet.parameterShapes(TINY);
    assert.equal(UXNet.countParameters(TINY), 1_547_291);
    assert.deepEqual(
      shapes.map(([k, s]) => [k, [...s]]),
      [...fixture('tiny_weights.safetensors')].map(([k, t]) => [k, t.shape]),
    );
  });

  it('accepts camelCase, the official snake_case, and mixes; fills official defaults', () => {
    assert.deepEqual(normalizeUXNetConfig({}), { ...DEFAULT_UXNET_CONFIG });
    const snake = normalizeUXNetConfig({
      in_chans: 2,
      out_chans: 5,
      feat_size: [8, 16, 32, 64],
      hidden_size: 128,
      drop_path_rate: 0,
      layer_scale_init_value: 1e-5,
      spatial_dims: 3,
      norm_name: 'instance',
      res_block: true,
      conv_block: true,
    });
    const camel = normalizeUXNetConfig({ inChans: 2, outChans: 5, featSize: [8, 16, 32, 64], hiddenSize: 128, layerScaleInit: 1e-5 });
    assert.deepEqual(snake, camel);
    assert.deepEqual(normalizeUXNetConfig({ inChans: 1, in_chans: 1 }).inChans, 1);
  });

  it('rejects bad configs with clear errors', () => {
    const bad: [unknown, RegExp][] = [
      [{ drop_path_rate: 0.1 }, /drop_path_rate\) must be 0: stochastic depth is not implemented/],
      [{ inChans: 0 }, /inChans \(in_chans\) must be a positive integer/],
      [{ outChans: 2.5 }, /outChans .* positive integer/],
      [{ feat_size: [8, 16, 32] }, /feat_size\) must be a list of 4 integers/],
      [{ depths: [2, 2, -1, 2] }, /depths\[2\] must be a non-negative integer/],
      [{ hidden_size: '768' }, /hiddenSize .* positive integer/],
      [{ spatial_dims: 2 }, /spatial_dims\) must be 3/],
      [{ norm_name: 'batch' }, /norm_name must be "instance"/],
      [{ kernelSize: 4 }, /must be odd/],
      [{ in_chans: 1, inChans: 2 }, /same setting with different values/],
      [{ in_channels: 1 }, /unknown UX-Net option 'in_channels'/],
      [[1, 2], /must be an object/],
      [null, /must be an object/],
    ];
    for (const [cfg, re] of bad) {
      assert.throws(
        () => normalizeUXNetConfig(cfg),
        (e: unknown) => e instanceof UXNetConfigError && re.test((e as Error).message),
        JSON.stringify(cfg),
      );
    }
    assert.throws(() => new UXNet({ drop_path_rate: 0.2 }), UXNetConfigError);
  });

  it('honours layerScaleInit (default 1e-6) and kernelSize; seeds are reproducible', () => {
    const a = new UXNet({ ...TINY, depths: [1, 0, 0, 1] }, { seed: 3 });
    const g = a.stateDict().get('uxnet_3d.stages.0.0.gamma')!.dataSync();
    assert.ok(g.every((v) => v === Math.fround(1e-6)));
    const b = new UXNet({ ...TINY, depths: [1, 0, 0, 1] }, { seed: 3 });
    for (const [k, t] of a.stateDict()) assert.deepEqual(t.dataSync(), b.stateDict().get(k)!.dataSync(), k);
    const c = new UXNet({ ...TINY, depths: [1, 0, 0, 1], layerScaleInit: 0.5, kernelSize: 5 }, { meta: true });
    const shapes = new Map(c.namedParameterShapes());
    assert.deepEqual(shapes.get('uxnet_3d.stages.0.0.dwconv.weight'), [8, 1, 5, 5, 5]);
    assert.ok(!shapes.has('uxnet_3d.stages.1.0.gamma'), 'depth 0 gives an empty stage');
    a.dispose();
    b.dispose();
  });
});
