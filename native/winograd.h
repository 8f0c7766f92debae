// Winograd F(2×2×2, 3×3×3) for dense 3×3×3 stride-1 convolutions (forward, and grad input as a forward): 64 multiplies per 2×2×2 output
// tile per (input, output) channel pair instead of 216, the transforms being additions.
#pragma once
#include <cstddef>
#include <cstdint>

#include "conv.h"

namespace ux {

// Tiles per block: a block is up to kWinoTiles consecutive 2-wide tiles along w of one (d, h) tile row.
constexpr int kWinoTiles = 16;
// Output channels are padded to this multiple in the transformed weights (every ISA's vector width divides it).
constexpr int kWinoCoutAlign = 16;

// One block of work for the per-ISA kernel.
struct WinoBlock {
  const float* x;  // one sample, [cin][in0][in1][in2]
  int cin, in[3], pad[3];
  const float* u;  // transformed weights [64][cin][coutPad]
  int cout, coutPad;
  const float* bias;  // [cout] or null
  float* y;           // one sample, [cout][out0][out1][out2]
  int out[3];
  int td, th, tw0, nt;  // tile row (td, th) and its tiles tw0 .. tw0+nt-1 (nt ≤ kWinoTiles)
  float* scratch;       // winoScratchFloats(cin, coutPad) floats, 64-byte aligned
  // The thread's next block (null if none): its input rows are prefetched while this block multiplies, as
  // the input is far larger than the caches and its short rows would otherwise each start with a miss.
  const WinoBlock* next;
};

struct WinoCores {
  // Input transform, 64 GEMMs and output transform of one block.
  void (*block)(const WinoBlock& b);
};

const WinoCores* winoAvx512();  // null when not compiled in
const WinoCores* winoAvx2();
const WinoCores* winoGeneric();

inline size_t winoScratchFloats(int cin, int coutPad) {
  // V [64][cin][T] + M [64][T][coutPad] + transform temporaries
  return static_cast<size_t>(64) * kWinoTiles * (static_cast<size_t>(cin) + coutPad) + 2 * 64 * kWinoTiles + 4 * 64;
}

// Whether convForward takes the Winograd path for g (UXNET_WINOGRAD=0 turns it off).
bool winogradApplies(const ConvGeom& g);
// Floats of the transformed weights, and the transform U = G g Gᵀ into dst ([64][Cin][roundUp(Cout, 16)]).
size_t winogradPackSize(const ConvGeom& g);
void winogradPackWeights(const float* w, const ConvGeom& g, float* dst);
// Grad input of a stride-1 3×3×3 conv g is the forward conv winogradGradInputGeom(g) of dy with the kernel
// flipped and its channels swapped; winogradPackGradInputWeights transforms w ([Cout][Cin][3][3][3] of g)
// for it.
ConvGeom winogradGradInputGeom(const ConvGeom& g);
void winogradPackGradInputWeights(const float* w, const ConvGeom& g, float* dst);
// y = conv(x, w) + bias with u = the transformed weights.
void winogradForward(const float* x, const float* u, const float* bias, const ConvGeom& g, float* y);

}  // namespace ux
