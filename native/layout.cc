#include "layout.h"

#include <algorithm>
#include <cstring>

#include "runtime.h"

namespace ux {
namespace {

// Rows are all dims but the last; a row's source offset is its index decomposed over the outer dims.
struct Rows {
  int64_t count = 1, len = 1;
  std::vector<int64_t> outer;
  explicit Rows(const std::vector<int64_t>& shape) {
    if (shape.empty()) return;
    len = shape.back();
    outer.assign(shape.begin(), shape.end() - 1);
    for (int64_t d : outer) count *= d;
  }
  // Σ_d i_d·strides[d] for the outer dims of row r.
  int64_t offset(int64_t r, const std::vector<int64_t>& strides) const {
    int64_t off = 0;
    for (int64_t d = static_cast<int64_t>(outer.size()) - 1; d >= 0; d--) {
      const int64_t q = r % outer[d];
      r /= outer[d];
      off += q * strides[d];
    }
    return off;
  }
};

// Walks consecutive rows from row r0, keeping the row's multi-index and its offsets under up to two stride
// sets: one carry per row instead of a division per outer dim per row (window partitions permute 8-D
// views whose rows are a few dozen floats, where the divisions cost more than the copy).
struct RowWalk {
  const Rows& rows;
  const std::vector<int64_t>& s0;
  const std::vector<int64_t>& s1;
  std::vector<int64_t> idx;
  int64_t off0 = 0, off1 = 0;
  RowWalk(const Rows& r, int64_t r0, const std::vector<int64_t>& a, const std::vector<int64_t>& b)
      : rows(r), s0(a), s1(b), idx(r.outer.size(), 0) {
    for (int64_t d = static_cast<int64_t>(idx.size()) - 1; d >= 0; d--) {
      idx[d] = r0 % rows.outer[d];
      r0 /= rows.outer[d];
      off0 += idx[d] * s0[d];
      off1 += idx[d] * s1[d];
    }
  }
  void next() {
    for (int64_t d = static_cast<int64_t>(idx.size()) - 1; d >= 0; d--) {
      off0 += s0[d];
      off1 += s1[d];
      if (++idx[d] < rows.outer[d]) return;
      off0 -= idx[d] * s0[d];
      off1 -= idx[d] * s1[d];
      idx[d] = 0;
    }
  }
};

int64_t grainFor(int64_t len) { return std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(1, len)); }

}  // namespace

namespace {

constexpr int64_t TB = 16;  // transpose tile: TB source-contiguous rows × TB output-contiguous elements

// A permute that swaps the contiguous axis away (channels-last ↔ channels-first around nnFormer's convs):
// the output's last dim reads the source with stride s ≠ 1 while outer dim t reads it contiguously.
// Row by row, every element would come from a different source cache line (16× the traffic); tiles of
// TB × TB read whole lines along t and write whole lines along the last dim.
void transposeCopy(const float* x, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides, int64_t offset, int64_t t, float* y) {
  const int64_t rank = static_cast<int64_t>(shape.size()), len = shape.back(), s = strides.back(), T = shape[t];
  std::vector<int64_t> ost(rank);  // output strides (row-major)
  int64_t acc = 1;
  for (int64_t d = rank - 1; d >= 0; d--) ost[d] = acc, acc *= shape[d];
  std::vector<int64_t> od;  // the outer dims other than t
  int64_t groups = 1;
  for (int64_t d = 0; d + 1 < rank; d++)
    if (d != t) od.push_back(d), groups *= shape[d];
  const int64_t tt = (T + TB - 1) / TB, ot = ost[t];
  parallelFor(groups * tt, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t it = b; it < e; it++) {
      int64_t g = it / tt, src = offset, dst = 0;
      for (int64_t k = static_cast<int64_t>(od.size()) - 1; k >= 0; k--) {
        const int64_t d = od[k], q = g % shape[d];
        g /= shape[d];
        src += q * strides[d], dst += q * ost[d];
      }
      const int64_t t0 = (it % tt) * TB, tn = std::min(TB, T - t0);
      const float* xs = x + src + t0;  // strides[t] == 1
      float* yd = y + dst + t0 * ot;
      for (int64_t j0 = 0; j0 < len; j0 += TB) {
        const int64_t jn = std::min(TB, len - j0);
        for (int64_t a = 0; a < tn; a++)
          for (int64_t j = 0; j < jn; j++) yd[a * ot + j0 + j] = xs[a + (j0 + j) * s];
      }
    }
  });
}

}  // namespace

void kStridedCopy(const float* x, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides, int64_t offset, float* y) {
  Rows rows(shape);
  const int64_t len = rows.len, s = strides.empty() ? 0 : strides.back();
  if (s != 1 && s != 0 && len >= 4) {
    for (int64_t t = static_cast<int64_t>(shape.size()) - 2; t >= 0; t--)
      if (strides[t] == 1 && shape[t] >= 4) return transposeCopy(x, shape, strides, offset, t, y);
  }
  parallelFor(rows.count, grainFor(len), [&](int64_t b, int64_t e, int) {
    for (RowWalk w(rows, b, strides, strides); b < e; b++, w.next()) {
      const int64_t r = b;
      const float* src = x + offset + w.off0;
      float* dst = y + r * len;
      if (s == 1) std::memcpy(dst, src, len * sizeof(float));
      else
        for (int64_t j = 0; j < len; j++) dst[j] = src[j * s];
    }
  });
}

void kStridedScatter(const float* x, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides, int64_t offset, float* y,
                     int64_t ysize) {
  std::memset(y, 0, ysize * sizeof(float));
  Rows rows(shape);
  const int64_t len = rows.len, s = strides.empty() ? 0 : strides.back();
  parallelFor(rows.count, grainFor(len), [&](int64_t b, int64_t e, int) {
    for (RowWalk w(rows, b, strides, strides); b < e; b++, w.next()) {
      const int64_t r = b;
      float* dst = y + offset + w.off0;
      const float* src = x + r * len;
      if (s == 1) std::memcpy(dst, src, len * sizeof(float));
      else
        for (int64_t j = 0; j < len; j++) dst[j * s] = src[j];
    }
  });
}

void kRoll(const float* x, const std::vector<int64_t>& shape, const std::vector<int64_t>& shifts, float* y) {
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (rank == 0) {
    y[0] = x[0];
    return;
  }
  std::vector<int64_t> st(rank);
  int64_t acc = 1;
  for (int64_t d = rank - 1; d >= 0; d--) st[d] = acc, acc *= shape[d];
  Rows rows(shape);
  const int64_t len = rows.len, sh = shifts[rank - 1];
  parallelFor(rows.count, grainFor(len), [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; r++) {
      int64_t rem = r, src = 0;
      for (int64_t d = rank - 2; d >= 0; d--) {
        const int64_t q = rem % shape[d];
        rem /= shape[d];
        src += ((q - shifts[d] + shape[d]) % shape[d]) * st[d];
      }
      // y[j] = x[(j − sh) mod len]: two contiguous runs
      std::memcpy(y + r * len + sh, x + src, (len - sh) * sizeof(float));
      std::memcpy(y + r * len, x + src + len - sh, sh * sizeof(float));
    }
  });
}

void kBroadcastBinary(const float* a, const float* b, const std::vector<int64_t>& shape, const std::vector<int64_t>& sa,
                      const std::vector<int64_t>& sb, int op, float* y) {
  Rows rows(shape);
  const int64_t len = rows.len, la = sa.empty() ? 0 : sa.back(), lb = sb.empty() ? 0 : sb.back();
  parallelFor(rows.count, grainFor(len), [&](int64_t r0, int64_t r1, int) {
    RowWalk w(rows, r0, sa, sb);
    for (int64_t r = r0; r < r1; r++, w.next()) {
      const float* pa = a + w.off0;
      const float* pb = b + w.off1;
      float* py = y + r * len;
      if (la == 1 && lb == 1) {
        if (op == 0) for (int64_t j = 0; j < len; j++) py[j] = pa[j] + pb[j];
        else if (op == 1) for (int64_t j = 0; j < len; j++) py[j] = pa[j] - pb[j];
        else for (int64_t j = 0; j < len; j++) py[j] = pa[j] * pb[j];
      } else if (la == 1 && lb == 0) {
        const float v = pb[0];
        if (op == 0) for (int64_t j = 0; j < len; j++) py[j] = pa[j] + v;
        else if (op == 1) for (int64_t j = 0; j < len; j++) py[j] = pa[j] - v;
        else for (int64_t j = 0; j < len; j++) py[j] = pa[j] * v;
      } else {
        for (int64_t j = 0; j < len; j++) {
          const float u = pa[j * la], v = pb[j * lb];
          py[j] = op == 0 ? u + v : op == 1 ? u - v : u * v;
        }
      }
    }
  });
}

void kSumToShape(const float* x, const std::vector<int64_t>& shape, const std::vector<int64_t>& ostrides, float* y, int64_t ysize) {
  Rows rows(shape);
  const int64_t len = rows.len, ls = ostrides.empty() ? 0 : ostrides.back();
  // A fixed split of the rows into one part per thread, each summed into its own double buffer, then the
  // parts added in order: the result depends on the thread count only, not on scheduling.
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(numThreads(), rows.count));
  std::vector<double> acc(static_cast<size_t>(parts * ysize), 0.0);
  parallelFor(parts, 1, [&](int64_t p0, int64_t p1, int) {
    for (int64_t p = p0; p < p1; p++) {
      double* out = acc.data() + p * ysize;
      const int64_t r0 = rows.count * p / parts, r1 = rows.count * (p + 1) / parts;
      for (int64_t r = r0; r < r1; r++) {
        const float* src = x + r * len;
        double* o = out + rows.offset(r, ostrides);
        if (ls == 1) for (int64_t j = 0; j < len; j++) o[j] += src[j];
        else if (ls == 0) {
          double s = 0;
          for (int64_t j = 0; j < len; j++) s += src[j];
          o[0] += s;
        } else
          for (int64_t j = 0; j < len; j++) o[j * ls] += src[j];
      }
    }
  });
  for (int64_t i = 0; i < ysize; i++) {
    double s = 0;
    for (int64_t p = 0; p < parts; p++) s += acc[p * ysize + i];
    y[i] = static_cast<float>(s);
  }
}

void kGatherRows(const float* table, const float* index, int64_t n, int64_t C, float* y) {
  parallelFor(n, grainFor(C), [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; r++) std::memcpy(y + r * C, table + static_cast<int64_t>(index[r]) * C, C * sizeof(float));
  });
}

void kScatterAddRows(const float* dy, const float* index, int64_t n, int64_t C, int64_t rows, float* y) {
  // Per-row position lists, then each output row sums its own inputs in index order: no write conflicts.
  std::vector<int64_t> offs(rows + 1, 0), pos(n);
  for (int64_t i = 0; i < n; i++) offs[static_cast<int64_t>(index[i]) + 1]++;
  for (int64_t r = 0; r < rows; r++) offs[r + 1] += offs[r];
  std::vector<int64_t> fill(offs.begin(), offs.end() - 1);
  for (int64_t i = 0; i < n; i++) pos[fill[static_cast<int64_t>(index[i])]++] = i;
  parallelFor(rows, grainFor(C * 4), [&](int64_t b, int64_t e, int) {
    std::vector<double> acc(C);
    for (int64_t r = b; r < e; r++) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = offs[r]; j < offs[r + 1]; j++) {
        const float* src = dy + pos[j] * C;
        for (int64_t c = 0; c < C; c++) acc[c] += src[c];
      }
      for (int64_t c = 0; c < C; c++) y[r * C + c] = static_cast<float>(acc[c]);
    }
  });
}

}  // namespace ux
