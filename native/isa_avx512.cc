// AVX-512F micro-kernels (this file alone is compiled with -mavx512f -mfma).
#include "conv_isa.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

// GCC 12 reports the unpack intrinsics' internal _mm512_undefined_ps() operand as "maybe uninitialized".
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

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
// 16×16 transposes: 16 tile rows (positions) of 16 channels become 16 channel rows of 16 positions, written
// with one (masked) store each, instead of 256 scalar strided reads.
static void storeTile16(const float* tile, int RO, int nl, int qw, const float* bias, float* y0, int64_t cstride, int so);
static void loadTileT16(const float* src0, int64_t cstride, int nl, int qw, float* dst, int RO);
constexpr int RWFor(int rov) { return rov == 1 ? 24 : rov == 2 ? 12 : rov == 3 ? 8 : 6; }
constexpr int GwBudget = 24;
}  // namespace avx512
}  // namespace ux

#define UX_ISA_NS avx512
#define UX_ISA_NAME "avx512"
#define UX_STORE_TILE storeTile16
#define UX_LOAD_TILE_T loadTileT16
#include "conv_cores.h"
#define UX_GEMM_MR 12
#define UX_GEMM_NV 2
#define UX_GEMM_DL 4
#define UX_GEMM_DS 6
#include "gemm_cores.h"
namespace ux {
namespace avx512 {
// Winograd input rows: with r[j] = x[w0 + j] (zero outside [0, n)), e0[k] = r[2k], o0[k] = r[2k+1],
// e1[k] = r[2k+2], o1[k] = r[2k+3] for the block's 16 tiles, from masked loads and two-source permutes. The
// load masks (offsets 0, 16, 2, 18) depend on the block only: winoRowMasks packs them, 16 bits each.
static inline uint64_t winoRowMasks(int n, int w0) {
  const int lo = w0 < 0 ? -w0 : 0, hi = n - w0 < 34 ? n - w0 : 34;
  uint64_t r = 0;
  const int offs[4] = {0, 16, 2, 18};
  for (int q = 0; q < 4; q++) {
    const int a = lo - offs[q] < 0 ? 0 : lo - offs[q], b = hi - offs[q] > 16 ? 16 : hi - offs[q];
    const uint64_t m = b > a ? (((1u << b) - 1) & ~((1u << a) - 1)) : 0;
    r |= m << (16 * q);
  }
  return r;
}
static inline void winoRowPhases(const float* src, uint64_t masks, int w0, V& e0, V& o0, V& e1, V& o1) {
  const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const float* p = src + w0;
  const __m512 l0 = _mm512_maskz_loadu_ps(static_cast<__mmask16>(masks), p);
  const __m512 h0 = _mm512_maskz_loadu_ps(static_cast<__mmask16>(masks >> 16), p + 16);
  const __m512 l2 = _mm512_maskz_loadu_ps(static_cast<__mmask16>(masks >> 32), p + 2);
  const __m512 h2 = _mm512_maskz_loadu_ps(static_cast<__mmask16>(masks >> 48), p + 18);
  e0.v = _mm512_permutex2var_ps(l0, ev, h0);
  o0.v = _mm512_permutex2var_ps(l0, od, h0);
  e1.v = _mm512_permutex2var_ps(l2, ev, h2);
  o1.v = _mm512_permutex2var_ps(l2, od, h2);
}
}  // namespace avx512
}  // namespace ux
#define UX_WINO_ROW_PHASES winoRowPhases
#define UX_WINO_ROW_MASKS winoRowMasks
#include "winograd_cores.h"

namespace ux {
namespace avx512 {
static inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) {
    for (int h = 0; h < 2; h++) {  // t[4i + h] pairs columns 2h, 2h + 1 of rows 4i, 4i + 1; t[4i + 2 + h] of rows 4i + 2, 4i + 3
      __m512d a = _mm512_castps_pd(t[4 * i + h]), b = _mm512_castps_pd(t[4 * i + 2 + h]);
      r[4 * i + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
      r[4 * i + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    }
  }
  // r[4i + k] now holds, in each 128-bit lane L, row-group i's 4 elements of column 4L + k.
  for (int k = 0; k < 4; k++) {
    __m512 a = _mm512_shuffle_f32x4(r[k], r[4 + k], 0x88), b = _mm512_shuffle_f32x4(r[k], r[4 + k], 0xdd);
    __m512 c = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0x88), d = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0xdd);
    t[k] = _mm512_shuffle_f32x4(a, c, 0x88);       // column k
    t[4 + k] = _mm512_shuffle_f32x4(b, d, 0x88);   // column 4 + k
    t[8 + k] = _mm512_shuffle_f32x4(a, c, 0xdd);   // column 8 + k
    t[12 + k] = _mm512_shuffle_f32x4(b, d, 0xdd);  // column 12 + k
  }
  for (int i = 0; i < 16; i++) r[i] = t[i];
}

static void storeTile16(const float* tile, int RO, int nl, int qw, const float* bias, float* y0, int64_t cstride, int so) {
  if (so != 1) {
    storeTileScalar(tile, RO, nl, qw, bias, y0, cstride, so);
    return;
  }
  const int qrows = (qw + 7) / 8 * 8;  // tile rows that exist (qwPad is a multiple of 8 at least)
  for (int l0 = 0; l0 < nl; l0 += 16) {
    const int nc = nl - l0 < 16 ? nl - l0 : 16;
    const __mmask16 cm = static_cast<__mmask16>((1u << nc) - 1);
    for (int q0 = 0; q0 < qw; q0 += 16) {
      __m512 r[16];
      for (int j = 0; j < 16; j++)
        r[j] = q0 + j < qrows ? _mm512_maskz_loadu_ps(cm, tile + (q0 + j) * RO + l0) : _mm512_setzero_ps();
      transpose16(r);
      const int nq = qw - q0 < 16 ? qw - q0 : 16;
      const __mmask16 qm = static_cast<__mmask16>((1u << nq) - 1);
      for (int l = 0; l < nc; l++) {
        __m512 v = bias ? _mm512_add_ps(r[l], _mm512_set1_ps(bias[l0 + l])) : r[l];
        _mm512_mask_storeu_ps(y0 + (l0 + l) * cstride + q0, qm, v);
      }
    }
  }
}
static void loadTileT16(const float* src0, int64_t cstride, int nl, int qw, float* dst, int RO) {
  for (int l0 = 0; l0 < RO; l0 += 16) {
    const int nc = nl - l0 < 16 ? (nl - l0 > 0 ? nl - l0 : 0) : 16;
    for (int q0 = 0; q0 < qw; q0 += 16) {
      const int nq = qw - q0 < 16 ? qw - q0 : 16;
      const __mmask16 qm = static_cast<__mmask16>((1u << nq) - 1);
      __m512 r[16];
      for (int l = 0; l < 16; l++) r[l] = l < nc ? _mm512_maskz_loadu_ps(qm, src0 + (l0 + l) * cstride + q0) : _mm512_setzero_ps();
      transpose16(r);
      for (int j = 0; j < nq; j++) _mm512_storeu_ps(dst + static_cast<int64_t>(q0 + j) * RO + l0, r[j]);
    }
  }
}
}  // namespace avx512
}  // namespace ux

namespace ux {
namespace avx512 {
// GELU 0.5·x·erfc(−x/√2) with the same erfc form as kernels.cc's portable loop (t = 1/(1 + z/2),
// erfc = t·exp(−z² + P(t)), reflected for negative arguments), written for AVX-512: FMAs for the
// polynomials and for −z² + P (one rounding instead of two), t from the 14-bit reciprocal estimate and one
// Newton step (≈ 1 ulp, instead of a division), and 2^k by vscalefps. About 2× the portable loop's
// throughput; native.test.ts pins it to the double-precision reference on [−12, 12].
static inline __m512 expV(__m512 x) {
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.0f)), _mm512_set1_ps(-87.0f));
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(1.42860682030941723e-6f), r);
  __m512 p = _mm512_set1_ps(1.98412698412698413e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.38888888888888889e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.33333333333333333e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.16666666666666667e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.66666666666666667e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, k);
}

static inline __m512 geluV(__m512 v) {
  const __m512 one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f);
  const __m512 xe = _mm512_mul_ps(v, _mm512_set1_ps(-0.70710678118654752440f));  // erfc argument
  const __m512 z = _mm512_abs_ps(xe);
  const __m512 d = _mm512_fmadd_ps(z, _mm512_set1_ps(0.5f), one);
  __m512 t = _mm512_rcp14_ps(d);
  t = _mm512_mul_ps(t, _mm512_fnmadd_ps(d, t, two));  // one Newton step
  __m512 p = _mm512_set1_ps(0.17087277f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.82215223f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.48851587f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.13520398f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.27886807f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.18628806f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.09678418f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.37409196f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.00002368f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.26551223f));
  const __m512 r = _mm512_mul_ps(t, expV(_mm512_fnmadd_ps(z, z, p)));
  const __mmask16 neg = _mm512_cmp_ps_mask(xe, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 erfc = _mm512_mask_sub_ps(r, neg, two, r);
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), erfc);
}

static void geluSpan(const float* x, int64_t n, float* y) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, geluV(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, geluV(_mm512_maskz_loadu_ps(m, x + i)));
  }
}
}  // namespace avx512

GeluSpanFn geluAvx512() { return &avx512::geluSpan; }
const IsaCores* isaAvx512() { return &avx512::kCores; }
const GemmCores* gemmAvx512() { return &avx512::kGemm; }
const WinoCores* winoAvx512() { return &avx512::kWino; }
}  // namespace ux

#else
namespace ux {
GeluSpanFn geluAvx512() { return nullptr; }
const IsaCores* isaAvx512() { return nullptr; }
const GemmCores* gemmAvx512() { return nullptr; }
const WinoCores* winoAvx512() { return nullptr; }
}  // namespace ux
#endif
