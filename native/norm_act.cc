#include "norm_act.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels.h"
#include "runtime.h"

namespace ux {
namespace {

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define UX_NA_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define UX_NA_MULTIVERSION
#endif

// q = float((p − mean)·r) [instance norm], then ·w, +b, ReLU in float (mul channel, broadcast add, relu).
UX_NA_MULTIVERSION void gnApplyRow(const float* __restrict p, int64_t n, double mean, double r, float w, float b, bool relu,
                                   float* __restrict q) {
  if (relu)
    for (int64_t i = 0; i < n; i++) {
      float v = static_cast<float>((p[i] - mean) * r) * w + b;
      q[i] = v > 0 ? v : v * 0.f;
    }
  else
    for (int64_t i = 0; i < n; i++) q[i] = static_cast<float>((p[i] - mean) * r) * w + b;
}

// One loop per variant, so that each vectorises without per-element branches.
UX_NA_MULTIVERSION void bnApplyRow(const float* __restrict p, int64_t n, float inv, float shift, float w, float b, bool relu,
                                   const float* __restrict res, float* __restrict q) {
  if (relu && res)
    for (int64_t i = 0; i < n; i++) {
      float v = (p[i] * inv + shift) * w + b;
      q[i] = (v > 0 ? v : v * 0.f) + res[i];
    }
  else if (relu)
    for (int64_t i = 0; i < n; i++) {
      float v = (p[i] * inv + shift) * w + b;
      q[i] = v > 0 ? v : v * 0.f;
    }
  else if (res)
    for (int64_t i = 0; i < n; i++) q[i] = ((p[i] * inv + shift) * w + b) + res[i];
  else
    for (int64_t i = 0; i < n; i++) q[i] = (p[i] * inv + shift) * w + b;
}

// Apply passes run over (n·c, span) items of at most kSpan values, so a few large channels still spread
// over every thread.
constexpr int64_t kSpan = 1 << 14;

template <typename F>
void forSpans(int64_t NC, int64_t S, F f) {
  const int64_t per = (S + kSpan - 1) / kSpan;
  parallelFor(NC * per, 1, [&](int64_t lo, int64_t hi, int) {
    for (int64_t it = lo; it < hi; it++) {
      const int64_t nc = it / per, s0 = (it % per) * kSpan;
      f(nc, s0, std::min(kSpan, S - s0));
    }
  });
}

}  // namespace

void kGroupNormAct(const float* x, const float* w, const float* b, int64_t N, int64_t C, int64_t S, int64_t G, double eps,
                   bool relu, float* y) {
  const int64_t cg = C / G, len = cg * S;
  std::vector<double> mean(static_cast<size_t>(N * G)), rstd(static_cast<size_t>(N * G));
  parallelFor(N * G, 1, [&](int64_t lo, int64_t hi, int) {
    for (int64_t ng = lo; ng < hi; ng++) {
      const float* p = x + ng * len;
      const double m = sumF(p, len) / len;
      mean[ng] = m;
      rstd[ng] = 1.0 / std::sqrt(sumSqDev(p, len, m) / len + eps);
    }
  });
  forSpans(N * C, S, [&](int64_t nc, int64_t s0, int64_t n) {
    const int64_t c = nc % C, ng = (nc / C) * G + c / cg;
    // A missing affine is the identity: ·1 and +0 leave every value unchanged (up to the sign of zero).
    gnApplyRow(x + nc * S + s0, n, mean[ng], rstd[ng], w ? w[c] : 1.f, b ? b[c] : 0.f, relu, y + nc * S + s0);
  });
}

void kBatchNormEvalAct(const float* x, const float* inv, const float* shift, const float* w, const float* b, const float* res,
                       int64_t N, int64_t C, int64_t S, bool relu, float* y) {
  forSpans(N * C, S, [&](int64_t nc, int64_t s0, int64_t n) {
    const int64_t c = nc % C;
    bnApplyRow(x + nc * S + s0, n, inv[c], shift[c], w ? w[c] : 1.f, b ? b[c] : 0.f, relu, res ? res + nc * S + s0 : nullptr,
               y + nc * S + s0);
  });
}

}  // namespace ux
