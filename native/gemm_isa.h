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

struct GemmCores {
  const char* name;
  int MR, NR;  // register tile: MR rows × NR columns (NR a multiple of the vector width)
  GemmMicro micro;
  // One vector of columns (NR / 2 wide): for products with few columns (attention·V with a head width of
  // 16), where the wide tile would compute half zeros.
  int NRnarrow;
  GemmMicro narrow;
};

const GemmCores* gemmAvx512();  // null when not compiled in
const GemmCores* gemmAvx2();
const GemmCores* gemmGeneric();

}  // namespace ux
