// Fused multi-head attention (src/engine/ops/attention.ts): token-major q [B, N, Cq], k [B, M, Ck],
// v [B, M, Cv] with head h at columns col + h·D; scores = ((q·qScale)·kᵀ)·sScale + bias[h] + mask[b mod nW].
#pragma once
#include <cstdint>

namespace ux {

struct AttnGeom {
  int64_t B, N, M, Cq, Ck, Cv, H, D, qCol, kCol, vCol, nW;
  float qScale, sScale;
};

// out [B, N, H·D] and lse [B, H, N]; bias and mask may be null.
void attentionForward(const float* q, const float* k, const float* v, const float* bias, const float* mask, const AttnGeom& g, float* out,
                      float* lse);

// Gradients from the saved inputs, output and lse. gk may equal gq and gv may equal gq or gk (shared
// packed tensors; their column ranges must not overlap). Each gradient buffer is fully written (zeros
// in columns no head reads). dbias [H, N, M] may be null.
void attentionBackward(const float* dout, const float* q, const float* k, const float* v, const float* bias, const float* mask, const float* out,
                       const float* lse, const AttnGeom& g, float* gq, float* gk, float* gv, float* dbias);

}  // namespace ux
