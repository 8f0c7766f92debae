// GEMM driver: op(B) goes into NR-column panels per KC slice of K (zero-padded, so the micro-kernel has
// no edge cases in its loop): packed once up front when its panels serve several blocks, else by the one
// block that reads them, into its own cache-resident buffer (few rows against a large weight). The output is cut into MC×NC blocks (over every
// batch entry) that the pool threads take independently; each block walks K in KC slices and runs the
// register-tiled micro-kernel of the machine's ISA, reading row-major A in place (A^T from packed MR-row
// panels); products of at most one vector of columns use the one-vector tile. Each output element is
// summed in one fixed order (k ascending in KC slices), whatever the thread count, tile or packing.
// A·Bᵀ with one side of at most 64 rows takes the dot path instead (see gemmDot).
#include "gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "gemm_isa.h"
#include "kernels.h"
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

// Packs op(B)[k0 + k][n0 + j] (k < kc, j < nn) into one NR-column panel dst[k·NR + j], zero-padding j ≥ nn.
void packB(const float* src, int64_t bsk, int64_t bsn, bool transB, int64_t kc, int64_t nn, int NR, float* dst) {
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

// ---- dot path: A·Bᵀ with few rows on one side ----
// Linear layers on a few tokens (nnFormer's 54-token bottleneck against 6144×1536 weights) multiply a large
// row-major operand by a few rows, both along K. The packed path above transposes the large operand into
// panels (scalar, strided: 1 KB pieces of 256 rows 6 KB apart per block), which a profile taken on a loaded
// machine showed at 11 GFLOP/s; here each output is a dot product of two rows read in place, vectors along
// K. On a quiet machine both paths run at 120-180 GFLOP/s for those shapes (nnFormer 96³ forward, 2
// threads); this one reads the weights once, sequentially, a few rows at a time. A task is DOT_LG large
// rows; it walks K in DOT_KC slices, and within a slice each DL large-row piece (in L1) meets every DS-row
// block of the small operand (in L2). Lane partial sums live in a per-task buffer across slices and are
// summed (pairwise over lanes, then the K tail, then the bias) at the end: the order of every sum depends
// only on the shapes, not on the thread count.
constexpr int64_t DOT_KC = 512;        // floats per K slice: DL + DS row pieces of 2 KB fit in L1
constexpr int64_t DOT_LG = 24;         // large rows per task, a multiple of every ISA's DL (4, 3, 2)
constexpr int64_t DOT_MAX_SMALL = 64;  // the partial-sum buffer is DOT_LG × small rows × W floats

bool useDot(int64_t M, int64_t N, int64_t K) { return std::min(M, N) <= DOT_MAX_SMALL && std::max(M, N) >= 128 && K >= 64; }

// y [M×N] = A [M×K] · B [N×K]ᵀ (+ bias[n]).
void gemmDot(const GemmCores* g, const float* a, const float* b, const float* bias, float* y, int64_t M, int64_t N, int64_t K, float* geluOut) {
  const bool largeB = N >= M;
  const float* L = largeB ? b : a;
  const float* S = largeB ? a : b;
  const int64_t nl = largeB ? N : M, ns = largeB ? M : N;
  const int64_t yl = largeB ? 1 : N, ys = largeB ? N : 1;  // output (large row l, small row s) is y[l·yl + s·ys]
  const int W = g->W;
  const int64_t kv = K / W * W;  // the vector part of K; the rest is the scalar tail
  const size_t partSize = static_cast<size_t>(DOT_LG * ns * (W + 1));  // lane partials, then their sums
  Scratch<float> scratch(static_cast<size_t>(numThreads()) * partSize + 1);
  parallelFor((nl + DOT_LG - 1) / DOT_LG, 1, [&](int64_t t0, int64_t t1, int tid) {
    float* part = scratch.get() + static_cast<size_t>(tid) * partSize;
    for (int64_t t = t0; t < t1; t++) {
      const int64_t l0 = t * DOT_LG, lc = std::min(DOT_LG, nl - l0);
      for (int64_t k0 = 0; k0 < kv; k0 += DOT_KC) {
        const int64_t kc = std::min(DOT_KC, kv - k0);
        for (int64_t i = 0; i < lc; i += g->DL)
          for (int64_t j = 0; j < ns; j += g->DS)
            g->dot(kc, L + (l0 + i) * K + k0, K, static_cast<int>(std::min<int64_t>(g->DL, lc - i)), S + j * K + k0, K,
                   static_cast<int>(std::min<int64_t>(g->DS, ns - j)), part + (i * ns + j) * W, ns * W, k0 > 0);
      }
      // Lane sums, then the K tail and the bias, in that order for every output.
      float* sums = part + lc * ns * W;
      g->dotSum(part, lc * ns, sums);
      for (int64_t i = 0; i < lc; i++) {
        const float* lrow = L + (l0 + i) * K;
        for (int64_t j = 0; j < ns; j++) {
          const float* srow = S + j * K;
          float v = kv > 0 ? sums[i * ns + j] : 0.f;
          for (int64_t k = kv; k < K; k++) v += lrow[k] * srow[k];
          if (bias) v += bias[largeB ? l0 + i : j];
          y[(l0 + i) * yl + j * ys] = v;
        }
      }
      // GELU epilogue over what this task wrote: rows l0.. of y (large A), or columns l0.. of every row (large B).
      if (geluOut) {
        if (largeB)
          for (int64_t j = 0; j < ns; j++) kGeluSpan(y + j * N + l0, lc, geluOut + j * N + l0);
        else
          kGeluSpan(y + l0 * N, lc * N, geluOut + l0 * N);
      }
    }
  });
}

}  // namespace

const char* gemmIsaName() { return pickGemm()->name; }

GeluSpan gemmGeluSpan() {
  static const GeluSpan f = pickGemm() == gemmAvx512() ? geluAvx512() : nullptr;
  return f;
}

void gemmBatched(const float* a, const float* b, const float* bias, float* y, int64_t batch, int64_t M, int64_t N, int64_t K,
                 bool transA, bool transB, bool bShared, float* geluOut) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  if (K <= 0) {
    for (int64_t r = 0; r < batch * M; r++)
      for (int64_t n = 0; n < N; n++) y[r * N + n] = bias ? bias[n] : 0.f;
    if (geluOut) kGeluSpan(y, batch * M * N, geluOut);
    return;
  }
  const GemmCores* g = pickGemm();
  // A·Bᵀ with few rows on one side (a shared B stacks the batch's rows of A into one product): the dot path.
  if (!transA && transB && (batch == 1 || bShared) && useDot(batch * M, N, K)) {
    gemmDot(g, a, b, bias, y, batch * M, N, K, geluOut);
    return;
  }
  // Few columns (attention·V, head width 16): the one-vector tile, so no lane computes padding.
  const bool narrow = N <= g->NRnarrow;
  const int MR = g->MR, NR = narrow ? g->NRnarrow : g->NR;
  const GemmMicro micro = narrow ? g->narrow : g->micro;
  // Element (i, k) of op(A) and (k, n) of op(B) as strides.
  const int64_t asi = transA ? 1 : K, ask = transA ? M : 1;
  const int64_t bsk = transB ? 1 : N, bsn = transB ? K : 1;
  // Smaller blocks when there are too few to keep every thread busy (UNETR's 216 tokens, one batch):
  // halving keeps MC a multiple of every MR and NC of every NR.
  // With enough row blocks to keep every thread busy, a block spans all N columns: its A rows come from
  // memory once for every column panel instead of once per NC columns (three times for nnFormer's
  // 27,648-token fc1, whose 96 × 768 output rows stay in L2).
  int64_t mc = MC, nc = batch * ((M + MC - 1) / MC) >= 4 * numThreads() ? std::max(NC, (N + NR - 1) / NR * NR) : NC;
  auto count = [&] { return batch * ((M + mc - 1) / mc) * ((N + nc - 1) / nc); };
  while (count() < 2 * numThreads() && (nc > 32 || mc > 24)) {
    if (nc > 32 && (N + nc - 1) / nc <= (M + mc - 1) / mc) nc /= 2;
    else if (mc > 24) mc /= 2;
    else nc /= 2;
  }
  const int64_t mb = (M + mc - 1) / mc, nb = (N + nc - 1) / nc;
  const int64_t tasks = batch * mb * nb;
  // op(B) is packed once, in parallel, before the blocks run, when its panels serve several blocks (several
  // row blocks, or one shared B for every batch entry). When each panel serves exactly one block (few rows
  // against a large weight: nnFormer's 54-token bottleneck MLPs), that block packs it into its own
  // cache-resident buffer instead: the same work, without a weight-sized buffer written once and read back.
  // Layout per batch entry: K slices of KC, each holding all NR-column panels [kc][NR].
  const int64_t Bb = bShared ? 1 : batch;
  const bool prepack = mb > 1 || (bShared && batch > 1);
  const int64_t npan = (N + NR - 1) / NR, nks = (K + KC - 1) / KC;
  Scratch<float> bpack(prepack ? static_cast<size_t>(Bb * K * npan * NR) : 0);
  auto panelAt = [&](int64_t bb, int64_t ks, int64_t jp) {
    const int64_t kc = std::min(KC, K - ks * KC);
    return bpack.get() + bb * K * npan * NR + ks * KC * npan * NR + jp * kc * NR;
  };
  if (prepack)
    parallelFor(Bb * nks * npan, std::max<int64_t>(1, 64 / nks), [&](int64_t p0, int64_t p1, int) {
      for (int64_t p = p0; p < p1; p++) {
        const int64_t bb = p / (nks * npan), ks = (p / npan) % nks, jp = p % npan;
        const int64_t k0 = ks * KC;
        packB(b + bb * K * N + k0 * bsk + jp * NR * bsn, bsk, bsn, transB, std::min(KC, K - k0), std::min<int64_t>(NR, N - jp * NR), NR,
              panelAt(bb, ks, jp));
      }
    });
  // Per-thread buffers, allocated once per call (not per chunk of tasks).
  const int nt = numThreads();
  // Row-major A is read in place by the micro-kernel (MR streams of kc floats, L1-resident across a
  // block's column panels): packing it was a scalar transpose of every A value, which cost 10-30 % of
  // the transformer linears (nnFormer 96³, one thread: fc2 27648×192×768 56 → 40 ms; measured as thread
  // CPU time). A^T still uses packed MR-row panels.
  const bool directA = !transA;
  const size_t apSize = directA ? 0 : static_cast<size_t>(MC * KC), bpSize = prepack ? 0 : static_cast<size_t>(KC * nc);
  Scratch<float> scratch(static_cast<size_t>(nt) * (apSize + bpSize) + 1);
  parallelFor(tasks, 1, [&](int64_t t0, int64_t t1, int tid) {
    float* ap = scratch.get() + static_cast<size_t>(tid) * (apSize + bpSize);
    float* bp = ap + apSize;
    for (int64_t t = t0; t < t1; t++) {
      const int64_t bi = t / (mb * nb), mi = (t / nb) % mb, ni = t % nb;
      const int64_t m0 = mi * mc, mcur = std::min(mc, M - m0);
      const int64_t n0 = ni * nc, ncur = std::min(nc, N - n0);
      const float* A = a + bi * M * K;
      const float* Bsrc = b + (bShared ? 0 : bi) * K * N;
      float* Y = y + (bi * M + m0) * N + n0;
      const int64_t bpan = (ncur + NR - 1) / NR, mpan = (mcur + MR - 1) / MR;
      for (int64_t ks = 0; ks < nks; ks++) {
        const int64_t k0 = ks * KC, kc = std::min(KC, K - k0);
        if (!directA) {
          // op(A)[m0 + ip·MR + i][k0 + k] -> ap[(ip·kc + k)·MR + i]
          for (int64_t ip = 0; ip < mpan; ip++) {
            float* dst = ap + ip * kc * MR;
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
        }
        if (!prepack)
          for (int64_t jp = 0; jp < bpan; jp++)
            packB(Bsrc + k0 * bsk + (n0 + jp * NR) * bsn, bsk, bsn, transB, kc, std::min<int64_t>(NR, ncur - jp * NR), NR,
                  bp + jp * kc * NR);
        for (int64_t jp = 0; jp < bpan; jp++) {
          const int nr = static_cast<int>(std::min<int64_t>(NR, ncur - jp * NR));
          const float* bj = prepack ? panelAt(bShared ? 0 : bi, ks, n0 / NR + jp) : bp + jp * kc * NR;
          const float* biasj = bias && k0 == 0 ? bias + n0 + jp * NR : nullptr;
          for (int64_t ip = 0; ip < mpan; ip++) {
            const int mr = static_cast<int>(std::min<int64_t>(MR, mcur - ip * MR));
            const float* ai = directA ? A + (m0 + ip * MR) * K + k0 : ap + ip * kc * MR;
            micro(static_cast<int>(kc), ai, directA ? K : 0, bj, Y + ip * MR * N + jp * NR, N, mr, nr, k0 > 0, biasj);
          }
        }
      }
      // The block is final: GELU epilogue while its mcur × ncur values are still in cache.
      if (geluOut) {
        float* G = geluOut + (bi * M + m0) * N + n0;
        for (int64_t i = 0; i < mcur; i++) kGeluSpan(Y + i * N, ncur, G + i * N);
      }
    }
  });
}

}  // namespace ux
