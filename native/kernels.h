// Non-convolution kernels on raw float32 arrays. They run on the executor thread and use parallelFor.
// Semantics follow src/engine/kernels.ts; reductions accumulate in double.
#pragma once
#include <cstdint>

namespace ux {

// Sum of n floats, and sum of squared deviations from m, in double over 8 fixed lanes (the order every
// normalisation's statistics use, so fused and unfused kernels agree bit for bit).
double sumF(const float* p, int64_t n);
double sumSqDev(const float* p, int64_t n, double m);

void kSumToChannels(const float* x, int64_t N, int64_t C, int64_t S, float* y);
void kInstanceNorm(const float* x, int64_t NC, int64_t S, double eps, float* y, float* rstd);
void kInstanceNormGrad(const float* dy, const float* y, const float* rstd, int64_t NC, int64_t S, float* dx);
// Layout: `outer` blocks of C×S values (channels-first: outer=N, S=spatial; channels-last: outer=M, S=1 and
// the vector is contiguous, i.e. treat as [M, C] with stride 1).
void kLayerNorm(const float* x, const float* w, const float* b, int64_t outer, int64_t C, int64_t S, bool channelsLast,
                double eps, float* y, float* mean, float* rstd);
void kLayerNormGrad(const float* dy, const float* x, const float* w, const float* rstd, int64_t outer, int64_t C, int64_t S,
                    bool channelsLast, float* dx, float* dw, float* db);
void kGelu(const float* x, int64_t n, float* y);
// GELU of one span on the calling thread (the GEMM epilogue); the same values as kGelu.
void kGeluSpan(const float* x, int64_t n, float* y);
void kGeluGrad(const float* dy, const float* x, int64_t n, float* dx);
void kLeakyRelu(const float* x, int64_t n, float slope, float* y);
void kLeakyReluGrad(const float* dy, const float* x, int64_t n, float slope, float* dx);
void kAdd(const float* a, const float* b, int64_t n, float* y);
void kScale(const float* x, int64_t n, double f, float* y);
void kMulChannel(const float* x, const float* s, int64_t N, int64_t C, int64_t S, float* y);
void kMulChannelGradScale(const float* dy, const float* x, int64_t N, int64_t C, int64_t S, float* g);
void kCopy(const float* x, int64_t n, float* y);
void kSoftmax(const float* x, int64_t N, int64_t C, int64_t S, float* y);
void kSoftmaxGrad(const float* dy, const float* y, int64_t N, int64_t C, int64_t S, float* dx);
// Return false if a target value is not a class index in [0, C).
bool kCrossEntropy(const float* logits, const float* target, int64_t N, int64_t C, int64_t S, float* out);
bool kCrossEntropyGrad(const float* dloss, const float* logits, const float* target, int64_t N, int64_t C, int64_t S, float* dx);
bool kDiceLoss(const float* probs, const float* target, int64_t N, int64_t C, int64_t S, double sNr, double sDr, float* loss,
               float* stats);
bool kDiceLossGrad(const float* dloss, const float* target, const float* stats, int64_t N, int64_t C, int64_t S, double sNr,
                   double sDr, float* dp);
void kSum(const float* x, int64_t n, float* out);
void kFill(const float* s, double factor, int64_t n, float* y);
void kAdamW(float* p, const float* g, float* m, float* v, int64_t n, double lr, double beta1, double beta2, double eps,
            double wd, int64_t step);

}  // namespace ux
