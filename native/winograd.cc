// Winograd F(2×2×2, 3×3×3) driver: applicability, weight transform and the thread split (see winograd.h).
// Work items are blocks of up to kWinoTiles tiles along w of one (d, h) tile row; each block writes its own
// outputs only, so results do not depend on the thread count.
#include "winograd.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "runtime.h"

namespace ux {
namespace {

const WinoCores* pickWino() {
  static const WinoCores* c = [] {
    const std::string isa = convIsaName();  // same choice as the direct convolution kernels
    if (isa == "avx512" && winoAvx512()) return winoAvx512();
    if (isa == "avx2" && winoAvx2()) return winoAvx2();
    return winoGeneric();
  }();
  return c;
}

int coutPadOf(const ConvGeom& g) { return static_cast<int>((g.Cout + kWinoCoutAlign - 1) / kWinoCoutAlign * kWinoCoutAlign); }

// Per-thread block scratch, kept between calls (conv calls never overlap on the executor thread).
float* threadScratch(int tid, size_t n) {
  static std::vector<Scratch<float>*>* s = new std::vector<Scratch<float>*>(numThreads(), nullptr);
  Scratch<float>*& p = (*s)[tid];
  if (!p) p = new Scratch<float>();
  p->resize(n);
  return p->get();
}

}  // namespace

bool winogradApplies(const ConvGeom& g) {
  static const bool on = [] {
    const char* e = std::getenv("UXNET_WINOGRAD");
    return !(e && std::string(e) == "0");
  }();
  if (!on || g.G != 1) return false;
  for (int d = 0; d < 3; d++)
    if (g.k[d] != 3 || g.s[d] != 1 || g.p[d] < 0 || g.p[d] > 2 || g.out[d] != g.in[d] + 2 * g.p[d] - 2 || g.out[d] < 2) return false;
  // Each block streams all transformed weights (64·Cin·Cout floats) through the cache for its tiles: rows of
  // fewer than 8 tiles (w < 16) do not pay for that (measured: 384->192 at 12³ is slower, at 16³ faster).
  // With few channels the transforms dominate (16->16 at 96³ is slower, 32->16 even, 32->32 at 48³ faster).
  return g.out[2] >= 16 && g.out[0] >= 4 && g.out[1] >= 4 && g.Cin >= 16 && g.Cout > 16;
}

size_t winogradPackSize(const ConvGeom& g) { return static_cast<size_t>(64) * g.Cin * coutPadOf(g); }

namespace {

// U[ξ][i][o] = (G g Gᵀ)[α][β][γ] over (d, h, w), ξ = (α·4 + β)·4 + γ, with G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1], for
// the forward conv with cin inputs and cout outputs whose kernel (o, i) is kernel(o, i, k) (27 floats).
template <typename K>
void packU(int cin, int cout, int cp, K kernel, float* dst) {
  static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  parallelFor(cin, 4, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; i++)
      for (int o = 0; o < cp; o++) {
        if (o >= cout) {
          for (int xi = 0; xi < 64; xi++) dst[(static_cast<int64_t>(xi) * cin + i) * cp + o] = 0.f;
          continue;
        }
        float k[27];
        kernel(o, static_cast<int>(i), k);
        double t1[4][3][3], t2[4][4][3];
        for (int al = 0; al < 4; al++)
          for (int b = 0; b < 3; b++)
            for (int c = 0; c < 3; c++) t1[al][b][c] = G[al][0] * k[b * 3 + c] + G[al][1] * k[9 + b * 3 + c] + G[al][2] * k[18 + b * 3 + c];
        for (int al = 0; al < 4; al++)
          for (int be = 0; be < 4; be++)
            for (int c = 0; c < 3; c++) t2[al][be][c] = G[be][0] * t1[al][0][c] + G[be][1] * t1[al][1][c] + G[be][2] * t1[al][2][c];
        for (int al = 0; al < 4; al++)
          for (int be = 0; be < 4; be++)
            for (int ga = 0; ga < 4; ga++) {
              const double v = G[ga][0] * t2[al][be][0] + G[ga][1] * t2[al][be][1] + G[ga][2] * t2[al][be][2];
              dst[(static_cast<int64_t>((al * 4 + be) * 4 + ga) * cin + i) * cp + o] = static_cast<float>(v);
            }
      }
  });
}

}  // namespace

void winogradPackWeights(const float* w, const ConvGeom& g, float* dst) {
  const int cin = static_cast<int>(g.Cin), cout = static_cast<int>(g.Cout);
  packU(cin, cout, coutPadOf(g), [&](int o, int i, float* k) { std::memcpy(k, w + (static_cast<int64_t>(o) * cin + i) * 27, sizeof(float) * 27); }, dst);
}

ConvGeom winogradGradInputGeom(const ConvGeom& g) {
  ConvGeom t = g;
  t.Cin = g.Cout, t.Cout = g.Cin;
  for (int d = 0; d < 3; d++) t.in[d] = g.out[d], t.out[d] = g.in[d], t.p[d] = g.k[d] - 1 - g.p[d];
  return t;
}

void winogradPackGradInputWeights(const float* w, const ConvGeom& g, float* dst) {
  // Forward-equivalent conv: inputs = g's outputs (o), outputs = g's inputs (i), kernel flipped.
  const int gin = static_cast<int>(g.Cin), gout = static_cast<int>(g.Cout);
  packU(gout, gin, coutPadOf(winogradGradInputGeom(g)), [&](int i, int o, float* k) {
    const float* src = w + (static_cast<int64_t>(o) * gin + i) * 27;
    for (int t = 0; t < 27; t++) k[t] = src[26 - t];
  }, dst);
}

void winogradForward(const float* x, const float* u, const float* bias, const ConvGeom& g, float* y) {
  const WinoCores* cores = pickWino();
  const int cin = static_cast<int>(g.Cin), cout = static_cast<int>(g.Cout), cp = coutPadOf(g);
  const int TD = (g.out[0] + 1) / 2, TH = (g.out[1] + 1) / 2, TW = (g.out[2] + 1) / 2;
  const int nch = (TW + kWinoTiles - 1) / kWinoTiles;
  const int64_t inVol = static_cast<int64_t>(g.in[0]) * g.in[1] * g.in[2];
  const int64_t outVol = static_cast<int64_t>(g.out[0]) * g.out[1] * g.out[2];
  const int64_t perSample = static_cast<int64_t>(TD) * TH * nch;
  const size_t scratchN = winoScratchFloats(cin, cp);
  // Consecutive items are neighbouring tile rows that share half their input rows (still in L2).
  const int64_t items = g.N * perSample;
  const int64_t grain = std::max<int64_t>(1, std::min<int64_t>(8, items / (8 * numThreads())));
  parallelFor(items, grain, [&](int64_t b, int64_t e, int tid) {
    float* scratch = threadScratch(tid, scratchN);
    auto make = [&](int64_t it, WinoBlock& blk) {
      const int64_t n = it / perSample, r = it % perSample;
      const int ch = static_cast<int>(r % nch), th = static_cast<int>((r / nch) % TH), td = static_cast<int>(r / (static_cast<int64_t>(nch) * TH));
      blk.x = x + n * cin * inVol;
      blk.cin = cin;
      for (int d = 0; d < 3; d++) blk.in[d] = g.in[d], blk.pad[d] = g.p[d], blk.out[d] = g.out[d];
      blk.u = u;
      blk.cout = cout;
      blk.coutPad = cp;
      blk.bias = bias;
      blk.y = y + n * cout * outVol;
      blk.td = td;
      blk.th = th;
      blk.tw0 = ch * kWinoTiles;
      blk.nt = std::min(kWinoTiles, TW - blk.tw0);
      blk.scratch = scratch;
      blk.next = nullptr;
    };
    WinoBlock cur{}, nxt{};
    make(b, cur);
    for (int64_t it = b; it < e; it++) {
      if (it + 1 < e) {
        make(it + 1, nxt);
        cur.next = &nxt;
      }
      cores->block(cur);
      cur = nxt;
    }
  });
}

}  // namespace ux
