// 3-D convolution drivers (forward, grad input, grad weight) on NCDHW float32 arrays.
#pragma once
#include <cstdint>

namespace ux {

struct ConvGeom {
  int64_t N, Cin, Cout, G;
  int in[3];   // input spatial size of the forward conv
  int out[3];  // output spatial size of the forward conv
  int k[3], s[3], p[3];
};

// Identity of the weight buffer for the packed-weight cache (id 0: do not cache).
struct WeightKey {
  uint64_t id = 0, version = 0;
};

// y = conv(x, w) + bias (bias may be null).
void convForward(const float* x, const float* w, const float* bias, const ConvGeom& g, float* y, WeightKey wk = {});
// Applied to every output value v of channel c after the bias (a conv's inference epilogue): BatchNorm(eval)
// v = (v·inv[c] + shift[c])·w[c] + b[c] when inv is set (w, b optional), ReLU when relu, then + res (y's
// layout) when set. Each step is rounded to float as the separate kernels round it.
struct ConvEpilogue {
  const float* inv = nullptr;
  const float* shift = nullptr;
  const float* w = nullptr;
  const float* b = nullptr;
  bool relu = false;
  const float* res = nullptr;
};

// convForward on the channel concatenation of nParts tensors [N, partC[j], ...] (Σ partC = g.Cin) without
// materialising it: the direct kernel reads every channel where it lies; ep (or null) is applied to the output.
void convForwardConcat(const float* const* parts, const int64_t* partC, int nParts, const float* w, const float* bias,
                       const ConvGeom& g, float* y, WeightKey wk, const ConvEpilogue* ep);
void convForwardChans(const float* x, const float* const* chans, const float* w, const float* bias, const ConvGeom& g, float* y,
                      WeightKey wk, const ConvEpilogue* ep);
// dx of the forward conv described by g (dy has g.out, dx has g.in).
// With bias (or null): dx + bias[c] on every voxel of channel c (a transposed conv's bias).
void convGradInput(const float* dy, const float* w, const ConvGeom& g, float* dx, WeightKey wk = {}, const float* bias = nullptr);
// dw [Cout, Cin/G, k] of the forward conv described by g.
void convGradWeight(const float* x, const float* dy, const ConvGeom& g, float* dw);

// Which micro-kernel set runs ("avx512", "avx2", "generic"); UXNET_ISA=avx2|generic forces a lower one.
const char* convIsaName();

}  // namespace ux
