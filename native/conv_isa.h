// Per-ISA convolution micro-kernels. conv_cores.h is compiled once per instruction set (AVX-512, AVX2+FMA,
// portable) into separate translation units with their own compiler flags; conv.cc picks one at run time.
#pragma once
#include <cstdint>

namespace ux {

struct IsaCores {
  const char* name;
  int vw;  // floats per vector
  // Output positions per register tile for `rov` output-channel vectors.
  int (*denseRW)(int rov);
  // Dense conv, `nout` output rows. Each panel (pstride floats apart): `nrows` input rows of `lw` floats
  // (rows ordered [cin][td][th]); wp: packed weights [cin][td][th][tw][rov*vw]; out (ostride floats apart per
  // output row): [qwPad][rov*vw] (qwPad a multiple of denseRW).
  // out[k][q][o] = Σ_r Σ_u wp[r][u][o] · panel_k[r][q·sw + u].
  void (*denseFwdRows)(int rov, const float* panel, int nout, int64_t pstride, const float* wp, int nrows, int tw, int lw, int sw,
                       int qwPad, float* out, int64_t ostride);
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
