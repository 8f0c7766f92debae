// GEMM driver: the output is cut into MC×NC blocks (over every batch entry) that the pool threads take
// independently; each block walks K in KC slices, packs its slice of op(A) into MR-row panels and of op(B)
// into NR-column panels (zero-padded, so the micro-kernel has no edge cases in its loop) and runs the
// register-tiled micro-kernel of the machine's ISA. Transposed operands are handled by the packing, so
// every variant runs the same kernel. Each output element is summed in one fixed order (k ascending in
// KC slices), whatever the thread count.
#include "gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "gemm_isa.h"
#include "runtime.h"

namespace ux {
namespace {

const GemmCores* pickGemm() {
  static const GemmCores* g = [] {
    const char* env = std::getenv("UXNET_ISA");
    std::string force = env ? env : "";
    bool has512 = false, has2 = false;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    has512 = __builtin_cpu_supports("avx512f");
    has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    if (force != "avx2" && force != "generic" && has512 && gemmAvx512()) return gemmAvx512();
    if (force != "generic" && has2 && gemmAvx2()) return gemmAvx2();
    return gemmGeneric();
  }();
  return g;
}

constexpr int64_t KC = 256;
// MC and NC are multiples of every ISA's MR (12, 6, 4) and NR (32, 16).
constexpr int64_t MC = 96;
constexpr int64_t NC = 256;

}  // namespace

const char* gemmIsaName() { return pickGemm()->name; }

void gemmBatched(const float* a, const float* b, const float* bias, float* y, int64_t batch, int64_t M, int64_t N, int64_t K,
                 bool transA, bool transB, bool bShared) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  if (K <= 0) {
    for (int64_t r = 0; r < batch * M; r++)
      for (int64_t n = 0; n < N; n++) y[r * N + n] = bias ? bias[n] : 0.f;
    return;
  }
  const GemmCores* g = pickGemm();
  const int MR = g->MR, NR = g->NR;
  // Element (i, k) of op(A) and (k, n) of op(B) as strides.
  const int64_t asi = transA ? 1 : K, ask = transA ? M : 1;
  const int64_t bsk = transB ? 1 : N, bsn = transB ? K : 1;
  // Smaller blocks when there are too few to keep every thread busy (UNETR's 216 tokens, one batch):
  // halving keeps MC a multiple of every MR and NC of every NR.
  int64_t mc = MC, nc = NC;
  auto count = [&] { return batch * ((M + mc - 1) / mc) * ((N + nc - 1) / nc); };
  while (count() < 2 * numThreads() && (nc > 32 || mc > 24)) {
    if (nc > 32 && (N + nc - 1) / nc <= (M + mc - 1) / mc) nc /= 2;
    else if (mc > 24) mc /= 2;
    else nc /= 2;
  }
  const int64_t mb = (M + mc - 1) / mc, nb = (N + nc - 1) / nc;
  const int64_t tasks = batch * mb * nb;
  parallelFor(tasks, 1, [&](int64_t t0, int64_t t1, int) {
    Scratch<float> ap(static_cast<size_t>(MC * KC)), bp(static_cast<size_t>(NC * KC));
    for (int64_t t = t0; t < t1; t++) {
      const int64_t bi = t / (mb * nb), mi = (t / nb) % mb, ni = t % nb;
      const int64_t m0 = mi * mc, mcur = std::min(mc, M - m0);
      const int64_t n0 = ni * nc, ncur = std::min(nc, N - n0);
      const float* A = a + bi * M * K;
      const float* B = b + (bShared ? 0 : bi * K * N);
      float* Y = y + (bi * M + m0) * N + n0;
      const int64_t npan = (ncur + NR - 1) / NR, mpan = (mcur + MR - 1) / MR;
      for (int64_t k0 = 0; k0 < K; k0 += KC) {
        const int64_t kc = std::min(KC, K - k0);
        // op(B)[k0 + k][n0 + jp·NR + j] -> bp[(jp·kc + k)·NR + j]
        for (int64_t jp = 0; jp < npan; jp++) {
          float* dst = bp.get() + jp * kc * NR;
          const int64_t nn = std::min<int64_t>(NR, ncur - jp * NR);
          const float* src = B + k0 * bsk + (n0 + jp * NR) * bsn;
          if (!transB) {
            for (int64_t k = 0; k < kc; k++) {
              std::memcpy(dst + k * NR, src + k * bsk, nn * sizeof(float));
              for (int64_t j = nn; j < NR; j++) dst[k * NR + j] = 0.f;
            }
          } else {
            for (int64_t j = 0; j < nn; j++)
              for (int64_t k = 0; k < kc; k++) dst[k * NR + j] = src[j * bsn + k];
            for (int64_t j = nn; j < NR; j++)
              for (int64_t k = 0; k < kc; k++) dst[k * NR + j] = 0.f;
          }
        }
        // op(A)[m0 + ip·MR + i][k0 + k] -> ap[(ip·kc + k)·MR + i]
        for (int64_t ip = 0; ip < mpan; ip++) {
          float* dst = ap.get() + ip * kc * MR;
          const int64_t mm = std::min<int64_t>(MR, mcur - ip * MR);
          const float* src = A + (m0 + ip * MR) * asi + k0 * ask;
          if (!transA) {
            for (int64_t i = 0; i < mm; i++)
              for (int64_t k = 0; k < kc; k++) dst[k * MR + i] = src[i * asi + k];
          } else {
            for (int64_t k = 0; k < kc; k++) std::memcpy(dst + k * MR, src + k * ask, mm * sizeof(float));
          }
          for (int64_t i = mm; i < MR; i++)
            for (int64_t k = 0; k < kc; k++) dst[k * MR + i] = 0.f;
        }
        for (int64_t jp = 0; jp < npan; jp++) {
          const int nr = static_cast<int>(std::min<int64_t>(NR, ncur - jp * NR));
          const float* bj = bp.get() + jp * kc * NR;
          const float* biasj = bias && k0 == 0 ? bias + n0 + jp * NR : nullptr;
          for (int64_t ip = 0; ip < mpan; ip++) {
            const int mr = static_cast<int>(std::min<int64_t>(MR, mcur - ip * MR));
            g->micro(static_cast<int>(kc), ap.get() + ip * kc * MR, bj, Y + ip * MR * N + jp * NR, N, mr, nr, k0 > 0, biasj);
          }
        }
      }
    }
  });
}

}  // namespace ux
