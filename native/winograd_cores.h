// Winograd F(2×2×2, 3×3×3) block kernel (see winograd.h), written once over the vector abstraction `V` and
// instantiated per ISA like conv_cores.h. Transforms run with vectors along the block's tiles; the 64 GEMMs
// M[ξ][t][o] = Σ_i V[ξ][i][t] · U[ξ][i][o] with vectors along output channels and the tile values broadcast,
// summing over i in order (the result depends on the shapes only, never on the thread count).
#pragma once
#include <algorithm>
#include <cstring>

#include "winograd.h"

#ifndef UX_WINO_PREFETCH
#if defined(__GNUC__) || defined(__clang__)
#define UX_WINO_PREFETCH(p) __builtin_prefetch((p), 0, 3)
#else
#define UX_WINO_PREFETCH(p) (void)0
#endif
#endif

namespace ux {
namespace UX_ISA_NS {
namespace wino {

constexpr int T = kWinoTiles;

// a - b, exact (the product b·(-1) is exact), so V needs no subtraction of its own.
static inline V vsub(V a, V b) { return V::fma(b, V::set1(-1.f), a); }

// Tiles per register block for NVO output-channel vectors: as many accumulators as the register file allows
// (32 vector registers with 16-float vectors, 16 otherwise); always a divisor of T.
constexpr int mrtFor(int nvo) {
  return V::W == 16 ? (nvo == 1 ? 16 : nvo == 4 ? 4 : 8) : (nvo == 1 ? 8 : nvo == 4 ? 2 : 4);
}

template <int NVO>
static void gemmTile(const float* vx, const float* ux, int cin, int coutPad, float* mx) {
  constexpr int W = V::W, MRT = mrtFor(NVO);
  V acc[MRT][NVO];
  for (int r = 0; r < MRT; r++)
    for (int v = 0; v < NVO; v++) acc[r][v] = V::zero();
  for (int i = 0; i < cin; i++) {
    V u[NVO];
    for (int v = 0; v < NVO; v++) u[v] = V::load(ux + static_cast<int64_t>(i) * coutPad + v * W);
    const float* vr = vx + static_cast<int64_t>(i) * T;
    for (int r = 0; r < MRT; r++) {
      const V b = V::bcast(vr + r);
      for (int v = 0; v < NVO; v++) acc[r][v] = V::fma(u[v], b, acc[r][v]);
    }
  }
  for (int r = 0; r < MRT; r++)
    for (int v = 0; v < NVO; v++) V::store(mx + static_cast<int64_t>(r) * coutPad + v * W, acc[r][v]);
}

template <int NVO>
static void gemmXi(const float* vx, const float* ux, int cin, int coutPad, int ntPad, int o0, float* mx) {
  constexpr int MRT = mrtFor(NVO);
  for (int t0 = 0; t0 < ntPad; t0 += MRT) gemmTile<NVO>(vx + t0, ux + o0, cin, coutPad, mx + static_cast<int64_t>(t0) * coutPad + o0);
}

// E[k] = row[2k], O[k] = row[2k+1] for k ≤ T where row[j] = x[w0 + j] (zero outside [0, n)); zero beyond T.
// The row is first copied into a zero-padded buffer so that the split itself has no branches (vectorised).
static inline void splitRow(const float* src, int n, int w0, float* E, float* O) {
  alignas(64) float R[2 * T + 2];
  const int lo = w0 < 0 ? -w0 : 0, hi = n - w0 < 2 * T + 2 ? n - w0 : 2 * T + 2;
  if (hi <= lo) {
    std::memset(R, 0, sizeof(R));
  } else {
    for (int j = 0; j < lo; j++) R[j] = 0.f;
    std::memcpy(R + lo, src + w0 + lo, sizeof(float) * (hi - lo));
    for (int j = hi; j < 2 * T + 2; j++) R[j] = 0.f;
  }
  for (int k = 0; k <= T; k++) {
    E[k] = R[2 * k];
    O[k] = R[2 * k + 1];
  }
}

// V[ξ][i][t] = (Bᵀ d B) of tile t's 4×4×4 input patch of channel i; Bᵀ d = (d0-d2, d1+d2, d2-d1, d1-d3).
static void inputTransform(const WinoBlock& b, int i, float* vb, float* tmp, float* E, float* O) {
  constexpr int W = V::W;
  const int64_t inVol = static_cast<int64_t>(b.in[0]) * b.in[1] * b.in[2];
  const float* xc = b.x + i * inVol;
  const int z0 = 2 * b.td - b.pad[0], y0 = 2 * b.th - b.pad[1], w0 = 2 * b.tw0 - b.pad[2];
#ifdef UX_WINO_ROW_PHASES
  const uint64_t masks = UX_WINO_ROW_MASKS(b.in[2], w0);
#endif
  for (int a = 0; a < 4; a++)
    for (int bb = 0; bb < 4; bb++) {
      const int z = z0 + a, yy = y0 + bb;
      float* t = tmp + (a * 4 + bb) * 4 * T;
      const bool rowIn = z >= 0 && z < b.in[0] && yy >= 0 && yy < b.in[1];
      const float* src = rowIn ? xc + (static_cast<int64_t>(z) * b.in[1] + yy) * b.in[2] : nullptr;
#ifdef UX_WINO_ROW_PHASES
      // One vector covers the block: the ISA loads the four phases straight from x (masked at the edges).
      static_assert(W == T, "UX_WINO_ROW_PHASES needs one vector per block");
      V e0 = V::zero(), o0 = V::zero(), e1 = V::zero(), o1 = V::zero();
      if (rowIn) UX_WINO_ROW_PHASES(src, masks, w0, e0, o0, e1, o1);
      V::store(t, vsub(e0, e1));
      V::store(t + T, V::add(o0, e1));
      V::store(t + 2 * T, vsub(e1, o0));
      V::store(t + 3 * T, vsub(o0, o1));
#else
      if (!rowIn) {
        std::memset(E, 0, sizeof(float) * (T + 1));
        std::memset(O, 0, sizeof(float) * (T + 1));
      } else {
        splitRow(src, b.in[2], w0, E, O);
      }
      for (int k0 = 0; k0 < T; k0 += W) {  // along w: d = (E[k], O[k], E[k+1], O[k+1])
        const V e0 = V::load(E + k0), e1 = V::load(E + k0 + 1), o0 = V::load(O + k0), o1 = V::load(O + k0 + 1);
        V::store(t + k0, vsub(e0, e1));
        V::store(t + T + k0, V::add(o0, e1));
        V::store(t + 2 * T + k0, vsub(e1, o0));
        V::store(t + 3 * T + k0, vsub(o0, o1));
      }
#endif
    }
  for (int k0 = 0; k0 < T; k0 += W)
    for (int g = 0; g < 4; g++) {
      V s[4][4];  // [a][β] after the h pass
      for (int a = 0; a < 4; a++) {
        V d[4];
        for (int bb = 0; bb < 4; bb++) d[bb] = V::load(tmp + ((a * 4 + bb) * 4 + g) * T + k0);
        s[a][0] = vsub(d[0], d[2]);
        s[a][1] = V::add(d[1], d[2]);
        s[a][2] = vsub(d[2], d[1]);
        s[a][3] = vsub(d[1], d[3]);
      }
      for (int be = 0; be < 4; be++) {
        const V r[4] = {vsub(s[0][be], s[2][be]), V::add(s[1][be], s[2][be]), vsub(s[2][be], s[1][be]), vsub(s[1][be], s[3][be])};
        for (int al = 0; al < 4; al++) V::store(vb + (static_cast<int64_t>((al * 4 + be) * 4 + g) * b.cin + i) * T + k0, r[al]);
      }
    }
}

// Aᵀ m = (m0+m1+m2, m1-m2-m3) along each dim, then bias, written to the tile's 2×2×2 outputs inside y.
static void outputTransform(const WinoBlock& b, const float* mb, float* res) {
  constexpr int W = V::W;
  const int64_t outVol = static_cast<int64_t>(b.out[0]) * b.out[1] * b.out[2];
  const int64_t xiStride = static_cast<int64_t>(T) * b.coutPad;
  for (int t = 0; t < b.nt; t++)
    for (int o0 = 0; o0 < b.cout; o0 += W) {
      const float* m = mb + static_cast<int64_t>(t) * b.coutPad + o0;
      V p[4][4][2];  // [α][β][c]
      for (int al = 0; al < 4; al++)
        for (int be = 0; be < 4; be++) {
          const float* q = m + ((al * 4 + be) * 4) * xiStride;
          const V m0 = V::load(q), m1 = V::load(q + xiStride), m2 = V::load(q + 2 * xiStride), m3 = V::load(q + 3 * xiStride);
          p[al][be][0] = V::add(V::add(m0, m1), m2);
          p[al][be][1] = vsub(vsub(m1, m2), m3);
        }
      for (int c = 0; c < 2; c++) {
        V q[4][2];  // [α][bb]
        for (int al = 0; al < 4; al++) {
          q[al][0] = V::add(V::add(p[al][0][c], p[al][1][c]), p[al][2][c]);
          q[al][1] = vsub(vsub(p[al][1][c], p[al][2][c]), p[al][3][c]);
        }
        for (int bb = 0; bb < 2; bb++) {
          V::store(res + ((0 * 2 + bb) * 2 + c) * W, V::add(V::add(q[0][bb], q[1][bb]), q[2][bb]));
          V::store(res + ((1 * 2 + bb) * 2 + c) * W, vsub(vsub(q[1][bb], q[2][bb]), q[3][bb]));
        }
      }
      const int nl = b.cout - o0 < W ? b.cout - o0 : W;
      const int wBase = 2 * (b.tw0 + t);
      for (int a = 0; a < 2; a++) {
        const int z = 2 * b.td + a;
        if (z >= b.out[0]) continue;
        for (int bb = 0; bb < 2; bb++) {
          const int yy = 2 * b.th + bb;
          if (yy >= b.out[1]) continue;
          const int nc = wBase + 1 < b.out[2] ? 2 : 1;
          float* yr = b.y + (static_cast<int64_t>(z) * b.out[1] + yy) * b.out[2] + wBase;
          for (int l = 0; l < nl; l++) {
            const float bias = b.bias ? b.bias[o0 + l] : 0.f;
            float* yo = yr + (o0 + l) * outVol;
            for (int c = 0; c < nc; c++) yo[c] = res[((a * 2 + bb) * 2 + c) * W + l] + bias;
          }
        }
      }
    }
}

// Prefetches the input rows of channels [i0, i1) that block b reads.
static void prefetchInput(const WinoBlock& b, int i0, int i1) {
  const int64_t inVol = static_cast<int64_t>(b.in[0]) * b.in[1] * b.in[2];
  const int z0 = 2 * b.td - b.pad[0], y0 = 2 * b.th - b.pad[1];
  const int w0 = std::max(0, 2 * b.tw0 - b.pad[2]), w1 = std::min(b.in[2], 2 * (b.tw0 + b.nt) - b.pad[2] + 2);
  if (w1 <= w0) return;
  for (int i = i0; i < i1; i++)
    for (int a = 0; a < 4; a++) {
      const int z = z0 + a;
      if (z < 0 || z >= b.in[0]) continue;
      for (int bb = 0; bb < 4; bb++) {
        const int yy = y0 + bb;
        if (yy < 0 || yy >= b.in[1]) continue;
        const float* row = b.x + i * inVol + (static_cast<int64_t>(z) * b.in[1] + yy) * b.in[2];
        for (int w = w0; w < w1; w += 16) UX_WINO_PREFETCH(row + w);
        UX_WINO_PREFETCH(row + w1 - 1);
      }
    }
#if defined(__GNUC__) || defined(__clang__)
  // Prefetches alone count as side-effect free: without this, GCC finds the function pure and drops its calls.
  __asm__ volatile("" ::: "memory");
#endif
}

constexpr int kAhead = 12;

static void block(const WinoBlock& b) {
  constexpr int W = V::W;
  float* vb = b.scratch;                                              // [64][cin][T]
  float* mb = vb + static_cast<int64_t>(64) * b.cin * T;              // [64][T][coutPad]
  float* tmp = mb + static_cast<int64_t>(64) * T * b.coutPad;         // [64][T]
  float* E = tmp + 64 * T;                                            // [T + W]
  float* O = E + T + W;                                               // [T + W]
  float* res = O + T + W;                                             // [8][W]
  for (int k = T + 1; k < T + W; k++) E[k] = O[k] = 0.f;  // read by the last vector, feeding padding tiles only
  // x is far larger than the caches and each block reads short pieces of 16 rows per channel, each of which
  // would start with a miss: prefetch a few channels ahead (the first ones at the end of the previous block).
  for (int i = 0; i < b.cin; i++) {
    if (i + kAhead < b.cin) prefetchInput(b, i + kAhead, i + kAhead + 1);
    inputTransform(b, i, vb, tmp, E, O);
  }
  const int nv = b.coutPad / W;
  const int pref = nv % 4 == 0 ? 4 : nv % 3 == 0 ? 3 : nv % 2 == 0 ? 2 : nv >= 4 ? 4 : nv;
  for (int xi = 0; xi < 64; xi++) {
    if (b.next && xi >= 64 - kAhead && xi - (64 - kAhead) < b.next->cin) prefetchInput(*b.next, xi - (64 - kAhead), xi - (64 - kAhead) + 1);
    const float* vx = vb + static_cast<int64_t>(xi) * b.cin * T;
    const float* ux = b.u + static_cast<int64_t>(xi) * b.cin * b.coutPad;
    float* mx = mb + static_cast<int64_t>(xi) * T * b.coutPad;
    for (int ov = 0; ov < nv;) {
      const int nvo = nv - ov < pref ? nv - ov : pref;
      const int o0 = ov * W;
      switch (nvo) {
        case 1: gemmXi<1>(vx, ux, b.cin, b.coutPad, (b.nt + mrtFor(1) - 1) / mrtFor(1) * mrtFor(1), o0, mx); break;
        case 2: gemmXi<2>(vx, ux, b.cin, b.coutPad, (b.nt + mrtFor(2) - 1) / mrtFor(2) * mrtFor(2), o0, mx); break;
        case 3: gemmXi<3>(vx, ux, b.cin, b.coutPad, (b.nt + mrtFor(3) - 1) / mrtFor(3) * mrtFor(3), o0, mx); break;
        default: gemmXi<4>(vx, ux, b.cin, b.coutPad, (b.nt + mrtFor(4) - 1) / mrtFor(4) * mrtFor(4), o0, mx); break;
      }
      ov += nvo;
    }
  }
  outputTransform(b, mb, res);
}

}  // namespace wino

static const WinoCores kWino = {wino::block};

}  // namespace UX_ISA_NS
}  // namespace ux
