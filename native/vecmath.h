// Vectorisable float math shared by the non-GEMM kernels (no libm calls in hot loops).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace ux {

// expVec: e^x by x = k·ln2 + r (ln2 split in two for an exact k·ln2), e^r by its degree-7 Taylor
// polynomial (|r| ≤ ln2/2: truncation < 5e-9 relative) and 2^k put into the exponent bits.
inline float expVec(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float k = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = (x - k * 0.693145751953125f) - k * 1.42860682030941723e-6f;
  float p = 1.98412698412698413e-4f;  // 1/7!
  p = p * r + 1.38888888888888889e-3f;
  p = p * r + 8.33333333333333333e-3f;
  p = p * r + 4.16666666666666667e-2f;
  p = p * r + 1.66666666666666667e-1f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(k) + 127) << 23;
  float s;
  std::memcpy(&s, &bits, sizeof s);
  return p * s;
}

}  // namespace ux
