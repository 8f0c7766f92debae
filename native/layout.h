// Index-mapping kernels for the transformer ops (strided copies, roll, broadcasting arithmetic, reductions
// to a broadcast shape, row gathers). Shapes and strides in elements, row-major.
#pragma once
#include <cstdint>
#include <vector>

namespace ux {

// y[i] = x[offset + Σ_d i_d·strides[d]] over `shape`.
void kStridedCopy(const float* x, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides, int64_t offset, float* y);
// y (zero-filled, ysize values) at offset + Σ_d i_d·strides[d] = x[i] over x's `shape`.
void kStridedScatter(const float* x, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides, int64_t offset, float* y,
                     int64_t ysize);
// torch.roll with a shift in [0, n_d) for every dim (0 = unshifted).
void kRoll(const float* x, const std::vector<int64_t>& shape, const std::vector<int64_t>& shifts, float* y);
// y = a ∘ b over `shape` with per-dim strides of a and b (0 along broadcast dims); op 0 add, 1 sub, 2 mul.
void kBroadcastBinary(const float* a, const float* b, const std::vector<int64_t>& shape, const std::vector<int64_t>& sa,
                      const std::vector<int64_t>& sb, int op, float* y);
// y[Σ_d i_d·ostrides[d]] += x[i] over x's `shape` (ostrides 0 along reduced dims); y has ysize values.
void kSumToShape(const float* x, const std::vector<int64_t>& shape, const std::vector<int64_t>& ostrides, float* y, int64_t ysize);
// y[r][:] = table[index[r]][:], index given as floats.
void kGatherRows(const float* table, const float* index, int64_t n, int64_t C, float* y);
// y (rows×C) = Σ over r with index[r] = row of dy[r][:].
void kScatterAddRows(const float* dy, const float* index, int64_t n, int64_t C, int64_t rows, float* y);

}  // namespace ux
