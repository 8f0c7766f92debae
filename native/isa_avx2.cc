// AVX2 + FMA micro-kernels (this file alone is compiled with -mavx2 -mfma).
#include "conv_isa.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

namespace ux {
namespace avx2 {
struct V {
  __m256 v;
  static constexpr int W = 8;
  static inline V zero() { return {_mm256_setzero_ps()}; }
  static inline V load(const float* p) { return {_mm256_loadu_ps(p)}; }
  static inline V loadu(const float* p) { return {_mm256_loadu_ps(p)}; }
  static inline V bcast(const float* p) { return {_mm256_broadcast_ss(p)}; }
  static inline V set1(float x) { return {_mm256_set1_ps(x)}; }
  static inline V fma(V a, V b, V c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
  static inline V add(V a, V b) { return {_mm256_add_ps(a.v, b.v)}; }
  static inline void store(float* p, V a) { _mm256_storeu_ps(p, a.v); }
  static inline void storeu(float* p, V a) { _mm256_storeu_ps(p, a.v); }
  static inline void storePartial(float* p, V a, int n) {
    alignas(32) float t[8];
    _mm256_store_ps(t, a.v);
    for (int i = 0; i < n; i++) p[i] = t[i];
  }
  static inline double hsum(V a) {
    alignas(32) float t[8];
    _mm256_store_ps(t, a.v);
    double s = 0;
    for (int i = 0; i < 8; i++) s += t[i];
    return s;
  }
};
constexpr int RWFor(int rov) { return rov == 1 ? 12 : rov == 2 ? 6 : rov == 3 ? 4 : 2; }
constexpr int GwBudget = 12;
}  // namespace avx2
}  // namespace ux

#define UX_ISA_NS avx2
#define UX_ISA_NAME "avx2"
#include "conv_cores.h"
#define UX_GEMM_MR 6
#define UX_GEMM_NV 2
#define UX_GEMM_DL 3
#define UX_GEMM_DS 4
#include "gemm_cores.h"
#include "winograd_cores.h"

namespace ux {
const IsaCores* isaAvx2() { return &avx2::kCores; }
const GemmCores* gemmAvx2() { return &avx2::kGemm; }
const WinoCores* winoAvx2() { return &avx2::kWino; }
}  // namespace ux

#else
namespace ux {
const IsaCores* isaAvx2() { return nullptr; }
const GemmCores* gemmAvx2() { return nullptr; }
const WinoCores* winoAvx2() { return nullptr; }
}  // namespace ux
#endif
