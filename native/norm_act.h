// Fused normalisation epilogues for inference (TransBTS's GroupNorm→ReLU and BatchNorm(eval)→ReLU→+x):
// one stats pass and one apply pass per tensor instead of 3-5 elementwise passes. The arithmetic and its
// rounding order are those of the unfused ops (instance norm, mul channel, broadcast add, leaky relu, add),
// so the results are bit-identical to the composition (test/engine/norm-act.test).
#pragma once
#include <cstdint>

namespace ux {

// x [N, C, S]; groups G divide C; w, b [C] or null. y = act(float(float((x − mean)·rstd)·w) + b) with the
// (n, group) statistics computed as instance norm of the [N, G, C/G·S] view (double, two-pass).
void kGroupNormAct(const float* x, const float* w, const float* b, int64_t N, int64_t C, int64_t S, int64_t G, double eps,
                   bool relu, float* y);
// y = act(((x·inv[c] + shift[c])·w[c]) + b[c]) (+ res), every step rounded to float as the unfused ops do;
// w, b, res may be null.
void kBatchNormEvalAct(const float* x, const float* inv, const float* shift, const float* w, const float* b, const float* res,
                       int64_t N, int64_t C, int64_t S, bool relu, float* y);

}  // namespace ux
