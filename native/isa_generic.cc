// Portable micro-kernels: plain C++ on 8-float blocks that the compiler vectorises for the baseline ISA
// (SSE2 on x86-64, NEON on arm64).
#include "conv_isa.h"

namespace ux {
namespace generic {
struct V {
  static constexpr int W = 8;
  float v[8];
  static inline V zero() {
    V r;
    for (int i = 0; i < W; i++) r.v[i] = 0.f;
    return r;
  }
  static inline V load(const float* p) {
    V r;
    for (int i = 0; i < W; i++) r.v[i] = p[i];
    return r;
  }
  static inline V loadu(const float* p) { return load(p); }
  static inline V bcast(const float* p) { return set1(*p); }
  static inline V set1(float x) {
    V r;
    for (int i = 0; i < W; i++) r.v[i] = x;
    return r;
  }
  static inline V fma(V a, V b, V c) {
    V r;
    for (int i = 0; i < W; i++) r.v[i] = a.v[i] * b.v[i] + c.v[i];
    return r;
  }
  static inline V add(V a, V b) {
    V r;
    for (int i = 0; i < W; i++) r.v[i] = a.v[i] + b.v[i];
    return r;
  }
  static inline void store(float* p, V a) {
    for (int i = 0; i < W; i++) p[i] = a.v[i];
  }
  static inline void storeu(float* p, V a) { store(p, a); }
  static inline void storePartial(float* p, V a, int n) {
    for (int i = 0; i < n; i++) p[i] = a.v[i];
  }
  static inline double hsum(V a) {
    double s = 0;
    for (int i = 0; i < W; i++) s += a.v[i];
    return s;
  }
};
constexpr int RWFor(int rov) { return rov == 1 ? 8 : rov == 2 ? 4 : rov == 3 ? 4 : 2; }
constexpr int GwBudget = 8;
}  // namespace generic
}  // namespace ux

#define UX_ISA_NS generic
#define UX_ISA_NAME "generic"
#include "conv_cores.h"
#define UX_GEMM_MR 4
#define UX_GEMM_NV 2
#define UX_GEMM_DL 2
#define UX_GEMM_DS 3
#include "gemm_cores.h"
#include "winograd_cores.h"

namespace ux {
const IsaCores* isaGeneric() { return &generic::kCores; }
const GemmCores* gemmGeneric() { return &generic::kGemm; }
const WinoCores* winoGeneric() { return &generic::kWino; }
}  // namespace ux
