#include "kernels.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "gemm.h"
#include "runtime.h"
#include "vecmath.h"

namespace ux {

namespace {
constexpr int64_t kGrain = 1 << 15;

template <typename F>
void elementwise(int64_t n, F f) {
  parallelFor((n + kGrain - 1) / kGrain, 1, [&](int64_t b, int64_t e, int) {
    int64_t lo = b * kGrain, hi = std::min(n, e * kGrain);
    f(lo, hi);
  });
}

inline double normalCdf(double x) { return 0.5 * std::erfc(-x * 0.70710678118654752440); }

// This file is built for baseline x86-64 (SSE2): the hot loops below are also compiled for AVX2 and
// AVX-512 and picked at load time (GCC/clang function multi-versioning on Linux). The arithmetic and its
// order are the same in every version, so the results are bit-identical; only the vector width changes.
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define UX_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define UX_MULTIVERSION
#endif

}  // namespace

// Double-precision reductions written with 8 independent lanes so the compiler vectorises them
// without reassociating (strict IEEE semantics are kept). Shared with norm_act.cc (kernels.h), whose
// fused GroupNorm must match kInstanceNorm's statistics bit for bit.
UX_MULTIVERSION double sumF(const float* p, int64_t n) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) a[l] += p[i + l];
  double s = 0;
  for (; i < n; i++) s += p[i];
  for (int l = 0; l < 8; l++) s += a[l];
  return s;
}
UX_MULTIVERSION double sumSqDev(const float* p, int64_t n, double m) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) {
      double d = p[i + l] - m;
      a[l] += d * d;
    }
  double s = 0;
  for (; i < n; i++) {
    double d = p[i] - m;
    s += d * d;
  }
  for (int l = 0; l < 8; l++) s += a[l];
  return s;
}

namespace {
UX_MULTIVERSION double dotF(const float* x, const float* y, int64_t n) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) a[l] += static_cast<double>(x[i + l]) * y[i + l];
  double s = 0;
  for (; i < n; i++) s += static_cast<double>(x[i]) * y[i];
  for (int l = 0; l < 8; l++) s += a[l];
  return s;
}

// q[i] = (p[i] − mean)·r in double, rounded once.
UX_MULTIVERSION void normalizeRow(const float* p, int64_t n, double mean, double r, float* q) {
  for (int64_t i = 0; i < n; i++) q[i] = static_cast<float>((p[i] - mean) * r);
}

// q[i] = (p[i] − mean)·r·w[i] + b[i] in double, rounded once (channels-last layer norm).
UX_MULTIVERSION void affineNormRow(const float* __restrict p, int64_t n, double mean, double r, const float* __restrict w, const float* __restrict b,
                                   float* __restrict q) {
  for (int64_t i = 0; i < n; i++) q[i] = static_cast<float>((p[i] - mean) * r * w[i] + b[i]);
}

// o[i] = r·(g[i] − mdy − yy[i]·mdyy) in double, rounded once.
UX_MULTIVERSION void normGradRow(const float* g, const float* yy, int64_t n, double mdy, double mdyy, double r, float* o) {
  for (int64_t i = 0; i < n; i++) o[i] = static_cast<float>(r * (g[i] - mdy - yy[i] * mdyy));
}

// GELU without libm calls, so that the loops vectorise (libm's erfcf was ~4 % of a forward pass); expVec is
// in vecmath.h (shared with the attention kernels).

// erfc by the Chebyshev-fitted form erfc(z) = t·exp(−z² + P(t)), t = 1/(1 + z/2), z ≥ 0 (fractional
// error < 1.2e-7 in exact arithmetic; Press et al., Numerical Recipes §6.2), reflected for x < 0.
inline float erfcVec(float x) {
  const float z = std::fabs(x);
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  const float r = t * expVec(p - z * z);
  return x >= 0.0f ? r : 2.0f - r;
}

UX_MULTIVERSION void geluRow(const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; i++) {
    const float v = x[i];
    y[i] = 0.5f * v * erfcVec(-v * 0.70710678118654752440f);
  }
}

UX_MULTIVERSION void geluGradRow(const float* dy, const float* x, int64_t n, float* dx) {
  for (int64_t i = 0; i < n; i++) {
    const float v = x[i];
    const float cdf = 0.5f * erfcVec(-v * 0.70710678118654752440f);
    const float pdf = 0.3989422804014327f * expVec(-0.5f * v * v);
    dx[i] = dy[i] * (cdf + v * pdf);
  }
}

// Softmax of one contiguous row (attention scores): max and sum in 8 independent lanes so the loops
// vectorise, e^x by expVec (no libm call), the sum in double.
UX_MULTIVERSION void softmaxRow(const float* x, int64_t n, float* y) {
  float m8[8];
  for (int l = 0; l < 8; l++) m8[l] = -std::numeric_limits<float>::infinity();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) m8[l] = x[i + l] > m8[l] ? x[i + l] : m8[l];
  float mx = -std::numeric_limits<float>::infinity();
  for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  for (int l = 0; l < 8; l++) mx = m8[l] > mx ? m8[l] : mx;
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (i = 0; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) {
      const float e = expVec(x[i + l] - mx);
      y[i + l] = e;
      a[l] += e;
    }
  double s = 0;
  for (; i < n; i++) {
    y[i] = expVec(x[i] - mx);
    s += y[i];
  }
  for (int l = 0; l < 8; l++) s += a[l];
  const float inv = static_cast<float>(1.0 / s);
  for (i = 0; i < n; i++) y[i] *= inv;
}

UX_MULTIVERSION void softmaxGradRow(const float* dy, const float* y, int64_t n, float* dx) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) a[l] += static_cast<double>(dy[i + l]) * y[i + l];
  double s = 0;
  for (; i < n; i++) s += static_cast<double>(dy[i]) * y[i];
  for (int l = 0; l < 8; l++) s += a[l];
  const float d = static_cast<float>(s);
  for (i = 0; i < n; i++) dx[i] = y[i] * (dy[i] - d);
}

// Per-thread double partial sums, reduced in thread order (deterministic for a fixed thread count and grain).
struct Partials {
  int nt;
  int64_t len;
  std::vector<double> v;
  Partials(int64_t l) : nt(numThreads()), len(l), v(static_cast<size_t>(nt * l), 0.0) {}
  double* of(int tid) { return v.data() + tid * len; }
  void reduce(double* out) {
    for (int64_t i = 0; i < len; i++) {
      double s = 0;
      for (int t = 0; t < nt; t++) s += v[t * len + i];
      out[i] = s;
    }
  }
};
}  // namespace

void kSumToChannels(const float* x, int64_t N, int64_t C, int64_t S, float* y) {
  parallelFor(C, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t c = b; c < e; c++) {
      double s = 0;
      for (int64_t n = 0; n < N; n++) {
        s += sumF(x + (n * C + c) * S, S);
      }
      y[c] = static_cast<float>(s);
    }
  });
}

void kInstanceNorm(const float* x, int64_t NC, int64_t S, double eps, float* y, float* rstd) {
  parallelFor(NC, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t nc = b; nc < e; nc++) {
      const float* p = x + nc * S;
      float* q = y + nc * S;
      double mean = sumF(p, S) / S;
      double sq = sumSqDev(p, S, mean);
      double r = 1.0 / std::sqrt(sq / S + eps);
      normalizeRow(p, S, mean, r, q);
      rstd[nc] = static_cast<float>(r);
    }
  });
}

void kInstanceNormGrad(const float* dy, const float* y, const float* rstd, int64_t NC, int64_t S, float* dx) {
  parallelFor(NC, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t nc = b; nc < e; nc++) {
      const float* g = dy + nc * S;
      const float* yy = y + nc * S;
      double sdy = sumF(g, S), sdyy = dotF(g, yy, S);
      double mdy = sdy / S, mdyy = sdyy / S, r = rstd[nc];
      float* o = dx + nc * S;
      normGradRow(g, yy, S, mdy, mdyy, r, o);
    }
  });
}

namespace {
constexpr int64_t kVB = 256;  // voxels per block for channels-first layer norm
}

void kLayerNorm(const float* x, const float* w, const float* b, int64_t outer, int64_t C, int64_t S, bool channelsLast,
                double eps, float* y, float* mean, float* rstd) {
  if (channelsLast) {
    parallelFor(outer, 64, [&](int64_t lo, int64_t hi, int) {
      for (int64_t v = lo; v < hi; v++) {
        const float* p = x + v * C;
        // Two passes in double with 8 independent lanes (vectorised; the scalar chains were not).
        const double m = sumF(p, C) / C;
        const double r = 1.0 / std::sqrt(sumSqDev(p, C, m) / C + eps);
        affineNormRow(p, C, m, r, w, b, y + v * C);
        mean[v] = static_cast<float>(m);
        rstd[v] = static_cast<float>(r);
      }
    });
    return;
  }
  int64_t nb = (S + kVB - 1) / kVB;
  parallelFor(outer * nb, 1, [&](int64_t lo, int64_t hi, int) {
    double sm[kVB], sq[kVB];
    for (int64_t it = lo; it < hi; it++) {
      int64_t n = it / nb, s0 = (it % nb) * kVB, len = std::min(kVB, S - s0);
      const float* base = x + n * C * S + s0;
      for (int64_t j = 0; j < len; j++) sm[j] = 0, sq[j] = 0;
      for (int64_t c = 0; c < C; c++)
        for (int64_t j = 0; j < len; j++) sm[j] += base[c * S + j];
      for (int64_t j = 0; j < len; j++) sm[j] /= C;
      for (int64_t c = 0; c < C; c++)
        for (int64_t j = 0; j < len; j++) {
          double d = base[c * S + j] - sm[j];
          sq[j] += d * d;
        }
      for (int64_t j = 0; j < len; j++) sq[j] = 1.0 / std::sqrt(sq[j] / C + eps);
      float* out = y + n * C * S + s0;
      for (int64_t c = 0; c < C; c++) {
        double wc = w[c], bc = b[c];
        for (int64_t j = 0; j < len; j++) out[c * S + j] = static_cast<float>((base[c * S + j] - sm[j]) * sq[j] * wc + bc);
      }
      for (int64_t j = 0; j < len; j++) {
        mean[n * S + s0 + j] = static_cast<float>(sm[j]);
        rstd[n * S + s0 + j] = static_cast<float>(sq[j]);
      }
    }
  });
}

void kLayerNormGrad(const float* dy, const float* x, const float* w, const float* rstd, int64_t outer, int64_t C, int64_t S,
                    bool channelsLast, float* dx, float* dw, float* db) {
  Partials pw(C), pb(C);
  if (channelsLast) {
    parallelFor(outer, 64, [&](int64_t lo, int64_t hi, int tid) {
      std::vector<double> xh(C);
      double* aw = pw.of(tid);
      double* ab = pb.of(tid);
      for (int64_t v = lo; v < hi; v++) {
        const float* p = x + v * C;
        const float* g = dy + v * C;
        double s = 0;
        for (int64_t c = 0; c < C; c++) s += p[c];
        double m = s / C, r = rstd[v], sg = 0, sgx = 0;
        for (int64_t c = 0; c < C; c++) {
          double h = (p[c] - m) * r, d = g[c], gg = d * w[c];
          xh[c] = h;
          sg += gg;
          sgx += gg * h;
          aw[c] += d * h;
          ab[c] += d;
        }
        double mg = sg / C, mgx = sgx / C;
        float* o = dx + v * C;
        for (int64_t c = 0; c < C; c++) o[c] = static_cast<float>(r * (static_cast<double>(g[c]) * w[c] - mg - xh[c] * mgx));
      }
    });
  } else {
    int64_t nb = (S + kVB - 1) / kVB;
    parallelFor(outer * nb, 1, [&](int64_t lo, int64_t hi, int tid) {
      double m[kVB], sg[kVB], sgx[kVB];
      double* aw = pw.of(tid);
      double* ab = pb.of(tid);
      for (int64_t it = lo; it < hi; it++) {
        int64_t n = it / nb, s0 = (it % nb) * kVB, len = std::min(kVB, S - s0);
        const float* xb = x + n * C * S + s0;
        const float* gb = dy + n * C * S + s0;
        const float* rb = rstd + n * S + s0;
        for (int64_t j = 0; j < len; j++) m[j] = 0, sg[j] = 0, sgx[j] = 0;
        for (int64_t c = 0; c < C; c++)
          for (int64_t j = 0; j < len; j++) m[j] += xb[c * S + j];
        for (int64_t j = 0; j < len; j++) m[j] /= C;
        for (int64_t c = 0; c < C; c++) {
          double wc = w[c], swc = 0, sbc = 0;
          for (int64_t j = 0; j < len; j++) {
            double h = (xb[c * S + j] - m[j]) * rb[j], d = gb[c * S + j], gg = d * wc;
            sg[j] += gg;
            sgx[j] += gg * h;
            swc += d * h;
            sbc += d;
          }
          aw[c] += swc;
          ab[c] += sbc;
        }
        for (int64_t j = 0; j < len; j++) sg[j] /= C, sgx[j] /= C;
        float* ob = dx + n * C * S + s0;
        for (int64_t c = 0; c < C; c++) {
          double wc = w[c];
          for (int64_t j = 0; j < len; j++) {
            double h = (xb[c * S + j] - m[j]) * rb[j];
            ob[c * S + j] = static_cast<float>(rb[j] * (gb[c * S + j] * wc - sg[j] - h * sgx[j]));
          }
        }
      }
    });
  }
  std::vector<double> t(C);
  pw.reduce(t.data());
  for (int64_t c = 0; c < C; c++) dw[c] = static_cast<float>(t[c]);
  pb.reduce(t.data());
  for (int64_t c = 0; c < C; c++) db[c] = static_cast<float>(t[c]);
}

// GELU in float with erfcf (Φ(x) = ½·erfc(−x/√2) keeps relative precision for very negative x); a few
// ulp from the float64 reference, 3-4x faster than double erfc.
void kGelu(const float* x, int64_t n, float* y) {
  elementwise(n, [&](int64_t lo, int64_t hi) { kGeluSpan(x + lo, hi - lo, y + lo); });
}
void kGeluSpan(const float* x, int64_t n, float* y) {
  static const GeluSpan isa = gemmGeluSpan();
  if (isa) isa(x, n, y);
  else geluRow(x, n, y);
}
void kGeluGrad(const float* dy, const float* x, int64_t n, float* dx) {
  elementwise(n, [&](int64_t lo, int64_t hi) { geluGradRow(dy + lo, x + lo, hi - lo, dx + lo); });
}

void kLeakyRelu(const float* x, int64_t n, float slope, float* y) {
  elementwise(n, [&](int64_t lo, int64_t hi) {
    const float* __restrict xs = x;
    float* __restrict ys = y;
    const float sl = slope;
    for (int64_t i = lo; i < hi; i++) {
      float v = xs[i];
      ys[i] = v > 0 ? v : v * sl;
    }
  });
}

void kLeakyReluGrad(const float* dy, const float* x, int64_t n, float slope, float* dx) {
  elementwise(n, [&](int64_t lo, int64_t hi) {
    const float* __restrict xs = x;
    const float* __restrict gs = dy;
    float* __restrict ds = dx;
    const float sl = slope;
    for (int64_t i = lo; i < hi; i++) {
      float g = gs[i];
      ds[i] = xs[i] > 0 ? g : g * sl;
    }
  });
}

void kAdd(const float* a, const float* b, int64_t n, float* y) {
  elementwise(n, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) y[i] = a[i] + b[i];
  });
}

void kScale(const float* x, int64_t n, double f, float* y) {
  elementwise(n, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) y[i] = static_cast<float>(x[i] * f);
  });
}

void kMulChannel(const float* x, const float* s, int64_t N, int64_t C, int64_t S, float* y) {
  parallelFor(N * C, 1, [&](int64_t lo, int64_t hi, int) {
    for (int64_t nc = lo; nc < hi; nc++) {
      float v = s[nc % C];
      const float* p = x + nc * S;
      float* q = y + nc * S;
      for (int64_t i = 0; i < S; i++) q[i] = p[i] * v;
    }
  });
}

void kMulChannelGradScale(const float* dy, const float* x, int64_t N, int64_t C, int64_t S, float* g) {
  parallelFor(C, 1, [&](int64_t lo, int64_t hi, int) {
    for (int64_t c = lo; c < hi; c++) {
      double s = 0;
      for (int64_t n = 0; n < N; n++) {
        s += dotF(dy + (n * C + c) * S, x + (n * C + c) * S, S);
      }
      g[c] = static_cast<float>(s);
    }
  });
}

void kCopy(const float* x, int64_t n, float* y) {
  elementwise(n, [&](int64_t lo, int64_t hi) { std::memcpy(y + lo, x + lo, (hi - lo) * sizeof(float)); });
}

// Channel softmax on [N, C, S]: voxel blocks, float64 math.
void kSoftmax(const float* x, int64_t N, int64_t C, int64_t S, float* y) {
  if (S == 1) {  // rows over the last dim (softmaxLast): contiguous, vectorised
    parallelFor(N, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, C)), [&](int64_t lo, int64_t hi, int) {
      for (int64_t r = lo; r < hi; r++) softmaxRow(x + r * C, C, y + r * C);
    });
    return;
  }
  int64_t nb = (S + kVB - 1) / kVB;
  parallelFor(N * nb, 1, [&](int64_t lo, int64_t hi, int) {
    double mx[kVB], sm[kVB];
    for (int64_t it = lo; it < hi; it++) {
      int64_t n = it / nb, s0 = (it % nb) * kVB, len = std::min(kVB, S - s0);
      const float* b = x + n * C * S + s0;
      float* o = y + n * C * S + s0;
      for (int64_t j = 0; j < len; j++) mx[j] = -std::numeric_limits<double>::infinity(), sm[j] = 0;
      for (int64_t c = 0; c < C; c++)
        for (int64_t j = 0; j < len; j++) mx[j] = std::max(mx[j], static_cast<double>(b[c * S + j]));
      for (int64_t c = 0; c < C; c++)
        for (int64_t j = 0; j < len; j++) sm[j] += std::exp(b[c * S + j] - mx[j]);
      for (int64_t c = 0; c < C; c++)
        for (int64_t j = 0; j < len; j++) o[c * S + j] = static_cast<float>(std::exp(b[c * S + j] - mx[j]) / sm[j]);
    }
  });
}

void kSoftmaxGrad(const float* dy, const float* y, int64_t N, int64_t C, int64_t S, float* dx) {
  if (S == 1) {
    parallelFor(N, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, C)), [&](int64_t lo, int64_t hi, int) {
      for (int64_t r = lo; r < hi; r++) softmaxGradRow(dy + r * C, y + r * C, C, dx + r * C);
    });
    return;
  }
  int64_t nb = (S + kVB - 1) / kVB;
  parallelFor(N * nb, 1, [&](int64_t lo, int64_t hi, int) {
    double dot[kVB];
    for (int64_t it = lo; it < hi; it++) {
      int64_t n = it / nb, s0 = (it % nb) * kVB, len = std::min(kVB, S - s0);
      int64_t off = n * C * S + s0;
      for (int64_t j = 0; j < len; j++) dot[j] = 0;
      for (int64_t c = 0; c < C; c++)
        for (int64_t j = 0; j < len; j++) dot[j] += static_cast<double>(dy[off + c * S + j]) * y[off + c * S + j];
      for (int64_t c = 0; c < C; c++)
        for (int64_t j = 0; j < len; j++) dx[off + c * S + j] = static_cast<float>(y[off + c * S + j] * (dy[off + c * S + j] - dot[j]));
    }
  });
}

namespace {
inline bool classIndex(float v, int64_t C, int64_t* out) {
  if (!(v >= 0) || v >= C || v != std::floor(v)) return false;
  *out = static_cast<int64_t>(v);
  return true;
}
}  // namespace

bool kCrossEntropy(const float* logits, const float* target, int64_t N, int64_t C, int64_t S, float* out) {
  int64_t nb = (S + kVB - 1) / kVB;
  Partials part(1);
  std::atomic<bool> ok{true};
  parallelFor(N * nb, 1, [&](int64_t lo, int64_t hi, int tid) {
    double mx[kVB], se[kVB];
    double acc = 0;
    for (int64_t it = lo; it < hi; it++) {
      int64_t n = it / nb, s0 = (it % nb) * kVB, len = std::min(kVB, S - s0);
      const float* b = logits + n * C * S + s0;
      for (int64_t j = 0; j < len; j++) mx[j] = -std::numeric_limits<double>::infinity(), se[j] = 0;
      for (int64_t c = 0; c < C; c++)
        for (int64_t j = 0; j < len; j++) mx[j] = std::max(mx[j], static_cast<double>(b[c * S + j]));
      for (int64_t c = 0; c < C; c++)
        for (int64_t j = 0; j < len; j++) se[j] += std::exp(b[c * S + j] - mx[j]);
      for (int64_t j = 0; j < len; j++) {
        int64_t t;
        if (!classIndex(target[n * S + s0 + j], C, &t)) {
          ok = false;
          continue;
        }
        acc += mx[j] + std::log(se[j]) - b[t * S + j];
      }
    }
    part.of(tid)[0] += acc;
  });
  double total;
  part.reduce(&total);
  out[0] = static_cast<float>(total / (N * S));
  return ok;
}

bool kCrossEntropyGrad(const float* dloss, const float* logits, const float* target, int64_t N, int64_t C, int64_t S, float* dx) {
  int64_t nb = (S + kVB - 1) / kVB;
  double k = static_cast<double>(dloss[0]) / (N * S);
  std::atomic<bool> ok{true};
  parallelFor(N * nb, 1, [&](int64_t lo, int64_t hi, int) {
    double mx[kVB], se[kVB];
    for (int64_t it = lo; it < hi; it++) {
      int64_t n = it / nb, s0 = (it % nb) * kVB, len = std::min(kVB, S - s0);
      int64_t off = n * C * S + s0;
      const float* b = logits + off;
      for (int64_t j = 0; j < len; j++) mx[j] = -std::numeric_limits<double>::infinity(), se[j] = 0;
      for (int64_t c = 0; c < C; c++)
        for (int64_t j = 0; j < len; j++) mx[j] = std::max(mx[j], static_cast<double>(b[c * S + j]));
      for (int64_t c = 0; c < C; c++)
        for (int64_t j = 0; j < len; j++) se[j] += std::exp(b[c * S + j] - mx[j]);
      for (int64_t c = 0; c < C; c++)
        for (int64_t j = 0; j < len; j++) {
          int64_t t = -1;
          if (!classIndex(target[n * S + s0 + j], C, &t)) ok = false;
          double p = std::exp(b[c * S + j] - mx[j]) / se[j];
          dx[off + c * S + j] = static_cast<float>(k * (p - (t == c ? 1.0 : 0.0)));
        }
    }
  });
  return ok;
}

bool kDiceLoss(const float* probs, const float* target, int64_t N, int64_t C, int64_t S, double sNr, double sDr, float* loss,
               float* stats) {
  std::vector<double> st(N * C * 3);
  std::atomic<bool> ok{true};
  parallelFor(N * C, 1, [&](int64_t lo, int64_t hi, int) {
    for (int64_t nc = lo; nc < hi; nc++) {
      int64_t n = nc / C, c = nc % C;
      const float* p = probs + nc * S;
      const float* t = target + n * S;
      double I = 0, G = 0, P = 0;
      for (int64_t s = 0; s < S; s++) {
        P += p[s];
        int64_t k;
        if (!classIndex(t[s], C, &k)) {
          ok = false;
          continue;
        }
        if (k == c) I += p[s], G += 1;
      }
      st[nc * 3] = I, st[nc * 3 + 1] = G, st[nc * 3 + 2] = P;
    }
  });
  double total = 0;
  for (int64_t nc = 0; nc < N * C; nc++) {
    total += 1 - (2 * st[nc * 3] + sNr) / (st[nc * 3 + 1] + st[nc * 3 + 2] + sDr);
    for (int j = 0; j < 3; j++) stats[nc * 3 + j] = static_cast<float>(st[nc * 3 + j]);
  }
  loss[0] = static_cast<float>(total / (N * C));
  return ok;
}

bool kDiceLossGrad(const float* dloss, const float* target, const float* stats, int64_t N, int64_t C, int64_t S, double sNr,
                   double sDr, float* dp) {
  double k = -static_cast<double>(dloss[0]) / (N * C);
  std::atomic<bool> ok{true};
  parallelFor(N * C, 1, [&](int64_t lo, int64_t hi, int) {
    for (int64_t nc = lo; nc < hi; nc++) {
      int64_t n = nc / C, c = nc % C;
      double num = 2.0 * stats[nc * 3] + sNr;
      double den = static_cast<double>(stats[nc * 3 + 1]) + stats[nc * 3 + 2] + sDr;
      float fg = static_cast<float>((k * (2 * den - num)) / (den * den));
      float bg = static_cast<float>((k * -num) / (den * den));
      const float* t = target + n * S;
      float* o = dp + nc * S;
      for (int64_t s = 0; s < S; s++) {
        int64_t cls;
        if (!classIndex(t[s], C, &cls)) ok = false, cls = -1;
        o[s] = cls == c ? fg : bg;
      }
    }
  });
  return ok;
}

void kSum(const float* x, int64_t n, float* out) {
  // Fixed chunks summed in order: the result does not depend on the thread count.
  int64_t nch = (n + kGrain - 1) / kGrain;
  std::vector<double> ch(static_cast<size_t>(nch > 0 ? nch : 1), 0.0);
  parallelFor(nch, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t k = b; k < e; k++) {
      int64_t lo = k * kGrain, hi = std::min(n, (k + 1) * kGrain);
      ch[k] = sumF(x + lo, hi - lo);
    }
  });
  double s = 0;
  for (double v : ch) s += v;
  out[0] = static_cast<float>(s);
}

void kFill(const float* s, double factor, int64_t n, float* y) {
  float v = static_cast<float>(static_cast<double>(s[0]) * factor);
  elementwise(n, [&](int64_t lo, int64_t hi) { std::fill(y + lo, y + hi, v); });
}

void kAdamW(float* p, const float* g, float* m, float* v, int64_t n, double lr, double beta1, double beta2, double eps,
            double wd, int64_t step) {
  double bc1 = 1 - std::pow(beta1, static_cast<double>(step));
  double bc2 = 1 - std::pow(beta2, static_cast<double>(step));
  double stepSize = lr / bc1;
  const float decay = static_cast<float>(1 - lr * wd);
  const float b1 = static_cast<float>(beta1), omb1 = static_cast<float>(1 - beta1);
  const float b2 = static_cast<float>(beta2), omb2 = static_cast<float>(1 - beta2);
  const float bc2s = static_cast<float>(std::sqrt(bc2));
  const float e = static_cast<float>(eps);
  const float nss = static_cast<float>(-stepSize);
  // Single float32 operations, except the two fused multiply-adds where PyTorch's vectorised CPU kernels
  // use FMA (add_ with alpha; addcmul_): m = fma(g, 1−β1, m·β1), v = fma((1−β2)·g, g, v·β2).
  elementwise(n, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
      float gi = g[i];
      float pi = p[i] * decay;
      float mi = std::fma(gi, omb1, m[i] * b1);
      float vi = std::fma(omb2 * gi, gi, v[i] * b2);
      float sq = std::sqrt(vi);
      float den = sq / bc2s;
      den = den + e;
      float num = nss * mi;
      float q = num / den;
      p[i] = pi + q;
      m[i] = mi;
      v[i] = vi;
    }
  });
}

}  // namespace ux
