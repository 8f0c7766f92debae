// Convolution drivers. Dense convolutions are computed direct (no im2col): for each output row (d, h) the
// needed input rows are copied into a small zero-padded "panel" (so the micro-kernel needs no bounds
// checks), and a register-blocked micro-kernel computes a tile of output positions × a block of output
// channels with the weights packed as [in][kd][kh][kw][out-block] vectors.
//
// Transposed convolution (grad input) is split into stride^3 phases; each phase is a stride-1 direct
// convolution with a sub-sampled, flipped kernel, written to every stride-th output position.
#include "conv.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "conv_isa.h"
#include "gemm.h"
#include "runtime.h"
#include "winograd.h"

namespace ux {
namespace {

const IsaCores* pickIsa() {
  static const IsaCores* isa = [] {
    const char* env = std::getenv("UXNET_ISA");
    std::string force = env ? env : "";
    bool has512 = false, has2 = false;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    has512 = __builtin_cpu_supports("avx512f");
    has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    if (force != "avx2" && force != "generic" && has512 && isaAvx512()) return isaAvx512();
    if (force != "generic" && has2 && isaAvx2()) return isaAvx2();
    return isaGeneric();
  }();
  return isa;
}

inline int roundUp(int a, int b) { return (a + b - 1) / b * b; }

// How output positions q of one spatial dim map to input positions: input index = q·sin + u + off for
// tap u < T, whose weight index is wmap[u]; the result goes to output index q·sout + rout.
struct DimMap {
  int T = 0, sin = 1, off = 0, Q = 0, sout = 1, rout = 0, insz = 0;
  std::vector<int> wmap;
};

DimMap forwardMap(int K, int s, int p, int in, int out) {
  DimMap m;
  m.T = K, m.sin = s, m.off = -p, m.Q = out, m.sout = 1, m.rout = 0, m.insz = in;
  m.wmap.resize(K);
  for (int u = 0; u < K; u++) m.wmap[u] = u;
  return m;
}

// Phase r of the transposed conv along one dim: dx positions r, r+s, ...; dy has size dysz.
DimMap phaseMap(int K, int s, int p, int dxsz, int dysz, int r) {
  DimMap m;
  m.Q = r < dxsz ? (dxsz - r + s - 1) / s : 0;
  int phi = (r + p) % s;
  m.T = phi < K ? (K - phi + s - 1) / s : 0;
  int c = (r + p - phi) / s;
  m.off = c - m.T + 1, m.sin = 1, m.sout = s, m.rout = r, m.insz = dysz;
  m.wmap.resize(m.T);
  for (int u = 0; u < m.T; u++) m.wmap[u] = phi + s * (m.T - 1 - u);
  return m;
}

int chooseRov(const IsaCores* isa, int64_t cout) {
  int nv = static_cast<int>((cout + isa->vw - 1) / isa->vw);
  if (nv % 4 == 0 && isa->vw * 4 <= 64) return 4;
  if (nv % 3 == 0) return 3;
  if (nv % 2 == 0) return 2;
  if (nv >= 4) return isa->vw * 4 <= 64 ? 4 : 3;
  return nv;  // 1..3
}

// wp[ob][i][ud][uh][uw][RO] = w[o·oStride + i·iStride + (wmap_d·Kh + wmap_h)·Kw + wmap_w], zero for o >= nOut.
// Parallel over (ob, i); each task reads whole kernels of one (o, i) pair.
void packWeights(const float* w, int64_t oStride, int64_t iStride, int nOut, int nIn, const DimMap* m, int Kh, int Kw, int RO,
                 float* wp) {
  const int nob = (nOut + RO - 1) / RO;
  const int taps = m[0].T * m[1].T * m[2].T;
  std::vector<int64_t> kidx(taps);
  int t = 0;
  for (int ud = 0; ud < m[0].T; ud++)
    for (int uh = 0; uh < m[1].T; uh++)
      for (int uw = 0; uw < m[2].T; uw++) kidx[t++] = (static_cast<int64_t>(m[0].wmap[ud]) * Kh + m[1].wmap[uh]) * Kw + m[2].wmap[uw];
  parallelFor(static_cast<int64_t>(nob) * nIn, 16, [&](int64_t b, int64_t e, int) {
    for (int64_t it = b; it < e; it++) {
      const int ob = static_cast<int>(it / nIn), i = static_cast<int>(it % nIn);
      float* dst = wp + it * taps * RO;
      for (int l = 0; l < RO; l++) {
        const int o = ob * RO + l;
        if (o >= nOut) {
          for (int k = 0; k < taps; k++) dst[k * RO + l] = 0.f;
          continue;
        }
        const float* src = w + o * oStride + i * iStride;
        for (int k = 0; k < taps; k++) dst[k * RO + l] = src[kidx[k]];
      }
    }
  });
}

// Copies input row (channel base `xc`, spatial dims in[]) for (id, ih) into dst[0..lw), zero padded;
// dst[e] = x[id][ih][e + off].
inline void fillRow(const float* xc, const int* in, int id, int ih, int off, int lw, float* dst) {
  if (id < 0 || id >= in[0] || ih < 0 || ih >= in[1]) {
    std::memset(dst, 0, sizeof(float) * lw);
    return;
  }
  const float* src = xc + (static_cast<int64_t>(id) * in[1] + ih) * in[2];
  int e0 = std::max(0, -off), e1 = std::min(lw, in[2] - off);
  if (e1 <= e0) {
    std::memset(dst, 0, sizeof(float) * lw);
    return;
  }
  if (e0 > 0) std::memset(dst, 0, sizeof(float) * e0);
  std::memcpy(dst + e0, src + e0 + off, sizeof(float) * (e1 - e0));
  if (e1 < lw) std::memset(dst + e1, 0, sizeof(float) * (lw - e1));
}

// Per-thread scratch (panels, tiles), kept between calls so that each call does not page-fault fresh
// memory in. Conv calls run one at a time on the executor thread and never nest, so one set suffices.
struct ThreadScratch {
  std::vector<Scratch<float>*> v;
  explicit ThreadScratch(int n) : v(n, nullptr) {}
  float* get(int tid, size_t n) {
    if (!v[tid]) v[tid] = new Scratch<float>();
    v[tid]->resize(n);
    return v[tid]->get();
  }
};

ThreadScratch& sharedScratch() {
  static ThreadScratch* s = new ThreadScratch(numThreads());
  return *s;
}

// Packed weights, reused between calls for the same reason.
float* packScratch(size_t n) {
  static Scratch<float>* s = new Scratch<float>();
  s->resize(n);
  return s->get();
}

// Packed weights of recent calls, keyed by (weight buffer, version, layout). A layout is cached on its
// second use with the same weight version, so inference reuses packs while training (new weights
// every step) never pays for copies. Capped by UXNET_PACK_CACHE_MB (default 512), least recent evicted.
struct PackKey {
  uint64_t id, version, layout;
  bool operator<(const PackKey& o) const {
    return id != o.id ? id < o.id : version != o.version ? version < o.version : layout < o.layout;
  }
};
struct PackCache {
  struct Entry {
    std::vector<float> data;
    uint64_t lastUse = 0;
  };
  std::map<PackKey, Entry> entries;
  std::map<PackKey, uint64_t> seen;
  size_t bytes = 0, cap = 0;
  uint64_t clock = 0;
  PackCache() {
    const char* e = std::getenv("UXNET_PACK_CACHE_MB");
    cap = static_cast<size_t>(e && *e ? std::atoll(e) : 512) << 20;
  }
};
PackCache& packCache() {
  static PackCache* c = new PackCache();
  return *c;
}

// Returns packed weights of `n` floats for `key`, calling pack(dst) when they are not cached.
template <typename F>
const float* packedWeights(WeightKey wk, uint64_t layout, size_t n, F pack) {
  if (wk.id == 0) {
    float* dst = packScratch(n);
    pack(dst);
    return dst;
  }
  PackCache& c = packCache();
  PackKey key{wk.id, wk.version, layout};
  auto it = c.entries.find(key);
  if (it != c.entries.end() && it->second.data.size() == n) {
    it->second.lastUse = ++c.clock;
    return it->second.data.data();
  }
  float* dst = packScratch(n);
  pack(dst);
  auto s = c.seen.find(key);
  if (s == c.seen.end()) {
    if (c.seen.size() > 100000) c.seen.clear();
    c.seen.emplace(key, 1);
    return dst;
  }
  if (n * sizeof(float) > c.cap) return dst;
  // Drop stale versions of this buffer, then least recently used entries until it fits.
  for (auto e = c.entries.begin(); e != c.entries.end();) {
    if (e->first.id == wk.id && e->first.version != wk.version) {
      c.bytes -= e->second.data.size() * sizeof(float);
      e = c.entries.erase(e);
    } else {
      ++e;
    }
  }
  while (c.bytes + n * sizeof(float) > c.cap && !c.entries.empty()) {
    auto victim = c.entries.begin();
    for (auto e = c.entries.begin(); e != c.entries.end(); ++e)
      if (e->second.lastUse < victim->second.lastUse) victim = e;
    c.bytes -= victim->second.data.size() * sizeof(float);
    c.entries.erase(victim);
  }
  PackCache::Entry& ent = c.entries[key];
  ent.data.assign(dst, dst + n);
  ent.lastUse = ++c.clock;
  c.bytes += n * sizeof(float);
  return ent.data.data();
}

// Per-thread pointer tables for the dense micro-kernel (same lifetime rules as ThreadScratch).
struct ThreadPtrs {
  std::vector<std::vector<const float*>> v;
  explicit ThreadPtrs(int n) : v(n) {}
  const float** get(int tid, size_t n) {
    if (v[tid].size() < n) v[tid].resize(n);
    return v[tid].data();
  }
};

ThreadPtrs& sharedPtrs() {
  static ThreadPtrs* s = new ThreadPtrs(numThreads());
  return *s;
}

// One dense phase for one sample and group: x has `cin` channels of spatial size in[], y has `cout`
// channels of spatial size out[]; wp packed for this phase (rov vectors per block).
// Work items are blocks of Rd × Rh output rows. Each item copies the input rows its block needs once into a
// zero-padded panel, [cin][nsd][nsh][lw], and the micro-kernel addresses the rows of every output row through
// a pointer table: neighbouring output rows share input rows (a 3×3×3 conv reads each input row 9 times), so a
// block copies ~(Rd+2)(Rh+2) rows per channel instead of 9·Rd·Rh.
// The epilogue on n values of channel c at stride st (rr: the residual at the same positions). One simple
// loop per step (each vectorises; a row is in L1), in the order and rounding of the separate kernels.
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define UX_EP_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define UX_EP_MULTIVERSION
#endif
UX_EP_MULTIVERSION void epilogueContig(float* __restrict yr, const float* __restrict rr, int64_t n, int64_t c, const ConvEpilogue& e) {
  if (e.inv) {
    const float inv = e.inv[c], sh = e.shift[c];
    for (int64_t q = 0; q < n; q++) yr[q] = yr[q] * inv + sh;
    if (e.w) {
      const float w = e.w[c];
      for (int64_t q = 0; q < n; q++) yr[q] = yr[q] * w;
    }
    if (e.b) {
      const float b = e.b[c];
      for (int64_t q = 0; q < n; q++) yr[q] = yr[q] + b;
    }
  }
  if (e.relu)
    for (int64_t q = 0; q < n; q++) yr[q] = yr[q] > 0 ? yr[q] : yr[q] * 0.f;
  if (rr)
    for (int64_t q = 0; q < n; q++) yr[q] = yr[q] + rr[q];
}

void epilogueRow(float* yr, const float* rr, int64_t n, int64_t st, int64_t c, const ConvEpilogue& e) {
  if (st == 1) return epilogueContig(yr, rr, n, c, e);
  for (int64_t q = 0; q < n; q++) {
    float v = yr[q * st];
    if (e.inv) {
      v = v * e.inv[c] + e.shift[c];
      if (e.w) v = v * e.w[c];
      if (e.b) v = v + e.b[c];
    }
    if (e.relu) v = v > 0 ? v : v * 0.f;
    if (rr) v = v + rr[q * st];
    yr[q * st] = v;
  }
}

// `chans`, when given, holds the base of each input channel (channels of a concatenation read in place);
// otherwise channel i is at x + i·inVol. `ep`, when given, is applied to each output row as it is stored (its
// residual at y's layout): BatchNorm/ReLU/residual without passes of their own, the same float arithmetic.
void denseCore(const IsaCores* isa, int rov, const float* x, int cin, const int* in, const float* wp, int cout, const DimMap* m,
               const float* bias, float* y, const int* out, const float* const* chans = nullptr, const ConvEpilogue* ep = nullptr) {
  const int RO = rov * isa->vw;
  const int RW = isa->denseRW(rov);
  const int Qd = m[0].Q, Qh = m[1].Q, Qw = m[2].Q;
  if (Qd == 0 || Qh == 0 || Qw == 0) return;
  const int Td = m[0].T, Th = m[1].T, Tw = m[2].T;
  const int qwPad = roundUp(Qw, RW);
  const int lw = (qwPad - 1) * m[2].sin + Tw;
  const int nrows = cin * Td * Th;
  const int nob = (cout + RO - 1) / RO;
  const int64_t wBlock = static_cast<int64_t>(nrows) * Tw * RO;
  const int64_t inVol = static_cast<int64_t>(in[0]) * in[1] * in[2];
  const int64_t outVol = static_cast<int64_t>(out[0]) * out[1] * out[2];
  // ~kPos output positions per item share each weight block, so the weights are streamed once per block
  // rather than once per row (decisive for small volumes with many channels, where the weights are
  // megabytes and a row has only a few positions).
  static const int kPos = [] {
    const char* e = std::getenv("UXNET_CONV_POSITIONS");
    return e && std::atoi(e) > 0 ? std::atoi(e) : 512;
  }();
  int Rh = std::max(1, std::min(Qh, kPos / qwPad));
  const int nbh = (Qh + Rh - 1) / Rh;
  Rh = (Qh + nbh - 1) / nbh;
  int Rd = std::max(1, std::min(Qd, kPos / (qwPad * Rh)));
  const int nbd = (Qd + Rd - 1) / Rd;
  Rd = (Qd + nbd - 1) / nbd;
  const int R = Rd * Rh;
  const int nsd = (Rd - 1) * m[0].sin + Td, nsh = (Rh - 1) * m[1].sin + Th;
  const int64_t npb = static_cast<int64_t>(nbd) * nbh;
  const int nt = numThreads();
  int obGroups = 1;
  if (npb < 2 * nt) obGroups = static_cast<int>(std::min<int64_t>(nob, (2 * nt + npb - 1) / npb));
  const int obPer = (nob + obGroups - 1) / obGroups;
  const int64_t ostride = static_cast<int64_t>(qwPad) * RO;
  const size_t panelN = static_cast<size_t>(cin) * nsd * nsh * lw;
  ThreadScratch& scratch = sharedScratch();
  ThreadPtrs& ptrs = sharedPtrs();
  // Blocks run d-fastest and each thread takes a few consecutive ones, so that the input rows shared with
  // the previous block of the same thread are still in its L2 when copied again.
  const int64_t grain = std::max<int64_t>(1, std::min<int64_t>(static_cast<int64_t>(nbd) * obGroups, npb * obGroups / (8 * nt)));
  parallelFor(npb * obGroups, grain, [&](int64_t b, int64_t e, int tid) {
    float* tile = scratch.get(tid, static_cast<size_t>(R) * ostride + panelN);
    float* panel = tile + static_cast<size_t>(R) * ostride;
    const float** tab = ptrs.get(tid, static_cast<size_t>(R) * nrows + static_cast<size_t>(cin) * nsd * nsh);
    const float** pfTab = tab + static_cast<size_t>(R) * nrows;
    int lastPb = -1;
    for (int64_t item = b; item < e; item++) {
      const int pb = static_cast<int>(item / obGroups);
      const int og = static_cast<int>(item % obGroups);
      const int qd0 = (pb % nbd) * Rd, qh0 = (pb / nbd) * Rh;
      const int nd = std::min(Rd, Qd - qd0), nh = std::min(Rh, Qh - qh0);
      const int nout = nd * nh;
      if (pb != lastPb) {  // items of one block for several output-channel groups share the panel
        lastPb = pb;
        const int cd = (nd - 1) * m[0].sin + Td, ch = (nh - 1) * m[1].sin + Th;
        for (int i = 0; i < cin; i++)
          for (int sd = 0; sd < cd; sd++)
            for (int sh = 0; sh < ch; sh++)
              fillRow(chans ? chans[i] : x + i * inVol, in, qd0 * m[0].sin + sd + m[0].off, qh0 * m[1].sin + sh + m[1].off, m[2].off, lw,
                      panel + ((static_cast<size_t>(i) * nsd + sd) * nsh + sh) * lw);
        size_t t = 0;
        for (int kd = 0; kd < nd; kd++)
          for (int kh = 0; kh < nh; kh++)
            for (int i = 0; i < cin; i++)
              for (int ud = 0; ud < Td; ud++)
                for (int uh = 0; uh < Th; uh++)
                  tab[t++] = panel + ((static_cast<size_t>(i) * nsd + kd * m[0].sin + ud) * nsh + kh * m[1].sin + uh) * lw;
      }
      // While this block computes, prefetch the input rows of the thread's next block (the input is far
      // larger than L2, and each copied row would otherwise start with a cache miss).
      DensePrefetch pf;
      if (item + 1 < e && (item + 1) / obGroups != pb) {
        const int nb = pb + 1;
        const int nqd0 = (nb % nbd) * Rd, nqh0 = (nb / nbd) * Rh;
        const int ncd = (std::min(Rd, Qd - nqd0) - 1) * m[0].sin + Td, nch = (std::min(Rh, Qh - nqh0) - 1) * m[1].sin + Th;
        int n = 0;
        for (int i = 0; i < cin; i++)
          for (int sd = 0; sd < ncd; sd++)
            for (int sh = 0; sh < nch; sh++) {
              const int id = nqd0 * m[0].sin + sd + m[0].off, ih = nqh0 * m[1].sin + sh + m[1].off;
              if (id >= 0 && id < in[0] && ih >= 0 && ih < in[1])
                pfTab[n++] = (chans ? chans[i] : x + i * inVol) + (static_cast<int64_t>(id) * in[1] + ih) * in[2];
            }
        pf = DensePrefetch{pfTab, n, in[2]};
      }
      const int obEnd = std::min(nob, (og + 1) * obPer);
      for (int ob = og * obPer; ob < obEnd; ob++) {
        isa->denseFwdRows(rov, tab, nout, wp + ob * wBlock, nrows, Tw, m[2].sin, qwPad, tile, ostride, ob == og * obPer ? pf : DensePrefetch{});
        int oEnd = std::min(RO, cout - ob * RO);
        for (int k = 0; k < nout; k++) {
          int qd = qd0 + k / nh, qh = qh0 + k % nh;
          int pd = qd * m[0].sout + m[0].rout, ph = qh * m[1].sout + m[1].rout;
          float* y0 = y + static_cast<int64_t>(ob) * RO * outVol + (static_cast<int64_t>(pd) * out[1] + ph) * out[2] + m[2].rout;
          isa->denseStoreTile(tile + k * ostride, RO, oEnd, Qw, bias ? bias + ob * RO : nullptr, y0, outVol, m[2].sout);
          if (ep)
            for (int l = 0; l < oEnd; l++) {
              float* yr = y0 + l * outVol;
              epilogueRow(yr, ep->res ? ep->res + (yr - y) : nullptr, Qw, m[2].sout, static_cast<int64_t>(ob) * RO + l, *ep);
            }
        }
      }
    }
  });
}

// ---------------- naive fallbacks (kernel widths the micro-kernels do not cover) ----------------
void naiveGradWeight(const float* x, const float* dy, const ConvGeom& g, float* dw) {
  const int64_t Cig = g.Cin / g.G, Cog = g.Cout / g.G;
  const int64_t K3 = static_cast<int64_t>(g.k[0]) * g.k[1] * g.k[2];
  const int64_t inVol = static_cast<int64_t>(g.in[0]) * g.in[1] * g.in[2];
  const int64_t outVol = static_cast<int64_t>(g.out[0]) * g.out[1] * g.out[2];
  parallelFor(g.Cout * Cig, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t oi = b; oi < e; oi++) {
      int64_t o = oi / Cig, i = oi % Cig, grp = o / Cog;
      for (int kd = 0; kd < g.k[0]; kd++)
        for (int kh = 0; kh < g.k[1]; kh++)
          for (int kw = 0; kw < g.k[2]; kw++) {
            double s = 0;
            for (int64_t n = 0; n < g.N; n++) {
              const float* xc = x + (n * g.Cin + grp * Cig + i) * inVol;
              const float* gc = dy + (n * g.Cout + o) * outVol;
              for (int d = 0; d < g.out[0]; d++) {
                int id = d * g.s[0] + kd - g.p[0];
                if (id < 0 || id >= g.in[0]) continue;
                for (int h = 0; h < g.out[1]; h++) {
                  int ih = h * g.s[1] + kh - g.p[1];
                  if (ih < 0 || ih >= g.in[1]) continue;
                  for (int w = 0; w < g.out[2]; w++) {
                    int iw = w * g.s[2] + kw - g.p[2];
                    if (iw < 0 || iw >= g.in[2]) continue;
                    s += static_cast<double>(gc[(static_cast<int64_t>(d) * g.out[1] + h) * g.out[2] + w]) *
                         xc[(static_cast<int64_t>(id) * g.in[1] + ih) * g.in[2] + iw];
                  }
                }
              }
            }
            dw[oi * K3 + (kd * g.k[1] + kh) * g.k[2] + kw] = static_cast<float>(s);
          }
    }
  });
}

// ---------------- grouped 1x1x1 convolutions with few channels per group (ux_block's pwconv) ----------------
bool isGroupedPointwise(const ConvGeom& g) {
  return g.G > 1 && g.k[0] == 1 && g.k[1] == 1 && g.k[2] == 1 && g.s[0] == 1 && g.s[1] == 1 && g.s[2] == 1 && g.p[0] == 0 &&
         g.p[1] == 0 && g.p[2] == 0 && (g.Cin / g.G) * (g.Cout / g.G) <= 64;
}

constexpr int64_t kPwBlock = 4096;

// y[n][g·ny + a][v] = (bias) + Σ_b W(a, b) · x[n][g·nx + b][v], W(a, b) = w[(g·ny + a)·aS + b·bS] (within group g).
void groupedPointwise(const float* x, int64_t nx, const float* w, int64_t aStrideW, int64_t bStrideW, int64_t groupStrideW,
                      const float* bias, int64_t N, int64_t G, int64_t ny, int64_t S, float* y) {
  int64_t nblk = (S + kPwBlock - 1) / kPwBlock;
  parallelFor(N * G * nblk, 1, [&](int64_t lo, int64_t hi, int) {
    for (int64_t it = lo; it < hi; it++) {
      int64_t blk = it % nblk, ng = it / nblk, n = ng / G, gg = ng % G;
      int64_t s0 = blk * kPwBlock, len = std::min(kPwBlock, S - s0);
      const float* xb = x + (n * G * nx + gg * nx) * S + s0;
      const float* wg = w + gg * groupStrideW;
      for (int64_t a = 0; a < ny; a++) {
        float* yr = y + (n * G * ny + gg * ny + a) * S + s0;
        float bv = bias ? bias[gg * ny + a] : 0.f;
        for (int64_t j = 0; j < len; j++) yr[j] = bv;
        for (int64_t b = 0; b < nx; b++) {
          float wv = wg[a * aStrideW + b * bStrideW];
          const float* xr = xb + b * S;
          for (int64_t j = 0; j < len; j++) yr[j] += wv * xr[j];
        }
      }
    }
  });
}

void groupedPointwiseGradWeight(const float* x, const float* dy, const ConvGeom& g, float* dw) {
  const int64_t Cig = g.Cin / g.G, Cog = g.Cout / g.G;
  const int64_t S = static_cast<int64_t>(g.in[0]) * g.in[1] * g.in[2];
  parallelFor(g.G, 1, [&](int64_t lo, int64_t hi, int) {
    std::vector<double> acc(Cog * Cig);
    for (int64_t gg = lo; gg < hi; gg++) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t n = 0; n < g.N; n++)
        for (int64_t s0 = 0; s0 < S; s0 += kPwBlock) {
          int64_t len = std::min(kPwBlock, S - s0);
          for (int64_t o = 0; o < Cog; o++) {
            const float* gr = dy + (n * g.Cout + gg * Cog + o) * S + s0;
            for (int64_t i = 0; i < Cig; i++) {
              const float* xr = x + (n * g.Cin + gg * Cig + i) * S + s0;
              float lanes[16] = {0};
              int64_t j = 0;
              for (; j + 16 <= len; j += 16)
                for (int l = 0; l < 16; l++) lanes[l] += gr[j + l] * xr[j + l];
              double s = 0;
              for (; j < len; j++) s += static_cast<double>(gr[j]) * xr[j];
              for (int l = 0; l < 16; l++) s += lanes[l];
              acc[o * Cig + i] += s;
            }
          }
        }
      for (int64_t k = 0; k < Cog * Cig; k++) dw[gg * Cog * Cig + k] = static_cast<float>(acc[k]);
    }
  });
}

// ---------------- depthwise (groups == Cin == Cout, stride 1) ----------------
bool isDepthwise(const ConvGeom& g) {
  return g.G == g.Cin && g.G == g.Cout && g.G > 1 && g.s[0] == 1 && g.s[1] == 1 && g.s[2] == 1 && g.k[2] <= 7;
}

// Zero-padded copy of one channel for the depthwise cores: xp[dd][hh][e] = x[dd+off0][hh+off1][e+off2].
void buildDwPad(const float* xc, const int* in, const int* off, int dp, int hp, int lw, float* xp) {
  for (int dd = 0; dd < dp; dd++)
    for (int hh = 0; hh < hp; hh++) fillRow(xc, in, dd + off[0], hh + off[1], off[2], lw, xp + (static_cast<int64_t>(dd) * hp + hh) * lw);
}

// y[c] = bias[c] + Σ_u wk[c][u] · x[c][q + u + off] with Q output sizes and T taps per dim.
void depthwiseRun(const IsaCores* isa, const float* x, const int* in, const float* wk, const float* bias, int64_t N, int64_t C,
                  const int* T, const int* off, const int* Q, float* y) {
  const int W = isa->vw;
  const int dp = Q[0] + T[0] - 1, hp = roundUp(Q[1], 4) + T[1] - 1, lw = roundUp(Q[2], W) + T[2] - 1 + W;
  const int64_t inVol = static_cast<int64_t>(in[0]) * in[1] * in[2];
  const int64_t outVol = static_cast<int64_t>(Q[0]) * Q[1] * Q[2];
  const int64_t K3 = static_cast<int64_t>(T[0]) * T[1] * T[2];
  ThreadScratch& scratch = sharedScratch();
  parallelFor(N * C, 1, [&](int64_t lo, int64_t hi, int tid) {
    float* xp = scratch.get(tid, static_cast<size_t>(dp) * hp * lw);
    for (int64_t nc = lo; nc < hi; nc++) {
      int64_t c = nc % C;
      buildDwPad(x + nc * inVol, in, off, dp, hp, lw, xp);
      isa->dwFwdChannel(xp, hp, lw, wk + c * K3, T[0], T[1], T[2], Q[0], Q[1], Q[2], bias ? bias[c] : 0.f, y + nc * outVol);
    }
  });
}

// Transposed conv when kernel == stride and padding == 0 (UX-Net's k2 s2 up-sampling): every dx voxel gets
// exactly one tap, so for each dy row it is one 1x1 "conv" with K3·Cig outputs (tap-major), scattered
// into the s0×s1 dx rows it covers. Much better locality than 8 separate strided phases.
bool isPatchTransposed(const ConvGeom& g) {
  for (int d = 0; d < 3; d++)
    if (g.k[d] != g.s[d] || g.p[d] != 0) return false;
  return g.s[0] * g.s[1] * g.s[2] > 1;
}

// bias (or null) is added to every dx voxel of its channel as the tile is written (every voxel gets a tap).
void patchTransposed(const IsaCores* isa, const float* dy, const float* w, const float* bias, const ConvGeom& g, float* dx) {
  const int64_t Cig = g.Cin / g.G, Cog = g.Cout / g.G;
  const int K3 = g.k[0] * g.k[1] * g.k[2];
  const int64_t inVol = static_cast<int64_t>(g.in[0]) * g.in[1] * g.in[2];
  const int64_t outVol = static_cast<int64_t>(g.out[0]) * g.out[1] * g.out[2];
  if (g.out[0] * g.s[0] != g.in[0] || g.out[1] * g.s[1] != g.in[1] || g.out[2] * g.s[2] != g.in[2])
    std::memset(dx, 0, sizeof(float) * g.N * g.Cin * inVol);  // voxels no tap reaches stay zero
  const int64_t coutP = static_cast<int64_t>(K3) * Cig;  // o' = k·Cig + i
  const int rov = chooseRov(isa, coutP);
  const int RO = rov * isa->vw;
  const int RW = isa->denseRW(rov);
  const int nob = static_cast<int>((coutP + RO - 1) / RO);
  const int Qd = g.out[0], Qh = g.out[1], Qw = g.out[2];
  const int qwPad = roundUp(Qw, RW);
  const int lw = qwPad;
  const int nrows = static_cast<int>(Cog);
  Scratch<float> wp(static_cast<size_t>(nob) * RO * Cog);
  const int outW = g.in[2], outH = g.in[1];
  for (int64_t gg = 0; gg < g.G; gg++) {
    // wp[ob][o][lane] = w[(g·Cog + o)·Cig + i][k] for o' = ob·RO + lane = k·Cig + i.
    for (int ob = 0; ob < nob; ob++)
      for (int64_t o = 0; o < Cog; o++)
        for (int l = 0; l < RO; l++) {
          int64_t op = static_cast<int64_t>(ob) * RO + l;
          float v = 0.f;
          if (op < coutP) {
            int64_t k = op / Cig, i = op % Cig;
            v = w[((gg * Cog + o) * Cig + i) * K3 + k];
          }
          wp[(static_cast<size_t>(ob) * Cog + o) * RO + l] = v;
        }
    for (int64_t n = 0; n < g.N; n++) {
      const float* dyg = dy + (n * g.Cout + gg * Cog) * outVol;
      float* dxg = dx + (n * g.Cin + gg * Cig) * inVol;
      ThreadScratch& scratch = sharedScratch();
      ThreadPtrs& ptrs = sharedPtrs();
      parallelFor(static_cast<int64_t>(Qd) * Qh, 1, [&](int64_t b, int64_t e, int tid) {
        float* panel = scratch.get(tid, static_cast<size_t>(nrows) * lw + static_cast<size_t>(nob) * qwPad * RO);
        float* tile = panel + static_cast<size_t>(nrows) * lw;
        for (int64_t row = b; row < e; row++) {
          int qd = static_cast<int>(row / Qh), qh = static_cast<int>(row % Qh);
          const float** tab = ptrs.get(tid, nrows);
          for (int o = 0; o < nrows; o++) {
            float* pr = panel + static_cast<size_t>(o) * lw;
            tab[o] = pr;
            std::memcpy(pr, dyg + o * outVol + (static_cast<int64_t>(qd) * Qh + qh) * Qw, sizeof(float) * Qw);
            if (lw > Qw) std::memset(pr + Qw, 0, sizeof(float) * (lw - Qw));
          }
          for (int ob = 0; ob < nob; ob++)
            isa->denseFwdRows(rov, tab, 1, wp.get() + static_cast<size_t>(ob) * Cog * RO, nrows, 1, 1, qwPad,
                              tile + static_cast<size_t>(ob) * qwPad * RO, 0, DensePrefetch{});
          // Every dx row (i, rd, rh) is written once, front to back, with its s2 taps interleaved: streaming
          // stores instead of s2 strided passes over the same cache lines.
          const int s2 = g.s[2];
          for (int64_t i = 0; i < Cig; i++) {
            const float bv = bias ? bias[gg * Cig + i] : 0.f;
            for (int rd = 0; rd < g.k[0]; rd++)
              for (int rh = 0; rh < g.k[1]; rh++) {
                float* dr = dxg + i * inVol + (static_cast<int64_t>(qd * g.s[0] + rd) * outH + qh * g.s[1] + rh) * outW;
                const float* src[8];
                for (int rw = 0; rw < s2 && rw < 8; rw++) {
                  const int64_t op = ((rd * g.k[1] + rh) * g.k[2] + rw) * Cig + i;
                  src[rw] = tile + static_cast<size_t>(op / RO) * qwPad * RO + op % RO;
                }
                if (s2 <= 8) {
                  for (int q = 0; q < Qw; q++)
                    for (int rw = 0; rw < s2; rw++) dr[q * s2 + rw] = bias ? src[rw][q * RO] + bv : src[rw][q * RO];
                } else {
                  for (int rw = 0; rw < s2; rw++) {
                    const int64_t op = ((rd * g.k[1] + rh) * g.k[2] + rw) * Cig + i;
                    const float* t = tile + static_cast<size_t>(op / RO) * qwPad * RO + op % RO;
                    for (int q = 0; q < Qw; q++) dr[q * s2 + rw] = bias ? t[q * RO] + bv : t[q * RO];
                  }
                }
              }
          }
        }
      });
    }
  }
}

}  // namespace

const char* convIsaName() { return pickIsa()->name; }

// ---------------- few output positions: im2col + GEMM ----------------
// Convolutions whose output has only a few dozen positions (the bottlenecks at 3³ and 6×3×3, where the
// weights are tens of megabytes): the direct kernel computes half-empty register tiles (3 positions per
// row) and first repacks every weight, which costs more than the product. Here y[o][p] = Σ_r w[o][r] ·
// col[r][p] with r = (i, tap), so the weights are read once, in place, by the GEMM (a colᵀ layout through
// the GEMM's dot path was slower: 21 against 15 ms for 768->1536 k3 s2 at 6×3×3); grad input is
// dcolᵀ = dyᵀ·w scattered back (col2im). UXNET_CONV_FEW_POSITIONS (default 128; 0 turns it off, which
// native-isa.test uses to keep the direct kernels covered on small shapes) is the largest output volume.
int64_t fewPositionsLimit() {
  static const int64_t v = [] {
    const char* e = std::getenv("UXNET_CONV_FEW_POSITIONS");
    return e && *e ? static_cast<int64_t>(std::atoll(e)) : int64_t{128};
  }();
  return v;
}

bool isFewPositions(const ConvGeom& g) {
  const int64_t outVol = static_cast<int64_t>(g.out[0]) * g.out[1] * g.out[2];
  return g.G == 1 && outVol <= fewPositionsLimit() && g.Cin * g.k[0] * g.k[1] * g.k[2] * outVol <= (int64_t{1} << 26);
}

// For input channel i, calls f(tap, p, inputIndex) for every (tap, output position) whose input position
// lies inside the volume (inputIndex within the channel), taps and positions in row-major order.
template <typename F>
void forEachColEntry(const ConvGeom& g, F f) {
  int64_t tap = 0;
  for (int kd = 0; kd < g.k[0]; kd++)
    for (int kh = 0; kh < g.k[1]; kh++)
      for (int kw = 0; kw < g.k[2]; kw++, tap++) {
        int64_t p = 0;
        for (int od = 0; od < g.out[0]; od++) {
          const int id = od * g.s[0] + kd - g.p[0];
          for (int oh = 0; oh < g.out[1]; oh++) {
            const int ih = oh * g.s[1] + kh - g.p[1];
            const bool rowIn = id >= 0 && id < g.in[0] && ih >= 0 && ih < g.in[1];
            const int64_t row = rowIn ? (static_cast<int64_t>(id) * g.in[1] + ih) * g.in[2] : 0;
            for (int ow = 0; ow < g.out[2]; ow++, p++) {
              const int iw = ow * g.s[2] + kw - g.p[2];
              if (rowIn && iw >= 0 && iw < g.in[2]) f(tap, p, row + iw);
            }
          }
        }
      }
}

void fewPositionsForward(const float* x, const float* w, const float* bias, const ConvGeom& g, float* y) {
  const int64_t K3 = static_cast<int64_t>(g.k[0]) * g.k[1] * g.k[2];
  const int64_t inVol = static_cast<int64_t>(g.in[0]) * g.in[1] * g.in[2];
  const int64_t P = static_cast<int64_t>(g.out[0]) * g.out[1] * g.out[2];
  Scratch<float> col(static_cast<size_t>(g.Cin * K3 * P));
  for (int64_t n = 0; n < g.N; n++) {
    const float* xn = x + n * g.Cin * inVol;
    // col[(i·K3 + tap)·P + p] = x[i] at output p's input position for this tap, 0 in the padding
    parallelFor(g.Cin, 4, [&](int64_t i0, int64_t i1, int) {
      for (int64_t i = i0; i < i1; i++) {
        float* c = col.get() + i * K3 * P;
        const float* xi = xn + i * inVol;
        std::memset(c, 0, sizeof(float) * K3 * P);
        forEachColEntry(g, [&](int64_t tap, int64_t p, int64_t src) { c[tap * P + p] = xi[src]; });
      }
    });
    float* yn = y + n * g.Cout * P;
    gemmBatched(w, col.get(), nullptr, yn, 1, g.Cout, P, g.Cin * K3, false, false, false);
    if (bias)
      for (int64_t o = 0; o < g.Cout; o++)
        for (int64_t p = 0; p < P; p++) yn[o * P + p] += bias[o];
  }
}

void fewPositionsGradInput(const float* dy, const float* w, const ConvGeom& g, float* dx) {
  const int64_t K3 = static_cast<int64_t>(g.k[0]) * g.k[1] * g.k[2];
  const int64_t inVol = static_cast<int64_t>(g.in[0]) * g.in[1] * g.in[2];
  const int64_t P = static_cast<int64_t>(g.out[0]) * g.out[1] * g.out[2];
  const int64_t R = g.Cin * K3;
  Scratch<float> col(static_cast<size_t>(R * P));
  for (int64_t n = 0; n < g.N; n++) {
    // dcolᵀ [P × R] = dy[n]ᵀ · w: the weights [Cout × R] are the GEMM's row-major B, copied into panels in
    // row pieces. (As dcol = wᵀ · dy they were the transposed A, packed 12 floats per weight row at a time:
    // about 130 GFLOP/s against 160 this way for nnFormer's 768->1536 k2 ConvTranspose at 6×3×3.)
    gemmBatched(dy + n * g.Cout * P, w, nullptr, col.get(), 1, P, R, g.Cout, true, false, false);
    float* dxn = dx + n * g.Cin * inVol;
    parallelFor(g.Cin, 4, [&](int64_t i0, int64_t i1, int) {
      for (int64_t i = i0; i < i1; i++) {
        float* di = dxn + i * inVol;
        std::memset(di, 0, sizeof(float) * inVol);
        const float* c = col.get() + i * K3;
        forEachColEntry(g, [&](int64_t tap, int64_t p, int64_t dst) { di[dst] += c[p * R + tap]; });
      }
    });
  }
}

void convForward(const float* x, const float* w, const float* bias, const ConvGeom& g, float* y, WeightKey wk) {
  convForwardChans(x, nullptr, w, bias, g, y, wk, nullptr);
}

void convForwardConcat(const float* const* parts, const int64_t* partC, int nParts, const float* w, const float* bias,
                       const ConvGeom& g, float* y, WeightKey wk, const ConvEpilogue* ep) {
  if (nParts == 1) return convForwardChans(parts[0], nullptr, w, bias, g, y, wk, ep);
  const int64_t S = static_cast<int64_t>(g.in[0]) * g.in[1] * g.in[2];
  std::vector<const float*> chans(static_cast<size_t>(g.N * g.Cin));
  for (int64_t n = 0, k = 0; n < g.N; n++)
    for (int j = 0; j < nParts; j++)
      for (int64_t c = 0; c < partC[j]; c++) chans[k++] = parts[j] + (n * partC[j] + c) * S;
  convForwardChans(nullptr, chans.data(), w, bias, g, y, wk, ep);
}

// x [N, Cin, ...] contiguous, or (x null) `chans` with the base of every (n, c) channel. Only the dense
// direct path reads channels in place; the other paths get a gathered copy.
void convForwardChans(const float* x, const float* const* chans, const float* w, const float* bias, const ConvGeom& g, float* y,
                      WeightKey wk, const ConvEpilogue* ep) {
  const IsaCores* isa = pickIsa();
  const bool direct = !isDepthwise(g) && !isGroupedPointwise(g) && !winogradApplies(g) && !isFewPositions(g) && g.G == 1;
  if (chans && !direct) {
    const int64_t S = static_cast<int64_t>(g.in[0]) * g.in[1] * g.in[2];
    Scratch<float> xs(static_cast<size_t>(g.N * g.Cin * S));
    for (int64_t k = 0; k < g.N * g.Cin; k++) std::memcpy(xs.get() + k * S, chans[k], sizeof(float) * S);
    convForwardChans(xs.get(), nullptr, w, bias, g, y, wk, ep);
    return;
  }
  if (ep && !direct) {  // the other paths: the epilogue in a second pass (the same float arithmetic)
    convForwardChans(x, nullptr, w, bias, g, y, wk, nullptr);
    const int64_t vol = static_cast<int64_t>(g.out[0]) * g.out[1] * g.out[2];
    parallelFor(g.N * g.Cout, 1, [&](int64_t lo, int64_t hi, int) {
      for (int64_t nc = lo; nc < hi; nc++) epilogueRow(y + nc * vol, ep->res ? ep->res + nc * vol : nullptr, vol, 1, nc % g.Cout, *ep);
    });
    return;
  }
  if (isDepthwise(g)) {
    int T[3] = {g.k[0], g.k[1], g.k[2]}, off[3] = {-g.p[0], -g.p[1], -g.p[2]};
    depthwiseRun(isa, x, g.in, w, bias, g.N, g.Cin, T, off, g.out, y);
    return;
  }
  const int64_t Cig = g.Cin / g.G, Cog = g.Cout / g.G;
  const int64_t S = static_cast<int64_t>(g.in[0]) * g.in[1] * g.in[2];
  if (isGroupedPointwise(g)) {
    groupedPointwise(x, Cig, w, Cig, 1, Cog * Cig, bias, g.N, g.G, Cog, S, y);
    return;
  }
  if (winogradApplies(g)) {  // dense 3×3×3 stride 1 (winograd.cc); weights cached like the packed ones
    const float* u = packedWeights(wk, 3, winogradPackSize(g), [&](float* dst) { winogradPackWeights(w, g, dst); });
    winogradForward(x, u, bias, g, y);
    return;
  }
  if (isFewPositions(g)) {
    fewPositionsForward(x, w, bias, g, y);
    return;
  }
  DimMap m[3];
  for (int d = 0; d < 3; d++) m[d] = forwardMap(g.k[d], g.s[d], g.p[d], g.in[d], g.out[d]);
  const int rov = chooseRov(isa, Cog);
  const int RO = rov * isa->vw;
  const int64_t K3 = static_cast<int64_t>(g.k[0]) * g.k[1] * g.k[2];
  const int64_t inVol = S, outVol = static_cast<int64_t>(g.out[0]) * g.out[1] * g.out[2];
  const size_t packN = static_cast<size_t>((Cog + RO - 1) / RO) * RO * Cig * K3;
  // Per sample: the epilogue's residual at that sample (direct path: G == 1 whenever ep is set).
  std::vector<ConvEpilogue> epn(ep ? static_cast<size_t>(g.N) : 0);
  for (size_t n = 0; n < epn.size(); n++) {
    epn[n] = *ep;
    if (ep->res) epn[n].res = ep->res + static_cast<int64_t>(n) * g.Cout * outVol;
  }
  for (int64_t gg = 0; gg < g.G; gg++) {
    const float* wp = packedWeights(g.G == 1 ? wk : WeightKey{}, (static_cast<uint64_t>(RO) << 8) | 1, packN, [&](float* dst) {
      packWeights(w + gg * Cog * Cig * K3, Cig * K3, K3, static_cast<int>(Cog), static_cast<int>(Cig), m, g.k[1], g.k[2], RO, dst);
    });
    for (int64_t n = 0; n < g.N; n++)
      denseCore(isa, rov, chans ? nullptr : x + (n * g.Cin + gg * Cig) * inVol, static_cast<int>(Cig), g.in, wp, static_cast<int>(Cog),
                m, bias ? bias + gg * Cog : nullptr, y + (n * g.Cout + gg * Cog) * outVol, g.out, chans ? chans + n * g.Cin : nullptr,
                ep ? &epn[n] : nullptr);
  }
}

void convGradInput(const float* dy, const float* w, const ConvGeom& g, float* dx, WeightKey wk, const float* bias) {
  const IsaCores* isa = pickIsa();
  // Only the patch path below adds the bias itself (and only when every dx voxel gets a tap).
  const bool covered = g.out[0] * g.s[0] == g.in[0] && g.out[1] * g.s[1] == g.in[1] && g.out[2] * g.s[2] == g.in[2];
  const bool patch = !isDepthwise(g) && !isGroupedPointwise(g) && !(g.G == 1 && winogradApplies(winogradGradInputGeom(g))) &&
                     !isFewPositions(g) && isPatchTransposed(g);
  if (bias && !(patch && covered)) {  // other paths: the bias in a second pass (same float additions)
    convGradInput(dy, w, g, dx, wk, nullptr);
    const int64_t vol = static_cast<int64_t>(g.in[0]) * g.in[1] * g.in[2];
    parallelFor(g.N * g.Cin, 1, [&](int64_t lo, int64_t hi, int) {
      for (int64_t nc = lo; nc < hi; nc++) {
        float* p = dx + nc * vol;
        const float b = bias[nc % g.Cin];
        for (int64_t v = 0; v < vol; v++) p[v] = p[v] + b;
      }
    });
    return;
  }
  const int64_t Cig = g.Cin / g.G, Cog = g.Cout / g.G;
  const int64_t K3 = static_cast<int64_t>(g.k[0]) * g.k[1] * g.k[2];
  const int64_t inVol = static_cast<int64_t>(g.in[0]) * g.in[1] * g.in[2];
  const int64_t outVol = static_cast<int64_t>(g.out[0]) * g.out[1] * g.out[2];
  if (isDepthwise(g)) {
    // Stride 1: correlation of dy with the flipped kernel.
    Scratch<float> wf(static_cast<size_t>(g.Cin * K3));
    for (int64_t c = 0; c < g.Cin; c++)
      for (int64_t k = 0; k < K3; k++) wf[c * K3 + k] = w[c * K3 + (K3 - 1 - k)];
    int T[3] = {g.k[0], g.k[1], g.k[2]};
    int off[3] = {g.p[0] - (g.k[0] - 1), g.p[1] - (g.k[1] - 1), g.p[2] - (g.k[2] - 1)};
    depthwiseRun(isa, dy, g.out, wf.get(), nullptr, g.N, g.Cin, T, off, g.in, dx);
    return;
  }
  if (isGroupedPointwise(g)) {
    // dx[g·Cig + i] = Σ_o w[(g·Cog + o)·Cig + i] · dy[g·Cog + o]
    groupedPointwise(dy, Cog, w, 1, Cig, Cog * Cig, nullptr, g.N, g.G, Cig, inVol, dx);
    return;
  }
  if (g.G == 1 && winogradApplies(winogradGradInputGeom(g))) {  // dx = conv(dy, flipped wᵀ), see winograd.h
    const ConvGeom t = winogradGradInputGeom(g);
    const float* u = packedWeights(wk, 4, winogradPackSize(t), [&](float* dst) { winogradPackGradInputWeights(w, g, dst); });
    winogradForward(dy, u, nullptr, t, dx);
    return;
  }
  if (isFewPositions(g)) {
    fewPositionsGradInput(dy, w, g, dx);
    return;
  }
  if (isPatchTransposed(g)) {
    patchTransposed(isa, dy, w, bias, g, dx);
    return;
  }
  bool anyStride = g.s[0] > 1 || g.s[1] > 1 || g.s[2] > 1;
  if (anyStride) std::memset(dx, 0, sizeof(float) * g.N * g.Cin * inVol);  // phases without taps stay zero
  const int rov = chooseRov(isa, Cig);
  const int RO = rov * isa->vw;
  const size_t packN = static_cast<size_t>((Cig + RO - 1) / RO) * RO * Cog * K3;
  for (int rd = 0; rd < g.s[0]; rd++)
    for (int rh = 0; rh < g.s[1]; rh++)
      for (int rw = 0; rw < g.s[2]; rw++) {
        DimMap m[3] = {phaseMap(g.k[0], g.s[0], g.p[0], g.in[0], g.out[0], rd), phaseMap(g.k[1], g.s[1], g.p[1], g.in[1], g.out[1], rh),
                       phaseMap(g.k[2], g.s[2], g.p[2], g.in[2], g.out[2], rw)};
        if (m[0].Q == 0 || m[1].Q == 0 || m[2].Q == 0) continue;
        if (m[0].T == 0 || m[1].T == 0 || m[2].T == 0) continue;  // zeros (already cleared)
        for (int64_t gg = 0; gg < g.G; gg++) {
          // Transposed weight: output channel i (of dx), input channel o (of dy).
          const uint64_t geo = static_cast<uint64_t>(g.s[0] | g.s[1] << 5 | g.s[2] << 10 | g.p[0] << 15 | g.p[1] << 20 | g.p[2] << 25);
          const uint64_t layout = (geo << 32) | (static_cast<uint64_t>(RO) << 16) | (static_cast<uint64_t>((rd * g.s[1] + rh) * g.s[2] + rw) << 2) | 2;
          const float* wp = packedWeights(g.G == 1 ? wk : WeightKey{}, layout, packN, [&](float* dst) {
            packWeights(w + gg * Cog * Cig * K3, K3, Cig * K3, static_cast<int>(Cig), static_cast<int>(Cog), m, g.k[1], g.k[2], RO, dst);
          });
          for (int64_t n = 0; n < g.N; n++)
            denseCore(isa, rov, dy + (n * g.Cout + gg * Cog) * outVol, static_cast<int>(Cog), g.out, wp, static_cast<int>(Cig), m,
                      nullptr, dx + (n * g.Cin + gg * Cig) * inVol, g.in);
        }
      }
}

void convGradWeight(const float* x, const float* dy, const ConvGeom& g, float* dw) {
  const IsaCores* isa = pickIsa();
  const int64_t Cig = g.Cin / g.G, Cog = g.Cout / g.G;
  const int64_t K3 = static_cast<int64_t>(g.k[0]) * g.k[1] * g.k[2];
  const int64_t inVol = static_cast<int64_t>(g.in[0]) * g.in[1] * g.in[2];
  const int64_t outVol = static_cast<int64_t>(g.out[0]) * g.out[1] * g.out[2];
  if (isGroupedPointwise(g)) {
    groupedPointwiseGradWeight(x, dy, g, dw);
    return;
  }
  if (isDepthwise(g)) {
    const int W = isa->vw;
    const int Qd = g.out[0], Qh = g.out[1], Qw = g.out[2];
    const int qwp = roundUp(Qw, W);
    const int dp = Qd + g.k[0] - 1, hp = Qh + g.k[1] - 1, lw = qwp + g.k[2] - 1 + W;
    int off[3] = {-g.p[0], -g.p[1], -g.p[2]};
    ThreadScratch& scratch = sharedScratch();
    parallelFor(g.Cin, 1, [&](int64_t lo, int64_t hi, int tid) {
      float* xp = scratch.get(tid, static_cast<size_t>(dp) * hp * lw + static_cast<size_t>(Qd) * Qh * qwp);
      float* dyp = xp + static_cast<size_t>(dp) * hp * lw;
      std::vector<double> acc(K3);
      for (int64_t c = lo; c < hi; c++) {
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t n = 0; n < g.N; n++) {
          buildDwPad(x + (n * g.Cin + c) * inVol, g.in, off, dp, hp, lw, xp);
          const float* gc = dy + (n * g.Cout + c) * outVol;
          for (int64_t r = 0; r < static_cast<int64_t>(Qd) * Qh; r++) {
            std::memcpy(dyp + r * qwp, gc + r * Qw, sizeof(float) * Qw);
            std::memset(dyp + r * qwp + Qw, 0, sizeof(float) * (qwp - Qw));
          }
          isa->dwGwChannel(xp, hp, lw, dyp, Qd, Qh, qwp, g.k[0], g.k[1], g.k[2], acc.data());
        }
        for (int64_t k = 0; k < K3; k++) dw[c * K3 + k] = static_cast<float>(acc[k]);
      }
    });
    return;
  }
  if (g.k[2] > 7) {
    naiveGradWeight(x, dy, g, dw);
    return;
  }
  DimMap m[3];
  for (int d = 0; d < 3; d++) m[d] = forwardMap(g.k[d], g.s[d], g.p[d], g.in[d], g.out[d]);
  const int rov = chooseRov(isa, Cog);
  const int RO = rov * isa->vw;
  const int nob = static_cast<int>((Cog + RO - 1) / RO);
  const int cic = static_cast<int>(std::min<int64_t>(Cig, 16));
  const int nic = static_cast<int>((Cig + cic - 1) / cic);
  const int Qd = g.out[0], Qh = g.out[1], Qw = g.out[2];
  const int Td = g.k[0], Th = g.k[1], Tw = g.k[2], tdh = Td * Th;
  const int lw = (Qw - 1) * g.s[2] + Tw;
  const int64_t base = static_cast<int64_t>(g.G) * nob * nic;
  const int nt = numThreads();
  int nsplit = 1;
  if (base < 2 * nt) nsplit = static_cast<int>(std::min<int64_t>(Qd, (2 * nt + base - 1) / base));
  const int64_t accLen = static_cast<int64_t>(cic) * tdh * Tw * RO;  // [i][ud·uh][uw][RO]
  std::vector<double> partial;
  if (nsplit > 1) partial.assign(static_cast<size_t>(nsplit) * g.G * nob * nic * accLen, 0.0);
  // With stride 1 along w, several short output rows are laid end to end (each input row segment `lw`
  // long, dy zero beyond Qw) so the micro-kernel's register accumulators span many positions.
  const bool merge = m[2].sin == 1;
  const int R = merge ? std::max(1, std::min(Qh * Qd, 96 / lw)) : 1;
  const int rowLen = merge ? R * lw + Tw : lw;
  ThreadScratch& scratch = sharedScratch();
  parallelFor(base * nsplit, 1, [&](int64_t lo, int64_t hi, int tid) {
    const size_t panelLen = static_cast<size_t>(cic) * tdh * rowLen;
    const size_t dyTLen = static_cast<size_t>(merge ? R * lw : Qw) * RO;
    float* panel = scratch.get(tid, panelLen + dyTLen + accLen + accLen * 2);
    float* dyT = panel + panelLen;
    float* accF = dyT + dyTLen;
    double* accD = reinterpret_cast<double*>(accF + accLen);
    for (int64_t it = lo; it < hi; it++) {
      int split = static_cast<int>(it % nsplit);
      int64_t item = it / nsplit;
      int ic = static_cast<int>(item % nic), ob = static_cast<int>((item / nic) % nob);
      int64_t gg = item / (static_cast<int64_t>(nic) * nob);
      int i0 = ic * cic, ni = static_cast<int>(std::min<int64_t>(cic, Cig - i0));
      int o0 = ob * RO, no = static_cast<int>(std::min<int64_t>(RO, Cog - o0));
      int d0 = static_cast<int>(static_cast<int64_t>(Qd) * split / nsplit), d1 = static_cast<int>(static_cast<int64_t>(Qd) * (split + 1) / nsplit);
      std::fill(accD, accD + accLen, 0.0);
      for (int64_t n = 0; n < g.N; n++) {
        const float* xg = x + (n * g.Cin + gg * Cig + i0) * inVol;
        const float* dg = dy + (n * g.Cout + gg * Cog + o0) * outVol;
        const int64_t rEnd = static_cast<int64_t>(d1) * Qh;
        int sinceFlush = 0;
        std::fill(accF, accF + accLen, 0.f);
        for (int64_t r0 = static_cast<int64_t>(d0) * Qh; r0 < rEnd; r0 += R) {
          const int nr = static_cast<int>(std::min<int64_t>(R, rEnd - r0));
          for (int i = 0; i < ni; i++)
            for (int ud = 0; ud < Td; ud++)
              for (int uh = 0; uh < Th; uh++) {
                float* pr = panel + ((static_cast<size_t>(i) * Td + ud) * Th + uh) * rowLen;
                for (int k = 0; k < nr; k++) {
                  int qd = static_cast<int>((r0 + k) / Qh), qh = static_cast<int>((r0 + k) % Qh);
                  fillRow(xg + i * inVol, g.in, qd * m[0].sin + ud + m[0].off, qh * m[1].sin + uh + m[1].off, m[2].off, lw, pr + k * lw);
                }
                if (rowLen > nr * lw) std::memset(pr + nr * lw, 0, sizeof(float) * (rowLen - nr * lw));
              }
          const int seg = merge ? lw : Qw;
          const int npos = (nr - 1) * seg + Qw;
          for (int k = 0; k < nr; k++) {
            float* t = dyT + static_cast<size_t>(k) * seg * RO;
            isa->denseLoadTileT(dg + (r0 + k) * Qw, outVol, no, Qw, t, RO);
            if (seg > Qw) std::memset(t + static_cast<size_t>(Qw) * RO, 0, sizeof(float) * (seg - Qw) * RO);
          }
          isa->denseGwRow(rov, Tw, panel, ni, tdh, rowLen, m[2].sin, dyT, npos, accF);
          sinceFlush += nr;
          if (sinceFlush >= Qh || r0 + R >= rEnd) {
            for (int64_t k = 0; k < accLen; k++) accD[k] += accF[k];
            std::fill(accF, accF + accLen, 0.f);
            sinceFlush = 0;
          }
        }
      }
      if (nsplit > 1) {
        double* dst = partial.data() + (static_cast<size_t>(split) * base + item) * accLen;
        std::copy(accD, accD + accLen, dst);
      } else {
        for (int i = 0; i < ni; i++)
          for (int t = 0; t < tdh; t++)
            for (int u = 0; u < Tw; u++)
              for (int l = 0; l < no; l++)
                dw[((gg * Cog + o0 + l) * Cig + i0 + i) * K3 + t * Tw + u] = static_cast<float>(accD[((static_cast<int64_t>(i) * tdh + t) * Tw + u) * RO + l]);
      }
    }
  });
  if (nsplit > 1) {
    for (int64_t item = 0; item < base; item++) {
      int ic = static_cast<int>(item % nic), ob = static_cast<int>((item / nic) % nob);
      int64_t gg = item / (static_cast<int64_t>(nic) * nob);
      int i0 = ic * cic, ni = static_cast<int>(std::min<int64_t>(cic, Cig - i0));
      int o0 = ob * RO, no = static_cast<int>(std::min<int64_t>(RO, Cog - o0));
      for (int i = 0; i < ni; i++)
        for (int t = 0; t < tdh; t++)
          for (int u = 0; u < Tw; u++)
            for (int l = 0; l < no; l++) {
              int64_t k = ((static_cast<int64_t>(i) * tdh + t) * Tw + u) * RO + l;
              double s = 0;
              for (int sp = 0; sp < nsplit; sp++) s += partial[(static_cast<size_t>(sp) * base + item) * accLen + k];
              dw[((gg * Cog + o0 + l) * Cig + i0 + i) * K3 + t * Tw + u] = static_cast<float>(s);
            }
    }
  }
}

}  // namespace ux
