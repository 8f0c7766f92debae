// GEMM micro-kernel over the vector abstraction `V` of the including ISA file (see conv_cores.h), with
// UX_GEMM_MR rows and NV vectors of columns held in registers.
#pragma once
#include "gemm_isa.h"

namespace ux {
namespace UX_ISA_NS {

template <int NV>
static void gemmMicro(int kc, const float* ap, int64_t lda, const float* bp, float* c, int64_t ldc, int mr, int nr, bool accumulate,
                      const float* bias) {
  constexpr int MR = UX_GEMM_MR, W = V::W, NR = NV * W;
  V acc[MR][NV];
  for (int i = 0; i < MR; i++)
    for (int v = 0; v < NV; v++) acc[i][v] = V::zero();
  if (lda == 0) {
    for (int k = 0; k < kc; k++, ap += MR, bp += NR) {
      V b[NV];
      for (int v = 0; v < NV; v++) b[v] = V::load(bp + v * W);
      for (int i = 0; i < MR; i++) {
        V a = V::bcast(ap + i);
        for (int v = 0; v < NV; v++) acc[i][v] = V::fma(a, b[v], acc[i][v]);
      }
    }
  } else {
    // A in place: rows past mr alias the last real row (valid memory; their sums are never stored).
    const float* ar[MR];
    for (int i = 0; i < MR; i++) ar[i] = ap + (i < mr ? i : mr - 1) * lda;
    for (int k = 0; k < kc; k++, bp += NR) {
      V b[NV];
      for (int v = 0; v < NV; v++) b[v] = V::load(bp + v * W);
      for (int i = 0; i < MR; i++) {
        V a = V::bcast(ar[i] + k);
        for (int v = 0; v < NV; v++) acc[i][v] = V::fma(a, b[v], acc[i][v]);
      }
    }
  }
  if (mr == MR && nr == NR) {
    for (int i = 0; i < MR; i++) {
      float* ci = c + i * ldc;
      for (int v = 0; v < NV; v++) {
        V r = acc[i][v];
        if (accumulate) r = V::add(r, V::loadu(ci + v * W));
        else if (bias) r = V::add(r, V::loadu(bias + v * W));
        V::storeu(ci + v * W, r);
      }
    }
    return;
  }
  alignas(64) float t[MR * NR];
  for (int i = 0; i < MR; i++)
    for (int v = 0; v < NV; v++) V::storeu(t + i * NR + v * W, acc[i][v]);
  for (int i = 0; i < mr; i++) {
    float* ci = c + i * ldc;
    for (int j = 0; j < nr; j++) ci[j] = accumulate ? ci[j] + t[i * NR + j] : (bias ? t[i * NR + j] + bias[j] : t[i * NR + j]);
  }
}

// LR × SR accumulator vectors; each step along K loads LR + SR vectors for LR·SR FMAs, all from L1 (the driver
// sizes K slices so that the LR + SR row pieces fit).
template <int LR, int SR>
static void gemmDot(int64_t kv, const float* l, int64_t ldl, int nl, const float* s, int64_t lds, int ns, float* part, int64_t psl,
                    bool accumulate) {
  constexpr int W = V::W;
  const float* lr[LR];
  const float* sr[SR];
  for (int i = 0; i < LR; i++) lr[i] = l + (i < nl ? i : nl - 1) * ldl;
  for (int j = 0; j < SR; j++) sr[j] = s + (j < ns ? j : ns - 1) * lds;
  V acc[LR][SR];
  for (int i = 0; i < LR; i++)
    for (int j = 0; j < SR; j++) acc[i][j] = V::zero();
  for (int64_t k = 0; k < kv; k += W) {
    V x[LR];
    for (int i = 0; i < LR; i++) x[i] = V::loadu(lr[i] + k);
    for (int j = 0; j < SR; j++) {
      V y = V::loadu(sr[j] + k);
      for (int i = 0; i < LR; i++) acc[i][j] = V::fma(x[i], y, acc[i][j]);
    }
  }
  for (int i = 0; i < LR; i++) {
    if (i >= nl) break;
    for (int j = 0; j < SR; j++) {
      if (j >= ns) break;
      float* p = part + i * psl + j * W;
      V::storeu(p, accumulate ? V::add(acc[i][j], V::loadu(p)) : acc[i][j]);
    }
  }
}

// Pairwise halving (lanes e and e + h, h = W/2, W/4, …): independent across q and only log2(W) adds deep,
// where a lane-by-lane sum would be a W-long chain of dependent adds per output.
static void gemmDotSum(const float* part, int64_t n, float* out) {
  constexpr int W = V::W;
  for (int64_t q = 0; q < n; q++) {
    float t[W];
    for (int e = 0; e < W; e++) t[e] = part[q * W + e];
    for (int h = W / 2; h >= 1; h /= 2)
      for (int e = 0; e < h; e++) t[e] += t[e + h];
    out[q] = t[0];
  }
}

static const GemmCores kGemm = {UX_ISA_NAME,         UX_GEMM_MR, UX_GEMM_NV * V::W,
                                gemmMicro<UX_GEMM_NV>, V::W,     gemmMicro<1>,
                                V::W,                UX_GEMM_DL, UX_GEMM_DS,
                                gemmDot<UX_GEMM_DL, UX_GEMM_DS>, gemmDotSum};

}  // namespace UX_ISA_NS
}  // namespace ux
