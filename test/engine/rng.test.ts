import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/engine/rng.js';

/**
 * The first draws of the two generators this class replaced (src/nn/rng.ts, mulberry32, used for
 * weight initialisation; src/data/rng.ts, xoshiro128**, used by every random transform and the
 * loader's crop order), recorded from those classes at commit 401b9e9. Resume and reproducible
 * initialisation depend on these streams staying bit for bit the same.
 */
const GOLDEN: Record<
  string,
  {
    nnUniform: number[];
    nnNormal: number[];
    nnFork: number;
    dataU32: number[];
    dataRandom: number;
    dataInt: number[];
    dataUniform: number;
    dataFork: number;
  }
> = {
  '0': {
    nnUniform: [-0.4671415686607361, -0.9993405342102051, -0.5534559488296509, -0.707595705986023],
    nnNormal: [-1.3687747716903687, 0.3110150396823883, -0.16881003975868225],
    nnFork: 0.7166608753614128,
    dataU32: [3809008728, 1133695204],
    dataRandom: 0.012474988946590604,
    dataInt: [4, 259726],
    dataUniform: -0.0951183879828887,
    dataFork: 4163687424,
  },
  '7': {
    nnUniform: [-0.9765905141830444, -0.876083493232727, 0.9538152813911438, 0.39805740118026733],
    nnNormal: [-0.8918979167938232, 2.2766871452331543, 1.156298279762268],
    nnFork: 0.3792292682919651,
    dataU32: [1004282400, 2200021487],
    dataRandom: 0.44891458133395923,
    dataInt: [1, 795070],
    dataUniform: 0.0026422893357723465,
    dataFork: 1714094865,
  },
  '-3': {
    nnUniform: [0.025586921721696854, -0.06950672715902328, -0.8001114130020142, -0.11942816525697708],
    nnNormal: [3.3966376781463623, 1.5546962022781372, 1.4107438325881958],
    nnFork: 0.7958333562128246,
    dataU32: [1528909076, 657260337],
    dataRandom: 0.3228542181440477,
    dataInt: [3, 555089],
    dataUniform: -0.03789836558628737,
    dataFork: 3711693431,
  },
  '4294967295': {
    nnUniform: [0.7928452491760254, -0.6210435032844543, 0.4313053488731384, 0.8881198167800903],
    nnNormal: [-0.12489446997642517, 0.7176464200019836, -0.7342057228088379],
    nnFork: 0.32982789794914424,
    dataU32: [835879718, 1921286648],
    dataRandom: 0.5485967281391287,
    dataInt: [2, 908559],
    dataUniform: 0.07124194439318621,
    dataFork: 2126672676,
  },
};

describe('Rng: one class, both historical streams', () => {
  for (const [seedText, g] of Object.entries(GOLDEN)) {
    const seed = Number(seedText);
    it(`seed ${seed}: mulberry32 (weight init) draws as before`, () => {
      const r = new Rng(seed, 'mulberry32');
      assert.deepEqual(Array.from(r.uniformArray(4, -1, 1)), g.nnUniform);
      assert.deepEqual(Array.from(r.normalArray(3, 1, 2)), g.nnNormal);
      assert.equal(new Rng(seed, 'mulberry32').fork().random(), g.nnFork);
    });
    it(`seed ${seed}: xoshiro128** (transforms, loader) draws as before`, () => {
      const r = new Rng(seed);
      assert.equal(r.algorithm, 'xoshiro128**');
      assert.deepEqual([r.nextU32(), r.nextU32()], g.dataU32);
      assert.equal(r.random(), g.dataRandom);
      assert.deepEqual([r.int(6), r.int(1000003)], g.dataInt);
      assert.equal(r.uniform(-0.1, 0.1), g.dataUniform);
      assert.equal(new Rng(seed).fork().nextU32(), g.dataFork);
    });
  }

  it('refuses a non-finite seed and a bad int range', () => {
    assert.throws(() => new Rng(NaN), /seed must be a finite number, got NaN/);
    assert.throws(() => new Rng(0).int(0), /n must be a positive integer, got 0/);
  });
});
