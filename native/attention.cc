// Fused attention: threads over (batch entry, head); a task packs that head's K (transposed, zero-padded)
// and V into thread scratch, which stays in L1/L2 (343 keys × 16 dims = 22 KB each for Swin's windows),
// then runs one pass per query row: scores in registers 64 keys at a time, a two-pass softmax, and the
// probability-weighted sum of V rows. No [B, H, N, M] matrix is ever written (the unfused path wrote
// several of 484 MB at SwinUNETR's first stage). The backward recomputes each probability row from q, k
// and the saved log-sum-exp (flash-attention style).
//
// Query rows go in blocks of 4 so that each loaded K/V vector feeds 4 FMAs; the head width is a template
// parameter for 16, 32 and 64 (every comparator's), so the accumulators are registers.
#include "attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "runtime.h"
#include "vecmath.h"

namespace ux {
namespace {

// AVX-512 and AVX2+FMA clones of the hot loops, picked at load time; this file is built with
// -ffp-contract=fast (its own gyp target) so that the clones use fused multiply-adds.
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define UX_CLONES __attribute__((target_clones("avx512f", "arch=haswell", "default")))
#else
#define UX_CLONES
#endif

constexpr int R = 4;            // query rows per register block
constexpr int64_t kChunk = 64;  // key columns per register block (4 AVX-512 vectors)

inline int64_t roundUp(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// S[r·Mp + j] = Σ_d X[r·D + d]·T[d·Mp + j] for r < R, j < Mp: R×64 sums held in registers over d.
// DC is the head width when known at compile time (16, 32, 64), else 0 and D is read at run time.
template <int DC>
UX_CLONES void rowsTimesPanel(const float* X, const float* T, int64_t Dr, int64_t Mp, float* S) {
  const int64_t D = DC > 0 ? DC : Dr;
  for (int64_t j0 = 0; j0 < Mp; j0 += kChunk) {
    float acc[R][kChunk];
    for (int r = 0; r < R; r++)
      for (int l = 0; l < kChunk; l++) acc[r][l] = 0.0f;
    for (int64_t d = 0; d < D; d++) {
      const float* t = T + d * Mp + j0;
      for (int r = 0; r < R; r++) {
        const float x = X[r * D + d];
        for (int l = 0; l < kChunk; l++) acc[r][l] += x * t[l];
      }
    }
    for (int r = 0; r < R; r++)
      for (int l = 0; l < kChunk; l++) S[r * Mp + j0 + l] = acc[r][l];
  }
}

// 16 floats as a GCC vector (one AVX-512 register, two AVX2 ones): the row loops below are written with
// it because the auto-vectoriser turned them into shuffles across rows.
typedef float vf16 __attribute__((vector_size(64)));

inline vf16 ld16(const float* p) {
  vf16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void st16(float* p, vf16 v) { std::memcpy(p, &v, sizeof v); }

// O[r·D + d] = Σ_{j<M} P[r·Mp + j]·Y[j·D + d]: R rows of D sums in registers; two key parities for
// narrow heads so that enough independent FMA chains are in flight. DC > 0 must be a multiple of 16.
template <int DC>
UX_CLONES void rowsTimesRows(const float* P, int64_t Mp, const float* Y, int64_t M, int64_t Dr, float* O) {
  if constexpr (DC > 0) {
    constexpr int D = DC, NV = DC / 16, U = NV == 1 ? 2 : 1;
    vf16 acc[U][R][NV];
    for (int u = 0; u < U; u++)
      for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) acc[u][r][v] = vf16{};
    int64_t j = 0;
    for (; j + U <= M; j += U)
      for (int u = 0; u < U; u++) {
        vf16 y[NV];
        for (int v = 0; v < NV; v++) y[v] = ld16(Y + (j + u) * D + 16 * v);
        for (int r = 0; r < R; r++) {
          const float p = P[r * Mp + j + u];
          for (int v = 0; v < NV; v++) acc[u][r][v] += p * y[v];
        }
      }
    for (; j < M; j++)
      for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) acc[0][r][v] += P[r * Mp + j] * ld16(Y + j * D + 16 * v);
    for (int r = 0; r < R; r++)
      for (int v = 0; v < NV; v++) {
        vf16 t = acc[0][r][v];
        for (int u = 1; u < U; u++) t += acc[u][r][v];
        st16(O + r * D + 16 * v, t);
      }
  } else {
    const int64_t D = Dr;
    for (int r = 0; r < R; r++) {
      float* o = O + r * D;
      for (int64_t d = 0; d < D; d++) o[d] = 0.0f;
      for (int64_t j = 0; j < M; j++) {
        const float p = P[r * Mp + j];
        for (int64_t d = 0; d < D; d++) o[d] += p * Y[j * D + d];
      }
    }
  }
}

// G[j·D + d] += Σ_r C[r·Mp + j]·X[r·D + d] for j < M (the dK and dV updates of one row block).
template <int DC>
UX_CLONES void addRowsOuter(const float* C, int64_t Mp, const float* X, int64_t M, int64_t Dr, float* G) {
  if constexpr (DC > 0) {
    constexpr int D = DC, NV = DC / 16;
    vf16 x[R][NV];
    for (int r = 0; r < R; r++)
      for (int v = 0; v < NV; v++) x[r][v] = ld16(X + r * D + 16 * v);
    for (int64_t j = 0; j < M; j++) {
      float* g = G + j * D;
      const float c0 = C[j], c1 = C[Mp + j], c2 = C[2 * Mp + j], c3 = C[3 * Mp + j];
      for (int v = 0; v < NV; v++) st16(g + 16 * v, ld16(g + 16 * v) + c0 * x[0][v] + c1 * x[1][v] + c2 * x[2][v] + c3 * x[3][v]);
    }
  } else {
    const int64_t D = Dr;
    for (int64_t j = 0; j < M; j++) {
      float* g = G + j * D;
      const float c0 = C[j], c1 = C[Mp + j], c2 = C[2 * Mp + j], c3 = C[3 * Mp + j];
      for (int64_t d = 0; d < D; d++) g[d] += c0 * X[d] + c1 * X[D + d] + c2 * X[2 * D + d] + c3 * X[3 * D + d];
    }
  }
}

// s[j] = s[j]·sScale + bias[j] + mask[j] (either may be null) and the row maximum, in one pass (the forward's; 16 lanes so that it vectorises).
UX_CLONES float finishScoresMax(float* s, int64_t n, float sScale, const float* bias, const float* mask) {
  float m16[16];
  for (int l = 0; l < 16; l++) m16[l] = -std::numeric_limits<float>::infinity();
  int64_t j = 0;
  for (; j + 16 <= n; j += 16)
    for (int l = 0; l < 16; l++) {
      float v = s[j + l] * sScale;
      if (bias) v += bias[j + l];
      if (mask) v += mask[j + l];
      s[j + l] = v;
      m16[l] = v > m16[l] ? v : m16[l];
    }
  float mx = -std::numeric_limits<float>::infinity();
  for (; j < n; j++) {
    float v = s[j] * sScale;
    if (bias) v += bias[j];
    if (mask) v += mask[j];
    s[j] = v;
    mx = v > mx ? v : mx;
  }
  for (int l = 0; l < 16; l++) mx = m16[l] > mx ? m16[l] : mx;
  return mx;
}

// The backward's probabilities in one pass: s[j] = e^(s[j]·sScale + bias[j] + mask[j] − lse).
UX_CLONES void finishScoresExp(float* s, int64_t n, float sScale, const float* bias, const float* mask, float lse) {
  for (int64_t j = 0; j < n; j++) {
    float v = s[j] * sScale;
    if (bias) v += bias[j];
    if (mask) v += mask[j];
    s[j] = expVec(v - lse);
  }
}

// s[j] = e^(s[j] − shift); returns Σ_j s[j] (16 float lanes, then double).
UX_CLONES double expShiftSum(float* s, int64_t n, float shift) {
  float a[16];
  for (int l = 0; l < 16; l++) a[l] = 0.0f;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16)
    for (int l = 0; l < 16; l++) {
      const float e = expVec(s[j + l] - shift);
      s[j + l] = e;
      a[l] += e;
    }
  double sum = 0;
  for (; j < n; j++) {
    s[j] = expVec(s[j] - shift);
    sum += s[j];
  }
  for (int l = 0; l < 16; l++) sum += a[l];
  return sum;
}

// ds[j] = p[j]·(dp[j] − rowD), in place in dp.
UX_CLONES void softmaxBack(const float* p, float* dp, int64_t n, float rowD) {
  for (int64_t j = 0; j < n; j++) dp[j] = p[j] * (dp[j] - rowD);
}

UX_CLONES void addInto(const float* x, int64_t n, float* y) {
  for (int64_t j = 0; j < n; j++) y[j] += x[j];
}

// dst[d·Mp + j] = src[j·ld + d] for j < M (the rest of each row is zero); the transposed panel rowsTimesPanel reads.
void packTransposed(const float* src, int64_t ld, int64_t M, int64_t D, int64_t Mp, float* dst) {
  std::memset(dst, 0, sizeof(float) * D * Mp);
  for (int64_t j = 0; j < M; j++)
    for (int64_t d = 0; d < D; d++) dst[d * Mp + j] = src[j * ld + d];
}

void packRows(const float* src, int64_t ld, int64_t M, int64_t D, float* dst) {
  for (int64_t j = 0; j < M; j++) std::memcpy(dst + j * D, src + j * ld, sizeof(float) * D);
}

// Per-thread scratch reused across tasks (a pool thread runs one task at a time).
struct Workspace {
  std::vector<std::vector<float>> perThread;
  Workspace() : perThread(static_cast<size_t>(numThreads())) {}
  float* get(int tid, size_t n) {
    auto& v = perThread[static_cast<size_t>(tid)];
    if (v.size() < n) v.resize(n);
    return v.data();
  }
};

void zeroParallel(float* p, int64_t n) {
  constexpr int64_t grain = 1 << 16;
  parallelFor((n + grain - 1) / grain, 1, [&](int64_t b, int64_t e, int) {
    const int64_t lo = b * grain, hi = std::min(n, e * grain);
    std::memset(p + lo, 0, sizeof(float) * (hi - lo));
  });
}

}  // namespace

namespace {

// Copies R rows of a token-major head block (row i0 + r, clamped to the last row) scaled by f.
void loadRows(const float* base, int64_t ld, int64_t i0, int64_t N, int64_t D, float f, float* dst) {
  for (int r = 0; r < R; r++) {
    const float* src = base + std::min(i0 + r, N - 1) * ld;
    for (int64_t d = 0; d < D; d++) dst[r * D + d] = src[d] * f;
  }
}

// Prefetches (into L2) part `p` of `parts` of the n floats at x: spread over a window's heads so that the
// next window's rows stream in while this one computes.
inline void prefetchPart(const float* x, int64_t n, int64_t p, int64_t parts) {
  const char* c = reinterpret_cast<const char*>(x);
  const int64_t bytes = n * static_cast<int64_t>(sizeof(float));
  for (int64_t o = (bytes * p / parts) & ~int64_t{63}, hi = bytes * (p + 1) / parts; o < hi; o += 64) __builtin_prefetch(c + o, 0, 2);
}

template <int DC>
void forwardTasks(const float* q, const float* k, const float* v, const float* bias, const float* mask, const AttnGeom& g, float* out,
                  float* lse) {
  const int64_t D = g.D, M = g.M, N = g.N, H = g.H, Mp = roundUp(M, kChunk), HD = H * D;
  Workspace ws;
  // With enough batch entries (windows) for every thread, a task is one window and all its heads, and
  // threads take runs of consecutive windows: each head's slice of a token row is only D floats of a
  // long row (6 of 36 cache lines per 64-token window at nnFormer's first stage), so head-by-head tasks
  // waited on memory for every strided row; here the next window's q, k and v rows are prefetched while
  // this one computes (one-thread CPU time at 432 windows × 6 heads, 64 tokens, d32, masked: 30-32 → 27.5 ms).
  const bool byWindow = g.B >= 8 * numThreads();
  const int64_t tasks = byWindow ? g.B : g.B * H, perTask = byWindow ? H : 1;
  parallelFor(tasks, byWindow ? 8 : 1, [&](int64_t t0, int64_t t1, int tid) {
    float* kt = ws.get(tid, static_cast<size_t>(D * Mp + M * D + R * Mp + 2 * R * D));
    float* vr = kt + D * Mp;
    float* S = vr + M * D;
    float* Q = S + R * Mp;
    float* O = Q + R * D;
    for (int64_t task = t0; task < t1; task++)
      for (int64_t hh = 0; hh < perTask; hh++) {
      const int64_t b = byWindow ? task : task / H, h = byWindow ? hh : task % H;
      if (byWindow && task + 1 < t1) {
        prefetchPart(q + (b + 1) * N * g.Cq, N * g.Cq, hh, H);
        if (k != q) prefetchPart(k + (b + 1) * M * g.Ck, M * g.Ck, hh, H);
        if (v != q && v != k) prefetchPart(v + (b + 1) * M * g.Cv, M * g.Cv, hh, H);
      }
      packTransposed(k + b * M * g.Ck + g.kCol + h * D, g.Ck, M, D, Mp, kt);
      packRows(v + b * M * g.Cv + g.vCol + h * D, g.Cv, M, D, vr);
      const float* biasH = bias ? bias + h * N * M : nullptr;
      const float* maskW = mask ? mask + (b % g.nW) * N * M : nullptr;
      for (int64_t i0 = 0; i0 < N; i0 += R) {
        loadRows(q + b * N * g.Cq + g.qCol + h * D, g.Cq, i0, N, D, g.qScale, Q);
        rowsTimesPanel<DC>(Q, kt, D, Mp, S);
        float inv[R];
        for (int r = 0; r < R; r++) {
          const int64_t i = std::min(i0 + r, N - 1);
          float* s = S + r * Mp;
          const float mx = finishScoresMax(s, M, g.sScale, biasH ? biasH + i * M : nullptr, maskW ? maskW + i * M : nullptr);
          const double sum = expShiftSum(s, M, mx);
          inv[r] = static_cast<float>(1.0 / sum);
          if (i0 + r < N) lse[(b * H + h) * N + i] = mx + static_cast<float>(std::log(sum));
        }
        rowsTimesRows<DC>(S, Mp, vr, M, D, O);
        for (int r = 0; r < R && i0 + r < N; r++) {
          float* oi = out + (b * N + i0 + r) * HD + h * D;
          for (int64_t d = 0; d < D; d++) oi[d] = O[r * D + d] * inv[r];
        }
      }
    }
  });
}

template <int DC>
void backwardTasks(const float* dout, const float* q, const float* k, const float* v, const float* bias, const float* mask, const float* out,
                   const float* lse, const AttnGeom& g, float* gq, float* gk, float* gv, std::vector<std::vector<float>>* dbPart, int64_t groupSize) {
  const int64_t D = g.D, M = g.M, N = g.N, H = g.H, Mp = roundUp(M, kChunk), HD = H * D;
  const int64_t groups = (g.B + groupSize - 1) / groupSize;
  Workspace ws;
  // A task is (group of consecutive batch entries, head): it alone writes its head's rows of its group's
  // dbias partial, walking the group's entries in ascending order.
  parallelFor(groups * H, 1, [&](int64_t t0, int64_t t1, int tid) {
    float* kt = ws.get(tid, static_cast<size_t>(2 * D * Mp + 4 * M * D + 2 * R * Mp + 4 * R * D));
    float* vt = kt + D * Mp;
    float* kr = vt + D * Mp;
    float* dk = kr + M * D;
    float* dv = dk + M * D;
    float* P = dv + M * D;
    float* DS = P + R * Mp;
    float* Q = DS + R * Mp;
    float* Qss = Q + R * D;
    float* DO = Qss + R * D;
    float* DQ = DO + R * D;
    for (int64_t task = t0; task < t1; task++)
      for (int64_t b = (task / H) * groupSize, bEnd = std::min(g.B, b + groupSize), h = task % H; b < bEnd; b++) {
      float* dbT = dbPart ? (*dbPart)[static_cast<size_t>(task / H)].data() : nullptr;
      const float* kb = k + b * M * g.Ck + g.kCol + h * D;
      const float* vb = v + b * M * g.Cv + g.vCol + h * D;
      packTransposed(kb, g.Ck, M, D, Mp, kt);
      packTransposed(vb, g.Cv, M, D, Mp, vt);
      packRows(kb, g.Ck, M, D, kr);
      std::memset(dk, 0, sizeof(float) * 2 * M * D);
      const float* biasH = bias ? bias + h * N * M : nullptr;
      const float* maskW = mask ? mask + (b % g.nW) * N * M : nullptr;
      for (int64_t i0 = 0; i0 < N; i0 += R) {
        loadRows(q + b * N * g.Cq + g.qCol + h * D, g.Cq, i0, N, D, g.qScale, Q);
        loadRows(dout + b * N * HD + h * D, HD, i0, N, D, 1.0f, DO);
        for (int64_t e = 0; e < R * D; e++) Qss[e] = Q[e] * g.sScale;
        rowsTimesPanel<DC>(Q, kt, D, Mp, P);
        rowsTimesPanel<DC>(DO, vt, D, Mp, DS);
        for (int r = 0; r < R; r++) {
          float* p = P + r * Mp;
          float* ds = DS + r * Mp;
          if (i0 + r >= N) {  // padding row of the last block: contributes nothing
            std::memset(p, 0, sizeof(float) * M);
            std::memset(ds, 0, sizeof(float) * M);
            continue;
          }
          const int64_t i = i0 + r;
          finishScoresExp(p, M, g.sScale, biasH ? biasH + i * M : nullptr, maskW ? maskW + i * M : nullptr, lse[(b * H + h) * N + i]);
          const float* oi = out + (b * N + i) * HD + h * D;
          double rowD = 0;
          for (int64_t d = 0; d < D; d++) rowD += static_cast<double>(DO[r * D + d]) * oi[d];
          softmaxBack(p, ds, M, static_cast<float>(rowD));
          if (dbT) addInto(ds, M, dbT + (h * N + i) * M);
        }
        rowsTimesRows<DC>(DS, Mp, kr, M, D, DQ);
        const float c = g.qScale * g.sScale;
        for (int r = 0; r < R && i0 + r < N; r++) {
          float* gqi = gq + (b * N + i0 + r) * g.Cq + g.qCol + h * D;
          for (int64_t d = 0; d < D; d++) gqi[d] = DQ[r * D + d] * c;
        }
        addRowsOuter<DC>(DS, Mp, Qss, M, D, dk);
        addRowsOuter<DC>(P, Mp, DO, M, D, dv);
      }
      for (int64_t j = 0; j < M; j++) {
        std::memcpy(gk + (b * M + j) * g.Ck + g.kCol + h * D, dk + j * D, sizeof(float) * D);
        std::memcpy(gv + (b * M + j) * g.Cv + g.vCol + h * D, dv + j * D, sizeof(float) * D);
      }
    }
  });
}

}  // namespace

void attentionForward(const float* q, const float* k, const float* v, const float* bias, const float* mask, const AttnGeom& g, float* out,
                      float* lse) {
  switch (g.D) {
    case 16: return forwardTasks<16>(q, k, v, bias, mask, g, out, lse);
    case 32: return forwardTasks<32>(q, k, v, bias, mask, g, out, lse);
    case 64: return forwardTasks<64>(q, k, v, bias, mask, g, out, lse);
    default: return forwardTasks<0>(q, k, v, bias, mask, g, out, lse);
  }
}

void attentionBackward(const float* dout, const float* q, const float* k, const float* v, const float* bias, const float* mask, const float* out,
                       const float* lse, const AttnGeom& g, float* gq, float* gk, float* gv, float* dbias) {
  zeroParallel(gq, g.B * g.N * g.Cq);
  if (gk != gq) zeroParallel(gk, g.B * g.M * g.Ck);
  if (gv != gq && gv != gk) zeroParallel(gv, g.B * g.M * g.Cv);
  // dbias sums over batch entries (windows). For a result independent of the thread count and of the
  // order threads take tasks in, the entries are cut into at most kDbiasGroups fixed groups, each summed
  // in ascending order into its own partial [H, N, M], and the partials are added in group order.
  constexpr int64_t kDbiasGroups = 16;
  const int64_t groupSize = dbias ? (g.B + kDbiasGroups - 1) / kDbiasGroups : 1;
  const int64_t groups = (g.B + groupSize - 1) / groupSize;
  std::vector<std::vector<float>> dbPart(dbias ? static_cast<size_t>(groups) : 0);
  for (auto& part : dbPart) part.assign(static_cast<size_t>(g.H * g.N * g.M), 0.0f);
  auto* parts = dbias ? &dbPart : nullptr;
  switch (g.D) {
    case 16: backwardTasks<16>(dout, q, k, v, bias, mask, out, lse, g, gq, gk, gv, parts, groupSize); break;
    case 32: backwardTasks<32>(dout, q, k, v, bias, mask, out, lse, g, gq, gk, gv, parts, groupSize); break;
    case 64: backwardTasks<64>(dout, q, k, v, bias, mask, out, lse, g, gq, gk, gv, parts, groupSize); break;
    default: backwardTasks<0>(dout, q, k, v, bias, mask, out, lse, g, gq, gk, gv, parts, groupSize); break;
  }
  if (dbias) {
    const int64_t n = g.H * g.N * g.M;
    zeroParallel(dbias, n);
    for (auto& part : dbPart)
      if (!part.empty()) addInto(part.data(), n, dbias);
  }
}

}  // namespace ux
