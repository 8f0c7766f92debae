// Blocked, packed single-precision GEMM (the transformer layers' linear and batched matmul).
#pragma once
#include <cstdint>

namespace ux {

// For every batch entry b: y[b] = op(A_b)·op(B_b) (+ bias on every row), row-major, float32 accumulation.
// A_b is [M×K] ([K×M] with transA) at a + b·M·K; B_b is [K×N] ([N×K] with transB) at b + b·K·N, or the
// same matrix for every b when bShared. y is [batch×M×N]; bias [N] or null.
// geluOut (optional, [batch×M×N], may be y itself): also writes GELU(y) there, each output block right after
// its last K slice while it is still in cache (the Linear→GELU of transformer MLPs: no separate pass over
// a large activation). The GELU is kGeluSpan's, so the values equal the unfused gelu kernel's bit for bit.
void gemmBatched(const float* a, const float* b, const float* bias, float* y, int64_t batch, int64_t M, int64_t N, int64_t K,
                 bool transA, bool transB, bool bShared, float* geluOut = nullptr);
const char* gemmIsaName();
// The GELU kernel of the GEMM's ISA (AVX-512: FMA and a reciprocal estimate), or null where the portable
// multi-versioned loop in kernels.cc serves; kGelu and the GEMM epilogue both go through kGeluSpan.
using GeluSpan = void (*)(const float* x, int64_t n, float* y);
GeluSpan gemmGeluSpan();

}  // namespace ux
