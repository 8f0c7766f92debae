// Per-ISA GEMM micro-kernels (gemm_cores.h instantiated in isa_avx512.cc / isa_avx2.cc / isa_generic.cc,
// each compiled with its own flags); gemm.cc picks one at run time like the convolutions do.
#pragma once
#include <cstdint>

namespace ux {

// c[i·ldc + j] (+)= Σ_k A(i, k) · bp[k·NR + j] for i < mr, j < nr (bp packed and zero-padded to NR).
// A(i, k) is ap[k·MR + i] for a packed A panel (lda = 0), or ap[i·lda + k] read in place from a row-major
// A (lda > 0; rows ≥ mr are never read). accumulate=false overwrites c (adding bias[j] when bias is not null).
using GemmMicro = void (*)(int kc, const float* ap, int64_t lda, const float* bp, float* c, int64_t ldc, int mr, int nr,
                           bool accumulate, const float* bias);

// Dot-product tile for A·Bᵀ with one side few rows (gemm.cc's dot path): for i < nl, j < ns, the vector of
// W lane partial sums part[i·psl + j·W + lane] (+)= Σ_t l[i·ldl + t·W + lane] · s[j·lds + t·W + lane] over
// t < kv / W (kv a multiple of W). Both operands are read along K in place; rows past nl / ns alias the last
// real row (valid memory; their sums are never stored). accumulate=false overwrites part.
using GemmDot = void (*)(int64_t kv, const float* l, int64_t ldl, int nl, const float* s, int64_t lds, int ns, float* part, int64_t psl,
                         bool accumulate);

struct GemmCores {
  const char* name;
  int MR, NR;  // register tile: MR rows × NR columns (NR a multiple of the vector width)
  GemmMicro micro;
  // One vector of columns (NR / 2 wide): for products with few columns (attention·V with a head width of
  // 16), where the wide tile would compute half zeros.
  int NRnarrow;
  GemmMicro narrow;
  int W;           // floats per vector (the dot tile's lanes)
  int DL, DS;      // dot tile: DL large-operand rows × DS small-operand rows of accumulators
  GemmDot dot;
  // out[q] = Σ_lane part[q·W + lane] for q < n: the dot path's final lane sums, in a fixed pairwise order.
  void (*dotSum)(const float* part, int64_t n, float* out);
};

const GemmCores* gemmAvx512();  // null when not compiled in
// Exact-erf GELU of a span with AVX-512 FMA (null when not compiled in); see isa_avx512.cc.
using GeluSpanFn = void (*)(const float* x, int64_t n, float* y);
GeluSpanFn geluAvx512();
const GemmCores* gemmAvx2();
const GemmCores* gemmGeneric();

}  // namespace ux
