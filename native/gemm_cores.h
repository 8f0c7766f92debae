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

static const GemmCores kGemm = {UX_ISA_NAME, UX_GEMM_MR, UX_GEMM_NV * V::W, gemmMicro<UX_GEMM_NV>, V::W, gemmMicro<1>};

}  // namespace UX_ISA_NS
}  // namespace ux
