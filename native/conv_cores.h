// Convolution micro-kernels, written once over a small vector abstraction `V` and instantiated per ISA.
// Include after defining struct V { static constexpr int W; ... } and UX_ISA_NAME / UX_ISA_FN.
#pragma once
#include <cstring>

#ifndef UX_OPAQUE
#if defined(__GNUC__) || defined(__clang__)
#define UX_OPAQUE(p) __asm__("" : "+r"(p))
#define UX_PREFETCH(p) __builtin_prefetch((p), 0, 2)
#else
#define UX_OPAQUE(p) (void)0
#define UX_PREFETCH(p) (void)0
#endif
#endif

namespace ux {
namespace UX_ISA_NS {

// ---------------- dense forward ----------------
// One register tile: RW output positions × ROV vectors of output channels. rows[r] + off is where input row r
// starts for the tile's first position (positions are sw apart, taps 1 apart).
template <int ROV, int RW, int SW>
static inline void fwdTile(const float* const* rows, int64_t off, const float* wp, int nrows, int tw, int swRun, float* out,
                           bool accumulate) {
  constexpr int W = V::W;
  const int sw = SW > 0 ? SW : swRun;
  V acc[RW][ROV];
  if (accumulate) {
    for (int j = 0; j < RW; j++)
      for (int k = 0; k < ROV; k++) acc[j][k] = V::load(out + j * ROV * W + k * W);
  } else {
    for (int j = 0; j < RW; j++)
      for (int k = 0; k < ROV; k++) acc[j][k] = V::zero();
  }
  const float* wq = wp;
  for (int r = 0; r < nrows; r++) {
    const float* row = rows[r] + off;
    for (int u = 0; u < tw; u++, wq += ROV * W) {
      V wv[ROV];
      for (int k = 0; k < ROV; k++) wv[k] = V::load(wq + k * W);
      const float* xr = row + u;
      // Hide that tap u+1 reads the inputs of tap u shifted by one: otherwise the compiler keeps those
      // broadcasts in registers across taps and spills accumulators to the stack instead.
      UX_OPAQUE(xr);
      for (int j = 0; j < RW; j++) {
        V xb = V::bcast(xr + j * sw);
        for (int k = 0; k < ROV; k++) acc[j][k] = V::fma(wv[k], xb, acc[j][k]);
      }
    }
  }
  for (int j = 0; j < RW; j++)
    for (int k = 0; k < ROV; k++) V::store(out + j * ROV * W + k * W, acc[j][k]);
}

// One output-channel vector, stride 1, three taps (16 channels on AVX-512, 8 below: TransBTS' 16->16 convs
// at 96³): fwdTile would spend one broadcast per FMA, bound by loads at half the FMA rate. Here each input
// broadcast x[j] feeds the three (tap u, position j − u) pairs it belongs to, so a row costs RW + 2
// broadcasts and 3 weight loads for 3·RW FMAs. Each accumulator still receives its taps in the order
// u = 0, 1, 2, row by row, as in fwdTile: the sums are the same.
template <int RW>
static inline void fwdTile1x3(const float* const* rows, int64_t off, const float* wp, int nrows, float* out, bool accumulate) {
  constexpr int W = V::W;
  V acc[RW];
  for (int j = 0; j < RW; j++) acc[j] = accumulate ? V::load(out + j * W) : V::zero();
  const float* wq = wp;
  for (int r = 0; r < nrows; r++, wq += 3 * W) {
    const float* xr = rows[r] + off;
    const V w0 = V::load(wq), w1 = V::load(wq + W), w2 = V::load(wq + 2 * W);
    // Fully unrolled (GCC would otherwise keep acc[] on the stack): the tap conditions fold away.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 32
#elif defined(__clang__)
#pragma unroll
#endif
    for (int j = 0; j < RW + 2; j++) {
      const V xb = V::bcast(xr + j);
      if (j < RW) acc[j] = V::fma(w0, xb, acc[j]);
      if (j >= 1 && j - 1 < RW) acc[j - 1] = V::fma(w1, xb, acc[j - 1]);
      if (j >= 2) acc[j - 2] = V::fma(w2, xb, acc[j - 2]);
    }
  }
  for (int j = 0; j < RW; j++) V::store(out + j * W, acc[j]);
}

// Several output rows at once. The input rows are processed in blocks whose packed weights fit in L1
// (~20 KB), so each weight block is loaded once and reused for every tile of every output row in the
// call; partial sums go through `out`.
template <int ROV>
static void fwdRowsT(const float* const* rowTab, int nout, const float* wp, int nrows, int tw, int sw, int qwPad, float* out, int64_t ostride,
                     const DensePrefetch& pf) {
  constexpr int RW = RWFor(ROV);
  const int rowW = tw * ROV * V::W;  // floats of packed weight per input row
  int rb = (20 * 1024 / 4) / rowW;
  if (rb < 1) rb = 1;
  // Spread the prefetches evenly over the tile calls.
  const int64_t calls = static_cast<int64_t>(qwPad / RW) * nout * ((nrows + rb - 1) / rb);
  const int64_t every = pf.n > 0 ? (calls / pf.n > 0 ? calls / pf.n : 1) : 0;
  int64_t call = 0;
  int pfi = 0;
  for (int r0 = 0; r0 < nrows; r0 += rb) {
    const int nr = nrows - r0 < rb ? nrows - r0 : rb;
    const float* wb = wp + static_cast<int64_t>(r0) * rowW;
    for (int k = 0; k < nout; k++) {
      float* ob = out + k * ostride;
      const float* const* rows = rowTab + static_cast<int64_t>(k) * nrows + r0;
      for (int q0 = 0; q0 < qwPad; q0 += RW) {
        const int64_t off = static_cast<int64_t>(q0) * sw;
        if (ROV == 1 && sw == 1 && tw == 3)
          fwdTile1x3<RW>(rows, off, wb, nr, ob + q0 * V::W, r0 > 0);
        else if (sw == 1)
          fwdTile<ROV, RW, 1>(rows, off, wb, nr, tw, 1, ob + q0 * ROV * V::W, r0 > 0);
        else
          fwdTile<ROV, RW, 0>(rows, off, wb, nr, tw, sw, ob + q0 * ROV * V::W, r0 > 0);
        if (pfi < pf.n && ++call % every == 0) {
          const char* c = reinterpret_cast<const char*>(pf.rows[pfi++]);
          for (int bb = 0; bb < pf.len * 4; bb += 64) UX_PREFETCH(c + bb);
        }
      }
    }
  }
}

static int denseRW(int rov) {
  switch (rov) {
    case 1: return RWFor(1);
    case 2: return RWFor(2);
    case 3: return RWFor(3);
    default: return RWFor(4);
  }
}

static void denseFwdRows(int rov, const float* const* rows, int nout, const float* wp, int nrows, int tw, int sw, int qwPad, float* out,
                         int64_t ostride, const DensePrefetch& pf) {
  switch (rov) {
    case 1: fwdRowsT<1>(rows, nout, wp, nrows, tw, sw, qwPad, out, ostride, pf); break;
    case 2: fwdRowsT<2>(rows, nout, wp, nrows, tw, sw, qwPad, out, ostride, pf); break;
    case 3: fwdRowsT<3>(rows, nout, wp, nrows, tw, sw, qwPad, out, ostride, pf); break;
    default: fwdRowsT<4>(rows, nout, wp, nrows, tw, sw, qwPad, out, ostride, pf); break;
  }
}

// ---------------- dense weight gradient ----------------
// NI input channels × TW taps × ROV vectors of accumulators for one (ud, uh) row pair.
template <int ROV, int TW, int NI>
static inline void gwBlock(const float* p0, int64_t cstride, int sw, const float* dyT, int qw, float* acc, int64_t accStride) {
  constexpr int W = V::W;
  V a[NI][TW][ROV];
  for (int i = 0; i < NI; i++)
    for (int u = 0; u < TW; u++)
      for (int k = 0; k < ROV; k++) a[i][u][k] = V::zero();
  for (int q = 0; q < qw; q++) {
    V g[ROV];
    for (int k = 0; k < ROV; k++) g[k] = V::load(dyT + q * ROV * W + k * W);
    for (int i = 0; i < NI; i++) {
      const float* xr = p0 + i * cstride + q * sw;
      for (int u = 0; u < TW; u++) {
        V xb = V::bcast(xr + u);
        for (int k = 0; k < ROV; k++) a[i][u][k] = V::fma(xb, g[k], a[i][u][k]);
      }
    }
  }
  for (int i = 0; i < NI; i++)
    for (int u = 0; u < TW; u++)
      for (int k = 0; k < ROV; k++) {
        float* dst = acc + i * accStride + (u * ROV + k) * W;
        V::store(dst, V::add(V::load(dst), a[i][u][k]));
      }
}

template <int ROV, int TW>
static void gwRowT(const float* panel, int nci, int tdh, int lw, int sw, const float* dyT, int qw, float* acc) {
  constexpr int NI = (GwBudget / (TW * ROV)) > 0 ? (GwBudget / (TW * ROV)) : 1;
  const int64_t cstride = static_cast<int64_t>(tdh) * lw;
  const int64_t accStride = static_cast<int64_t>(tdh) * TW * ROV * V::W;  // per input channel
  for (int r = 0; r < tdh; r++) {
    int i = 0;
    for (; i + NI <= nci; i += NI)
      gwBlock<ROV, TW, NI>(panel + i * cstride + r * lw, cstride, sw, dyT, qw, acc + i * accStride + r * TW * ROV * V::W, accStride);
    for (; i < nci; i++)
      gwBlock<ROV, TW, 1>(panel + i * cstride + r * lw, cstride, sw, dyT, qw, acc + i * accStride + r * TW * ROV * V::W, accStride);
  }
}

template <int ROV>
static void gwRowR(int tw, const float* panel, int nci, int tdh, int lw, int sw, const float* dyT, int qw, float* acc) {
  switch (tw) {
    case 1: gwRowT<ROV, 1>(panel, nci, tdh, lw, sw, dyT, qw, acc); break;
    case 2: gwRowT<ROV, 2>(panel, nci, tdh, lw, sw, dyT, qw, acc); break;
    case 3: gwRowT<ROV, 3>(panel, nci, tdh, lw, sw, dyT, qw, acc); break;
    case 4: gwRowT<ROV, 4>(panel, nci, tdh, lw, sw, dyT, qw, acc); break;
    case 5: gwRowT<ROV, 5>(panel, nci, tdh, lw, sw, dyT, qw, acc); break;
    case 6: gwRowT<ROV, 6>(panel, nci, tdh, lw, sw, dyT, qw, acc); break;
    case 7: gwRowT<ROV, 7>(panel, nci, tdh, lw, sw, dyT, qw, acc); break;
    default: {
      // Wide kernels: split the taps into groups of 7 (panel offset u0, acc offset u0).
      // Handled by the caller (conv.cc never passes tw > 7).
      break;
    }
  }
}

static void denseGwRow(int rov, int tw, const float* panel, int nci, int tdh, int lw, int sw, const float* dyT, int qw, float* acc) {
  switch (rov) {
    case 1: gwRowR<1>(tw, panel, nci, tdh, lw, sw, dyT, qw, acc); break;
    case 2: gwRowR<2>(tw, panel, nci, tdh, lw, sw, dyT, qw, acc); break;
    case 3: gwRowR<3>(tw, panel, nci, tdh, lw, sw, dyT, qw, acc); break;
    default: gwRowR<4>(tw, panel, nci, tdh, lw, sw, dyT, qw, acc); break;
  }
}

// ---------------- depthwise forward ----------------
template <int NV>
static void dwRows(const float* xp, int hp, int lw, const float* w, int td, int th, int tw, int d, int h0, int nr, int w0, int qw,
                   float bias, int qh, float* y) {
  constexpr int W = V::W;
  constexpr int NR = 4;
  V acc[NR][NV];
  V b = V::set1(bias);
  for (int r = 0; r < NR; r++)
    for (int v = 0; v < NV; v++) acc[r][v] = b;
  for (int ud = 0; ud < td; ud++) {
    for (int ih = 0; ih < NR + th - 1; ih++) {
      const float* row = xp + (static_cast<int64_t>(d + ud) * hp + h0 + ih) * lw + w0;
      const float* wr = w + ud * th * tw;
      for (int uw = 0; uw < tw; uw++) {
        V xv[NV];
        for (int v = 0; v < NV; v++) xv[v] = V::loadu(row + v * W + uw);
        for (int r = 0; r < NR; r++) {
          int uh = ih - r;
          if (uh < 0 || uh >= th) continue;
          V wb = V::bcast(wr + uh * tw + uw);
          for (int v = 0; v < NV; v++) acc[r][v] = V::fma(wb, xv[v], acc[r][v]);
        }
      }
    }
  }
  for (int r = 0; r < nr; r++) {
    float* yr = y + (static_cast<int64_t>(d) * qh + h0 + r) * qw + w0;
    for (int v = 0; v < NV; v++) {
      int n = qw - w0 - v * W;
      if (n >= W)
        V::storeu(yr + v * W, acc[r][v]);
      else if (n > 0)
        V::storePartial(yr + v * W, acc[r][v], n);
    }
  }
}

static void dwFwdChannel(const float* xp, int hp, int lw, const float* w, int td, int th, int tw, int qd, int qh, int qw, float bias,
                         float* y) {
  constexpr int W = V::W;
  constexpr int MAXV = 6;
  for (int d = 0; d < qd; d++)
    for (int h0 = 0; h0 < qh; h0 += 4) {
      int nr = qh - h0 < 4 ? qh - h0 : 4;
      for (int w0 = 0; w0 < qw; w0 += MAXV * W) {
        int nv = (qw - w0 + W - 1) / W;
        if (nv > MAXV) nv = MAXV;
        switch (nv) {
          case 1: dwRows<1>(xp, hp, lw, w, td, th, tw, d, h0, nr, w0, qw, bias, qh, y); break;
          case 2: dwRows<2>(xp, hp, lw, w, td, th, tw, d, h0, nr, w0, qw, bias, qh, y); break;
          case 3: dwRows<3>(xp, hp, lw, w, td, th, tw, d, h0, nr, w0, qw, bias, qh, y); break;
          case 4: dwRows<4>(xp, hp, lw, w, td, th, tw, d, h0, nr, w0, qw, bias, qh, y); break;
          case 5: dwRows<5>(xp, hp, lw, w, td, th, tw, d, h0, nr, w0, qw, bias, qh, y); break;
          default: dwRows<6>(xp, hp, lw, w, td, th, tw, d, h0, nr, w0, qw, bias, qh, y); break;
        }
      }
    }
}

// ---------------- depthwise weight gradient ----------------
template <int TW, int NU>
static void dwGwBlock(const float* xp, int hp, int lw, const float* dyp, int qd, int qh, int qwp, int ud, int uh0, double* dw, int th) {
  constexpr int W = V::W;
  for (int d = 0; d < qd; d++) {
    V a[NU][TW];
    for (int i = 0; i < NU; i++)
      for (int u = 0; u < TW; u++) a[i][u] = V::zero();
    for (int h = 0; h < qh; h++) {
      const float* g = dyp + (static_cast<int64_t>(d) * qh + h) * qwp;
      const float* xr = xp + (static_cast<int64_t>(d + ud) * hp + h + uh0) * lw;
      for (int v = 0; v < qwp; v += W) {
        V gv = V::load(g + v);
        for (int i = 0; i < NU; i++)
          for (int u = 0; u < TW; u++) a[i][u] = V::fma(gv, V::loadu(xr + i * lw + v + u), a[i][u]);
      }
    }
    for (int i = 0; i < NU; i++)
      for (int u = 0; u < TW; u++) dw[(ud * th + uh0 + i) * TW + u] += V::hsum(a[i][u]);
  }
}

template <int TW>
static void dwGwT(const float* xp, int hp, int lw, const float* dyp, int qd, int qh, int qwp, int td, int th, double* dw) {
  constexpr int NU = (24 / TW) >= 3 ? 3 : ((24 / TW) > 0 ? (24 / TW) : 1);
  for (int ud = 0; ud < td; ud++) {
    int uh = 0;
    for (; uh + NU <= th; uh += NU) dwGwBlock<TW, NU>(xp, hp, lw, dyp, qd, qh, qwp, ud, uh, dw, th);
    for (; uh < th; uh++) dwGwBlock<TW, 1>(xp, hp, lw, dyp, qd, qh, qwp, ud, uh, dw, th);
  }
}

static void dwGwChannel(const float* xp, int hp, int lw, const float* dyp, int qd, int qh, int qwp, int td, int th, int tw, double* dw) {
  switch (tw) {
    case 1: dwGwT<1>(xp, hp, lw, dyp, qd, qh, qwp, td, th, dw); break;
    case 2: dwGwT<2>(xp, hp, lw, dyp, qd, qh, qwp, td, th, dw); break;
    case 3: dwGwT<3>(xp, hp, lw, dyp, qd, qh, qwp, td, th, dw); break;
    case 4: dwGwT<4>(xp, hp, lw, dyp, qd, qh, qwp, td, th, dw); break;
    case 5: dwGwT<5>(xp, hp, lw, dyp, qd, qh, qwp, td, th, dw); break;
    case 6: dwGwT<6>(xp, hp, lw, dyp, qd, qh, qwp, td, th, dw); break;
    default: dwGwT<7>(xp, hp, lw, dyp, qd, qh, qwp, td, th, dw); break;
  }
}

// ---------------- tile store (transpose [q][o] → y[o][q]) ----------------
[[maybe_unused]] static void storeTileScalar(const float* tile, int RO, int nl, int qw, const float* bias, float* y0, int64_t cstride, int so) {
  for (int l = 0; l < nl; l++) {
    const float bv = bias ? bias[l] : 0.f;
    float* yr = y0 + l * cstride;
    for (int q = 0; q < qw; q++) yr[static_cast<int64_t>(q) * so] = tile[q * RO + l] + bv;
  }
}

[[maybe_unused]] static void loadTileTScalar(const float* src0, int64_t cstride, int nl, int qw, float* dst, int RO) {
  for (int q = 0; q < qw; q++) {
    float* t = dst + static_cast<int64_t>(q) * RO;
    for (int l = 0; l < nl; l++) t[l] = src0[l * cstride + q];
    for (int l = nl; l < RO; l++) t[l] = 0.f;
  }
}

#ifndef UX_STORE_TILE
#define UX_STORE_TILE storeTileScalar
#define UX_LOAD_TILE_T loadTileTScalar
#endif

static const IsaCores kCores = {UX_ISA_NAME, V::W, denseRW, denseFwdRows, UX_STORE_TILE, UX_LOAD_TILE_T, denseGwRow, dwFwdChannel, dwGwChannel};

}  // namespace UX_ISA_NS
}  // namespace ux
