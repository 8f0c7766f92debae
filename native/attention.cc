// Fused attention: threads over (batch entry, head); a task packs that head's K (transposed, zero-padded)
// and V into thread scratch, which stays in L1/L2 (343 keys × 16 dims = 22 KB each for Swin's windows),
// then runs one pass per query row: scores in registers 64 keys at a time, a two-pass softmax, and the
// probability-weighted sum of V rows. No [B, H, N, M] matrix is ever written (the unfused path wrote
// several of 484 MB at SwinUNETR's first stage). The backward recomputes each probability row from q, k
// and the saved log-sum-exp (flash-attention style).
//
// Built for baseline x86-64 with AVX2 and AVX-512 clones of the hot loops (function multi-versioning,
// as kernels.cc); the loops are written with fixed-width lane arrays so that they vectorise.
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

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define UX_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define UX_MULTIVERSION
#endif

constexpr int64_t kChunk = 64;  // scores held in registers per block (4 AVX-512 vectors)
constexpr int64_t kDBlock = 64;  // head dims accumulated per block in the weighted row sums

inline int64_t roundUp(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// s[j] = Σ_d x[d]·t[d·ld + j] for j < Mp (a multiple of kChunk): each block of 64 sums stays in registers over d.
UX_MULTIVERSION void rowTimesPanel(const float* x, const float* t, int64_t D, int64_t ld, int64_t Mp, float* s) {
  for (int64_t j0 = 0; j0 < Mp; j0 += kChunk) {
    float acc[kChunk];
    for (int l = 0; l < kChunk; l++) acc[l] = 0.0f;
    for (int64_t d = 0; d < D; d++) {
      const float xd = x[d];
      const float* tr = t + d * ld + j0;
      for (int l = 0; l < kChunk; l++) acc[l] += xd * tr[l];
    }
    for (int l = 0; l < kChunk; l++) s[j0 + l] = acc[l];
  }
}

// o[d] = Σ_j p[j]·m[j·D + d] with four independent partial sums per dim (latency, not throughput, bound otherwise).
UX_MULTIVERSION void weightedRows(const float* p, const float* m, int64_t n, int64_t D, float* o) {
  for (int64_t d0 = 0; d0 < D; d0 += kDBlock) {
    const int64_t w = std::min(kDBlock, D - d0);
    float a0[kDBlock], a1[kDBlock], a2[kDBlock], a3[kDBlock];
    for (int64_t d = 0; d < w; d++) a0[d] = a1[d] = a2[d] = a3[d] = 0.0f;
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
      const float* r = m + j * D + d0;
      const float p0 = p[j], p1 = p[j + 1], p2 = p[j + 2], p3 = p[j + 3];
      for (int64_t d = 0; d < w; d++) {
        a0[d] += p0 * r[d];
        a1[d] += p1 * r[D + d];
        a2[d] += p2 * r[2 * D + d];
        a3[d] += p3 * r[3 * D + d];
      }
    }
    for (; j < n; j++)
      for (int64_t d = 0; d < w; d++) a0[d] += p[j] * m[j * D + d0 + d];
    for (int64_t d = 0; d < w; d++) o[d0 + d] = (a0[d] + a1[d]) + (a2[d] + a3[d]);
  }
}

// m[j·D + d] += c[j]·x[d] for j < n.
UX_MULTIVERSION void addOuter(const float* c, const float* x, int64_t n, int64_t D, float* m) {
  for (int64_t j = 0; j < n; j++) {
    const float cj = c[j];
    float* r = m + j * D;
    for (int64_t d = 0; d < D; d++) r[d] += cj * x[d];
  }
}

// s[j] = s[j]·sScale + bias[j] + mask[j] (either may be null).
UX_MULTIVERSION void finishScores(float* s, int64_t n, float sScale, const float* bias, const float* mask) {
  if (sScale != 1.0f)
    for (int64_t j = 0; j < n; j++) s[j] *= sScale;
  if (bias)
    for (int64_t j = 0; j < n; j++) s[j] += bias[j];
  if (mask)
    for (int64_t j = 0; j < n; j++) s[j] += mask[j];
}

UX_MULTIVERSION float rowMax(const float* s, int64_t n) {
  float m16[16];
  for (int l = 0; l < 16; l++) m16[l] = -std::numeric_limits<float>::infinity();
  int64_t j = 0;
  for (; j + 16 <= n; j += 16)
    for (int l = 0; l < 16; l++) m16[l] = s[j + l] > m16[l] ? s[j + l] : m16[l];
  float mx = -std::numeric_limits<float>::infinity();
  for (; j < n; j++) mx = s[j] > mx ? s[j] : mx;
  for (int l = 0; l < 16; l++) mx = m16[l] > mx ? m16[l] : mx;
  return mx;
}

// s[j] = e^(s[j] − shift); returns Σ_j s[j] (16 float lanes, then double).
UX_MULTIVERSION double expShiftSum(float* s, int64_t n, float shift) {
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
UX_MULTIVERSION void softmaxBack(const float* p, float* dp, int64_t n, float rowD) {
  for (int64_t j = 0; j < n; j++) dp[j] = p[j] * (dp[j] - rowD);
}

UX_MULTIVERSION void addInto(const float* x, int64_t n, float* y) {
  for (int64_t j = 0; j < n; j++) y[j] += x[j];
}

// dst[d·Mp + j] = src[j·ld + d] for j < M (the rest of each row is zero); the transposed panel rowTimesPanel reads.
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

void attentionForward(const float* q, const float* k, const float* v, const float* bias, const float* mask, const AttnGeom& g, float* out,
                      float* lse) {
  const int64_t D = g.D, M = g.M, N = g.N, H = g.H, Mp = roundUp(M, kChunk), HD = H * D;
  Workspace ws;
  parallelFor(g.B * H, 1, [&](int64_t t0, int64_t t1, int tid) {
    float* kt = ws.get(tid, static_cast<size_t>(D * Mp + M * D + Mp + 2 * D));
    float* vr = kt + D * Mp;
    float* s = vr + M * D;
    float* qs = s + Mp;
    float* o = qs + D;
    for (int64_t task = t0; task < t1; task++) {
      const int64_t b = task / H, h = task % H;
      packTransposed(k + b * M * g.Ck + g.kCol + h * D, g.Ck, M, D, Mp, kt);
      packRows(v + b * M * g.Cv + g.vCol + h * D, g.Cv, M, D, vr);
      const float* biasH = bias ? bias + h * N * M : nullptr;
      const float* maskW = mask ? mask + (b % g.nW) * N * M : nullptr;
      for (int64_t i = 0; i < N; i++) {
        const float* qi = q + (b * N + i) * g.Cq + g.qCol + h * D;
        for (int64_t d = 0; d < D; d++) qs[d] = qi[d] * g.qScale;
        rowTimesPanel(qs, kt, D, Mp, Mp, s);
        finishScores(s, M, g.sScale, biasH ? biasH + i * M : nullptr, maskW ? maskW + i * M : nullptr);
        const float mx = rowMax(s, M);
        const double sum = expShiftSum(s, M, mx);
        weightedRows(s, vr, M, D, o);
        const float inv = static_cast<float>(1.0 / sum);
        float* oi = out + (b * N + i) * HD + h * D;
        for (int64_t d = 0; d < D; d++) oi[d] = o[d] * inv;
        lse[(b * H + h) * N + i] = mx + static_cast<float>(std::log(sum));
      }
    }
  });
}

void attentionBackward(const float* dout, const float* q, const float* k, const float* v, const float* bias, const float* mask, const float* out,
                       const float* lse, const AttnGeom& g, float* gq, float* gk, float* gv, float* dbias) {
  const int64_t D = g.D, M = g.M, N = g.N, H = g.H, Mp = roundUp(M, kChunk), HD = H * D;
  zeroParallel(gq, g.B * N * g.Cq);
  if (gk != gq) zeroParallel(gk, g.B * M * g.Ck);
  if (gv != gq && gv != gk) zeroParallel(gv, g.B * M * g.Cv);
  const int nt = numThreads();
  // dbias sums over batch entries, which different threads handle: one partial [H, N, M] per thread.
  std::vector<std::vector<float>> dbPart(dbias ? static_cast<size_t>(nt) : 0);
  Workspace ws;
  parallelFor(g.B * H, 1, [&](int64_t t0, int64_t t1, int tid) {
    float* kt = ws.get(tid, static_cast<size_t>(2 * D * Mp + 4 * M * D + 2 * Mp + 4 * D));
    float* vt = kt + D * Mp;
    float* kr = vt + D * Mp;
    float* dk = kr + M * D;
    float* dv = dk + M * D;
    float* s = dv + M * D;
    float* dp = s + Mp;
    float* qs = dp + Mp;
    float* qss = qs + D;
    float* dq = qss + D;
    float* dbT = nullptr;
    if (dbias) {
      auto& part = dbPart[static_cast<size_t>(tid)];
      if (part.empty()) part.assign(static_cast<size_t>(H * N * M), 0.0f);
      dbT = part.data();
    }
    for (int64_t task = t0; task < t1; task++) {
      const int64_t b = task / H, h = task % H;
      const float* kb = k + b * M * g.Ck + g.kCol + h * D;
      const float* vb = v + b * M * g.Cv + g.vCol + h * D;
      packTransposed(kb, g.Ck, M, D, Mp, kt);
      packTransposed(vb, g.Cv, M, D, Mp, vt);
      packRows(kb, g.Ck, M, D, kr);
      std::memset(dk, 0, sizeof(float) * 2 * M * D);
      const float* biasH = bias ? bias + h * N * M : nullptr;
      const float* maskW = mask ? mask + (b % g.nW) * N * M : nullptr;
      for (int64_t i = 0; i < N; i++) {
        const float* qi = q + (b * N + i) * g.Cq + g.qCol + h * D;
        const float* doi = dout + (b * N + i) * HD + h * D;
        const float* oi = out + (b * N + i) * HD + h * D;
        double rowD = 0;
        for (int64_t d = 0; d < D; d++) {
          qs[d] = qi[d] * g.qScale;
          qss[d] = qs[d] * g.sScale;
          rowD += static_cast<double>(doi[d]) * oi[d];
        }
        rowTimesPanel(qs, kt, D, Mp, Mp, s);
        finishScores(s, M, g.sScale, biasH ? biasH + i * M : nullptr, maskW ? maskW + i * M : nullptr);
        expShiftSum(s, M, lse[(b * H + h) * N + i]);  // s = p
        rowTimesPanel(doi, vt, D, Mp, Mp, dp);
        softmaxBack(s, dp, M, static_cast<float>(rowD));  // dp = ds
        if (dbT) addInto(dp, M, dbT + (h * N + i) * M);
        weightedRows(dp, kr, M, D, dq);
        float* gqi = gq + (b * N + i) * g.Cq + g.qCol + h * D;
        const float c = g.qScale * g.sScale;
        for (int64_t d = 0; d < D; d++) gqi[d] = dq[d] * c;
        addOuter(dp, qss, M, D, dk);
        addOuter(s, doi, M, D, dv);
      }
      for (int64_t j = 0; j < M; j++) {
        std::memcpy(gk + (b * M + j) * g.Ck + g.kCol + h * D, dk + j * D, sizeof(float) * D);
        std::memcpy(gv + (b * M + j) * g.Cv + g.vCol + h * D, dv + j * D, sizeof(float) * D);
      }
    }
  });
  if (dbias) {
    const int64_t n = H * N * M;
    zeroParallel(dbias, n);
    for (auto& part : dbPart)
      if (!part.empty()) addInto(part.data(), n, dbias);
  }
}

}  // namespace ux
