// AVX-512F micro-kernels (this file alone is compiled with -mavx512f -mfma).
#include "conv_isa.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

namespace ux {
namespace avx512 {
struct V {
  __m512 v;
  static constexpr int W = 16;
  static inline V zero() { return {_mm512_setzero_ps()}; }
  static inline V load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static inline V loadu(const float* p) { return {_mm512_loadu_ps(p)}; }
  static inline V bcast(const float* p) { return {_mm512_set1_ps(*p)}; }
  static inline V set1(float x) { return {_mm512_set1_ps(x)}; }
  static inline V fma(V a, V b, V c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
  static inline V add(V a, V b) { return {_mm512_add_ps(a.v, b.v)}; }
  static inline void store(float* p, V a) { _mm512_storeu_ps(p, a.v); }
  static inline void storeu(float* p, V a) { _mm512_storeu_ps(p, a.v); }
  static inline void storePartial(float* p, V a, int n) { _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1), a.v); }
  static inline double hsum(V a) {
    alignas(64) float t[16];
    _mm512_store_ps(t, a.v);
    double s = 0;
    for (int i = 0; i < 16; i++) s += t[i];
    return s;
  }
};
constexpr int RWFor(int rov) { return rov == 1 ? 24 : rov == 2 ? 12 : rov == 3 ? 8 : 6; }
constexpr int GwBudget = 24;
}  // namespace avx512
}  // namespace ux

#define UX_ISA_NS avx512
#define UX_ISA_NAME "avx512"
#include "conv_cores.h"

namespace ux {
const IsaCores* isaAvx512() { return &avx512::kCores; }
}  // namespace ux

#else
namespace ux {
const IsaCores* isaAvx512() { return nullptr; }
}  // namespace ux
#endif
