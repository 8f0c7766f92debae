import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  countNetworkParameters,
  createNetwork,
  networkFromConfig,
  networkStateShapes,
  networkToJSON,
  resolveNetwork,
  withChannels,
  NetworkConfigError,
  NetworkInputError,
  SwinUNETR,
  UNETR,
  UXNetConfigError,
} from '../../src/models/index.js';

// Official FLARE / FeTA calls and counts from the baseline fixtures' baselines_param_counts.json
// (counted there by instantiating MONAI 0.9.0's classes).
const SWIN_FLARE = { img_size: [96, 96, 96], in_channels: 1, out_channels: 5, feature_size: 48, use_checkpoint: false };
const UNETR_FLARE = {
  in_channels: 1,
  out_channels: 5,
  img_size: [96, 96, 96],
  feature_size: 16,
  hidden_size: 768,
  mlp_dim: 3072,
  num_heads: 12,
  pos_embed: 'perceptron',
  norm_name: 'instance',
  res_block: true,
  dropout_rate: 0.0,
};

test('parameter counts of the official configurations, counted without allocating', () => {
  assert.equal(countNetworkParameters(resolveNetwork('swin_unetr', SWIN_FLARE)), 62_186_855);
  assert.equal(countNetworkParameters(resolveNetwork('unetr', UNETR_FLARE)), 92_783_893);
  assert.equal(countNetworkParameters(resolveNetwork('swin_unetr', { ...SWIN_FLARE, out_channels: 8 })), 62_187_002);
  assert.equal(countNetworkParameters(resolveNetwork('unetr', { ...UNETR_FLARE, out_channels: 8 })), 92_783_944);
  assert.equal(SwinUNETR.countParameters(SWIN_FLARE), 62_186_855);
  assert.equal(UNETR.countParameters(UNETR_FLARE), 92_783_893);
});

test('per top-level module counts match MONAI (FLARE)', () => {
  const per = (spec: Parameters<typeof createNetwork>[0]) =>
    Object.fromEntries(
      createNetwork(spec, { meta: true })
        .namedChildren()
        .map(([n, m]) => [n, m.numParameters()]),
    );
  assert.deepEqual(per(resolveNetwork('swin_unetr', SWIN_FLARE)), {
    swinViT: 8062002,
    encoder1: 63552,
    encoder2: 124416,
    encoder3: 497664,
    encoder4: 1990656,
    encoder10: 31850496,
    decoder5: 14598144,
    decoder4: 3649536,
    decoder3: 912384,
    decoder2: 228096,
    decoder1: 209664,
    out: 245,
  });
  assert.deepEqual(per(resolveNetwork('unetr', UNETR_FLARE)), {
    vit: 88340736,
    encoder1: 7360,
    encoder2: 323584,
    encoder3: 647168,
    encoder4: 786432,
    decoder5: 2146304,
    decoder4: 405504,
    decoder3: 101376,
    decoder2: 25344,
    out: 85,
  });
});

test('state-dict keys: 159 for SwinUNETR (8 int64 index buffers after each table), 170 for UNETR', () => {
  const swin = networkStateShapes(resolveNetwork('swin_unetr', SWIN_FLARE));
  assert.equal(swin.length, 159);
  const idx = swin.findIndex(([k]) => k === 'swinViT.layers1.0.blocks.0.attn.relative_position_index');
  assert.deepEqual(
    swin.slice(idx - 1, idx + 2).map(([k]) => k),
    ['swinViT.layers1.0.blocks.0.attn.relative_position_bias_table', 'swinViT.layers1.0.blocks.0.attn.relative_position_index', 'swinViT.layers1.0.blocks.0.attn.qkv.weight'],
  );
  assert.deepEqual(swin[idx]![1], [343, 343]);
  assert.equal(swin.filter(([k]) => k.endsWith('relative_position_index')).length, 8);
  const unetr = networkStateShapes(resolveNetwork('unetr', UNETR_FLARE));
  assert.equal(unetr.length, 170);
  assert.deepEqual(
    unetr.slice(0, 4).map(([k, s]) => `${k} ${s.join('x')}`),
    [
      'vit.patch_embedding.position_embeddings 1x216x768',
      'vit.patch_embedding.patch_embeddings.1.weight 768x4096',
      'vit.patch_embedding.patch_embeddings.1.bias 768',
      'vit.blocks.0.mlp.linear1.weight 3072x768',
    ],
  );
});

test('relative_position_index equals MONAI 0.9.0 bit for bit (sha256 of the fixture int64 bytes)', () => {
  const m = new SwinUNETR({ img_size: 32, in_channels: 1, out_channels: 2, feature_size: 12 }, { meta: true });
  const bufs = m.namedBuffers();
  assert.equal(bufs.length, 8);
  for (const [, b] of bufs) {
    const bytes = Buffer.alloc(b.values.length * 8);
    b.values.forEach((v, i) => bytes.writeBigInt64LE(BigInt(v), i * 8));
    // sha256 of every relative_position_index tensor in swin_unetr_weights.safetensors (all eight are identical).
    assert.equal(createHash('sha256').update(bytes).digest('hex'), 'b44c3282c35eebfce03332f39d5ab73922d975b2469de29c76759918c091e447');
  }
});

test('config forms: flat, constructor_args (fixture), networkArgs, legacy UX-Net object, no network', () => {
  const fixture = {
    network: 'swin_unetr',
    class: 'monai.networks.nets.SwinUNETR',
    constructor_args: { img_size: [32, 32, 64], in_channels: 1, out_channels: 3, feature_size: 12 },
    input_shape: [1, 1, 32, 32, 64],
    param_count: 4078077,
    state_dict_keys: 159,
  };
  assert.equal(countNetworkParameters(networkFromConfig(fixture)), 4_078_077);
  const flat = networkFromConfig({ network: 'swin_unetr', img_size: [32, 32, 64], in_channels: 1, out_channels: 3, feature_size: 12 });
  assert.deepEqual(flat, networkFromConfig(fixture));
  const camel = networkFromConfig({ network: 'swin_unetr', networkArgs: { imgSize: [32, 32, 64], inChannels: 1, outChannels: 3, featureSize: 12 } });
  assert.deepEqual(camel, flat);
  const unetr = networkFromConfig({
    network: 'unetr',
    in_channels: 1,
    out_channels: 3,
    img_size: [32, 32, 48],
    feature_size: 4,
    hidden_size: 32,
    mlp_dim: 64,
    num_heads: 4,
    pos_embed: 'perceptron',
    norm_name: 'instance',
    conv_block: true,
    res_block: true,
    dropout_rate: 0.0,
    spatial_dims: 3,
  });
  assert.equal(countNetworkParameters(unetr), 398_079);
  const legacy = networkFromConfig({ network: { featSize: [8, 16, 32, 64], hiddenSize: 128, outChans: 3 } });
  assert.equal(legacy.network, 'uxnet');
  assert.deepEqual(legacy.args.featSize, [8, 16, 32, 64]);
  const plain = networkFromConfig({ in_chans: 1, out_chans: 3, feat_size: [8, 16, 32, 64], hidden_size: 128 });
  assert.equal(plain.network, 'uxnet');
  assert.equal(plain.args.hiddenSize, 128);
  // round trip through the model.json form
  const json = networkToJSON(flat);
  assert.equal(json.network, 'swin_unetr');
  assert.deepEqual(json.networkArgs!.img_size, [32, 32, 64]);
  assert.deepEqual(resolveNetwork(json.network, json.networkArgs), flat);
  assert.deepEqual(networkToJSON(legacy).network, legacy.args);
  // train fills the channel counts from the data unless given
  assert.equal(withChannels('swin_unetr', { img_size: 64, feature_size: 12 }, 2, 4).args.inChannels, 2);
  assert.equal(withChannels('swin_unetr', { img_size: 64, feature_size: 12, out_channels: 7 }, 2, 4).args.outChannels, 7);
  assert.equal(withChannels({ featSize: [8, 16, 32, 64] }, undefined, 1, 3).args.outChans, 3);
});

test('bad arguments: one clear message naming the argument', () => {
  const err = (f: () => unknown, re: RegExp) => assert.throws(f, (e: Error) => e instanceof UXNetConfigError && re.test(e.message));
  err(() => resolveNetwork('swin_unetr', { ...SWIN_FLARE, img_size: [96, 96, 80] }), /img_size .*divisible by 32/);
  err(() => resolveNetwork('swin_unetr', { ...SWIN_FLARE, feature_size: 40 }), /feature_size must be divisible by 12/);
  err(() => resolveNetwork('swin_unetr', { in_channels: 1, out_channels: 2 }), /needs the argument 'img_size'/);
  err(() => resolveNetwork('swin_unetr', { ...SWIN_FLARE, feature_size: 48, featureSize: 24 }), /'feature_size' and 'featureSize'/);
  err(() => resolveNetwork('swin_unetr', { ...SWIN_FLARE, window: 7 }), /unknown SwinUNETR argument 'window'/);
  err(() => resolveNetwork('swin_unetr', { ...SWIN_FLARE, drop_rate: 0.1 }), /drop_rate must be 0/);
  err(() => resolveNetwork('unetr', { ...UNETR_FLARE, num_heads: 7 }), /hidden_size \(768\) must be divisible by num_heads \(7\)/);
  err(() => resolveNetwork('unetr', { ...UNETR_FLARE, img_size: [96, 96, 40] }), /multiple of the patch size 16/);
  err(() => resolveNetwork('vnet', {}), /network must be one of "uxnet", "swin_unetr", "unetr", "nnformer", "transbts"/);
  assert.ok(new NetworkConfigError('x') instanceof UXNetConfigError);
});

test('input sizes a network cannot take are refused before any compute', () => {
  const swin = new SwinUNETR({ img_size: [32, 32, 64], in_channels: 1, out_channels: 3, feature_size: 12 }, { meta: true });
  swin.checkInputShape([1, 1, 64, 32, 32]); // any multiples of 32, whatever img_size says
  assert.throws(
    () => swin.checkInputShape([1, 1, 48, 32, 64]),
    (e: Error) => e instanceof NetworkInputError && /48×32×64 .*multiple of 32/.test(e.message),
  );
  assert.throws(() => swin.checkInputShape([1, 1, 32, 32, 32]), /1×1×1 bottleneck/);
  assert.throws(() => swin.checkInputShape([1, 2, 32, 32, 64]), /2 channel\(s\) but the model expects in_channels = 1/);
  const unetr = new UNETR({ in_channels: 1, out_channels: 3, img_size: [32, 32, 48], feature_size: 4, hidden_size: 32, mlp_dim: 64, num_heads: 4 }, { meta: true });
  unetr.checkInputShape([2, 1, 32, 32, 48]);
  assert.throws(() => unetr.checkInputShape([1, 1, 32, 32, 64]), /exactly img_size 32×32×48/);
  assert.deepEqual(unetr.fixedInputSize, [32, 32, 48]);
  assert.equal(swin.fixedInputSize, null);
});
