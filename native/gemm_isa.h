// Per-ISA GEMM micro-kernels (gemm_cores.h instantiated in isa_avx512.cc / isa_avx2.cc / isa_generic.cc,
// each compiled with its own flags); gemm.cc picks one at run time like the convolutions do.
#pragma once
#include <cstdint>

namespace ux {

struct GemmCores {
  const char* name;
  int MR, NR;  // register tile: MR rows × NR columns (NR a multiple of the vector width)
  // c[i·ldc + j] (+)= Σ_k ap[k·MR + i] · bp[k·NR + j] for i < mr, j < nr (ap, bp packed and zero-padded to
  // MR / NR). accumulate=false overwrites c (adding bias[j] when bias is not null).
  void (*micro)(int kc, const float* ap, const float* bp, float* c, int64_t ldc, int mr, int nr, bool accumulate, const float* bias);
};

const GemmCores* gemmAvx512();  // null when not compiled in
const GemmCores* gemmAvx2();
const GemmCores* gemmGeneric();

}  // namespace ux
