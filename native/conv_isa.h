// Per-ISA convolution micro-kernels. conv_cores.h is compiled once per instruction set (AVX-512, AVX2+FMA,
// portable) into separate translation units with their own compiler flags; conv.cc picks one at run time.
#pragma once
#include <cstdint>

namespace ux {

// Input rows (`len` floats each) that the next call will read: the kernel spreads prefetches for them over
// its tiles, so that copying them later hits the cache.
struct DensePrefetch {
  const float* const* rows = nullptr;
  int n = 0, len = 0;
};

struct IsaCores {
  const char* name;
  int vw;  // floats per vector
  // Output positions per register tile for `rov` output-channel vectors.
  int (*denseRW)(int rov);
  // Dense conv over `nout` output rows. rows[k·nrows + r] points at input row r of output row k (rows ordered
  // [cin][td][th]) such that the input of position q, tap u is rows[k·nrows + r][q·sw + u]; wp: packed
  // weights [cin][td][th][tw][rov·vw]. out[k][q][o] = Σ_r Σ_u wp[r][u][o] · input(q, u) for q < qwPad (a
  // multiple of denseRW), output rows ostride floats apart.
  void (*denseFwdRows)(int rov, const float* const* rows, int nout, const float* wp, int nrows, int tw, int sw, int qwPad, float* out,
                       int64_t ostride, const DensePrefetch& pf);
  // Writes a dense tile out: y0[l·cstride + q·so] = tile[q·RO + l] (+ bias[l]) for l < nl, q < qw. The tile
  // holds at least roundUp(qw, denseRW) positions; bias may be null.
  void (*denseStoreTile)(const float* tile, int RO, int nl, int qw, const float* bias, float* y0, int64_t cstride, int so);
  // The inverse layout change: dst[q·RO + l] = src0[l·cstride + q] for q < qw, l < RO (zero for l ≥ nl).
  void (*denseLoadTileT)(const float* src0, int64_t cstride, int nl, int qw, float* dst, int RO);
  // Dense weight gradient, one output row: acc[i][r][u][o] += Σ_q panel[i][r][q·sw + u] · dyT[q][o] for
  // i < nci, r < tdh, u < tw; panel channel stride = tdh·lw.
  void (*denseGwRow)(int rov, int tw, const float* panel, int nci, int tdh, int lw, int sw, const float* dyT, int qw, float* acc);
  // Depthwise, stride 1, one channel: y[d][h][w] = bias + Σ w[ud][uh][uw] · xp[d+ud][h+uh][w+uw].
  // xp is [*, hp, lw] zero-padded so that rows up to ceil(qh/4)*4+th-1 and columns up to ceil(qw/vw)*vw+tw-1 exist.
  void (*dwFwdChannel)(const float* xp, int hp, int lw, const float* w, int td, int th, int tw, int qd, int qh, int qw, float bias,
                       float* y);
  // Depthwise weight gradient, one channel: dw[ud][uh][uw] += Σ dyp[d][h][w] · xp[d+ud][h+uh][w+uw], dyp is
  // [qd][qh][qwp] zero-padded in w to qwp = ceil(qw/vw)*vw.
  void (*dwGwChannel)(const float* xp, int hp, int lw, const float* dyp, int qd, int qh, int qwp, int td, int th, int tw, double* dw);
};

const IsaCores* isaAvx512();  // null when not compiled in
const IsaCores* isaAvx2();
const IsaCores* isaGeneric();

}  // namespace ux
