// N-API surface of the native backend. Every kernel call validates nothing (the TypeScript side has
// checked shapes), enqueues a task on the in-order executor and returns output handles at once; the
// contents are pending until the task has run. readSync blocks until the producing task is done,
// read resolves a Promise from the executor via a thread-safe function.
#include <napi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "attention.h"
#include "conv.h"
#include "gemm.h"
#include "layout.h"
#include "norm_act.h"
#include "kernels.h"
#include "runtime.h"

namespace ux {
namespace {

struct Holder {
  BufP buf;
};

struct EnvData {
  Napi::ThreadSafeFunction tsfn;
  int pending = 0;
};

int gEnvCount = 0;

BufP getBuf(const Napi::Value& v) {
  if (!v.IsExternal()) throw Napi::TypeError::New(v.Env(), "uxnet native: expected a storage handle");
  Holder* h = v.As<Napi::External<Holder>>().Data();
  if (!h->buf) throw Napi::Error::New(v.Env(), "uxnet native: storage handle used after free");
  return h->buf;
}

Napi::Value wrap(Napi::Env env, BufP b) {
  return Napi::External<Holder>::New(env, new Holder{std::move(b)}, [](Napi::Env, Holder* h) { delete h; });
}

void throwPendingError(Napi::Env env) {
  std::string e = takeError();
  if (!e.empty()) throw Napi::Error::New(env, "uxnet native: " + e);
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("isa", convIsaName());
  o.Set("threads", numThreads());
  return o;
}

// Allocation counters of the mapping cache (native/runtime.h MemStats); numbers are exact below 2^53.
Napi::Value MemStatsJs(const Napi::CallbackInfo& info) {
  MemStats s = memStats();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("hits", static_cast<double>(s.hits));
  o.Set("grows", static_cast<double>(s.grows));
  o.Set("misses", static_cast<double>(s.misses));
  o.Set("reusedBytes", static_cast<double>(s.reusedBytes));
  o.Set("freshBytes", static_cast<double>(s.freshBytes));
  o.Set("liveBytes", static_cast<double>(s.live));
  o.Set("peakLiveBytes", static_cast<double>(s.peakLive));
  o.Set("cachedBytes", static_cast<double>(s.cached));
  return o;
}

Napi::Value Upload(const Napi::CallbackInfo& info) {
  Napi::Float32Array a = info[0].As<Napi::Float32Array>();
  auto b = std::make_shared<Buf>(a.ElementLength());
  std::memcpy(b->alloc(), a.Data(), a.ElementLength() * sizeof(float));
  return wrap(info.Env(), b);
}

Napi::Value Zeros(const Napi::CallbackInfo& info) {
  auto b = std::make_shared<Buf>(static_cast<size_t>(info[0].As<Napi::Number>().Int64Value()));
  b->allocZero();
  return wrap(info.Env(), b);
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  if (!info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "uxnet native: expected a storage handle");
  Holder* h = info[0].As<Napi::External<Holder>>().Data();
  h->buf.reset();
  return info.Env().Undefined();
}

Napi::Value ReadSync(const Napi::CallbackInfo& info) {
  BufP b = getBuf(info[0]);
  size_t n = static_cast<size_t>(info[1].As<Napi::Number>().Int64Value());
  waitFor(b->lastWrite.load());
  throwPendingError(info.Env());
  if (n > b->size()) n = b->size();
  Napi::Float32Array out = Napi::Float32Array::New(info.Env(), n);
  if (n) std::memcpy(out.Data(), b->allocZero(), n * sizeof(float));
  return out;
}

struct ReadReq {
  BufP buf;
  size_t n;
  Napi::Promise::Deferred deferred;
};

Napi::Value Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BufP b = getBuf(info[0]);
  size_t n = static_cast<size_t>(info[1].As<Napi::Number>().Int64Value());
  EnvData* ed = env.GetInstanceData<EnvData>();
  auto* req = new ReadReq{b, n, Napi::Promise::Deferred::New(env)};
  Napi::Promise p = req->deferred.Promise();
  if (ed->pending++ == 0) ed->tsfn.Ref(env);
  Napi::ThreadSafeFunction tsfn = ed->tsfn;
  enqueue([req, tsfn]() mutable {
    napi_status st = tsfn.NonBlockingCall(req, [](Napi::Env env, Napi::Function, ReadReq* r) {
      EnvData* ed = env.GetInstanceData<EnvData>();
      if (--ed->pending == 0) ed->tsfn.Unref(env);
      std::string e = takeError();
      if (!e.empty()) {
        r->deferred.Reject(Napi::Error::New(env, "uxnet native: " + e).Value());
      } else {
        size_t n = r->n < r->buf->size() ? r->n : r->buf->size();
        Napi::Float32Array out = Napi::Float32Array::New(env, n);
        if (n) std::memcpy(out.Data(), r->buf->allocZero(), n * sizeof(float));
        r->deferred.Resolve(out);
      }
      delete r;
    });
    if (st != napi_ok) delete req;  // environment is shutting down
  });
  return p;
}

Napi::Value Write(const Napi::CallbackInfo& info) {
  BufP b = getBuf(info[0]);
  Napi::Float32Array a = info[1].As<Napi::Float32Array>();
  size_t n = a.ElementLength();
  if (n > b->size()) throw Napi::RangeError::New(info.Env(), "uxnet native: write larger than the storage");
  auto data = std::make_shared<std::vector<float>>(a.Data(), a.Data() + n);
  uint64_t seq = enqueue([b, data]() {
    std::memcpy(b->allocZero(), data->data(), data->size() * sizeof(float));
    b->version++;
  });
  b->lastWrite = seq;
  return info.Env().Undefined();
}

// Blocks until every queued task has run (used by benchmarks and tests).
Napi::Value Sync(const Napi::CallbackInfo& info) {
  uint64_t seq = enqueue([] {});
  waitFor(seq);
  throwPendingError(info.Env());
  return info.Env().Undefined();
}

enum Op {
  kConv = 0, kConvGI, kConvGW, kSumToC, kINorm, kINormG, kLNorm, kLNormG, kGeluOp, kGeluG, kLRelu, kLReluG, kAddOp, kScaleOp,
  kMulC, kMulCG, kConcat, kSlice, kSoftmaxOp, kSoftmaxG, kCE, kCEG, kDice, kDiceG, kSumOp, kFillOp, kAdamWOp,
  kMatmul, kStridedCopyOp, kStridedScatterOp, kRollOp, kBroadcastOp, kSumToShapeOp, kGatherRowsOp, kScatterAddRowsOp,
  kAttentionOp, kAttentionGradOp, kGroupNormActOp, kBatchNormActOp, kConvConcatOp, kConvGIBiasOp
};

ConvGeom geomFrom(const std::vector<double>& p) {
  ConvGeom g;
  g.N = static_cast<int64_t>(p[0]), g.Cin = static_cast<int64_t>(p[1]), g.Cout = static_cast<int64_t>(p[2]), g.G = static_cast<int64_t>(p[3]);
  for (int d = 0; d < 3; d++) {
    g.in[d] = static_cast<int>(p[4 + d]);
    g.out[d] = static_cast<int>(p[7 + d]);
    g.k[d] = static_cast<int>(p[10 + d]);
    g.s[d] = static_cast<int>(p[13 + d]);
    g.p[d] = static_cast<int>(p[16 + d]);
  }
  return g;
}

// p = [B, N, M, Cq, Ck, Cv, H, D, qCol, kCol, vCol, nW, qScale, sScale, hasBias, hasMask, ...]
AttnGeom attnFrom(const std::vector<double>& p) {
  AttnGeom g;
  int64_t* f[] = {&g.B, &g.N, &g.M, &g.Cq, &g.Ck, &g.Cv, &g.H, &g.D, &g.qCol, &g.kCol, &g.vCol, &g.nW};
  for (size_t i = 0; i < 12; i++) *f[i] = static_cast<int64_t>(p[i]);
  g.qScale = static_cast<float>(p[12]), g.sScale = static_cast<float>(p[13]);
  return g;
}

std::vector<int64_t> dims(const std::vector<double>& p, int64_t at, int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) v[i] = static_cast<int64_t>(p[at + i]);
  return v;
}

void runOp(int op, const std::vector<BufP>& in, const std::vector<BufP>& out, const std::vector<double>& p) {
  auto I = [&](size_t i) -> const float* { return in[i]->data(); };
  auto O = [&](size_t i) -> float* { return out[i]->alloc(); };
  auto L = [&](size_t i) -> int64_t { return static_cast<int64_t>(p[i]); };
  const char* badTarget = "target value is not a class index in [0, C)";
  switch (op) {
    case kConv: {
      ConvGeom g = geomFrom(p);
      convForward(I(0), I(1), p[19] != 0 ? I(2) : nullptr, g, O(0), WeightKey{in[1]->id, in[1]->version.load()});
      break;
    }
    case kConvGI: convGradInput(I(0), I(1), geomFrom(p), O(0), WeightKey{in[1]->id, in[1]->version.load()}); break;
    case kConvGW: convGradWeight(I(0), I(1), geomFrom(p), O(0)); break;
    case kSumToC: kSumToChannels(I(0), L(0), L(1), L(2), O(0)); break;
    case kINorm: kInstanceNorm(I(0), L(0), L(1), p[2], O(0), O(1)); break;
    case kINormG: kInstanceNormGrad(I(0), I(1), I(2), L(0), L(1), O(0)); break;
    case kLNorm: kLayerNorm(I(0), I(1), I(2), L(0), L(1), L(2), p[3] != 0, p[4], O(0), O(1), O(2)); break;
    case kLNormG: kLayerNormGrad(I(0), I(1), I(2), I(4), L(0), L(1), L(2), p[3] != 0, O(0), O(1), O(2)); break;
    case kGeluOp: kGelu(I(0), L(0), O(0)); break;
    case kGeluG: kGeluGrad(I(0), I(1), L(0), O(0)); break;
    case kLRelu: kLeakyRelu(I(0), L(0), static_cast<float>(p[1]), O(0)); break;
    case kLReluG: kLeakyReluGrad(I(0), I(1), L(0), static_cast<float>(p[1]), O(0)); break;
    case kAddOp: kAdd(I(0), I(1), L(0), O(0)); break;
    case kScaleOp: kScale(I(0), L(0), p[1], O(0)); break;
    case kMulC: kMulChannel(I(0), I(1), L(0), L(1), L(2), O(0)); break;
    case kMulCG: kMulChannelGradScale(I(0), I(1), L(0), L(1), L(2), O(0)); break;
    case kConcat: {
      // p = [N, S, C_0, C_1, ...]
      int64_t N = L(0), S = L(1), Ct = 0;
      for (size_t i = 0; i < in.size(); i++) Ct += L(2 + i);
      float* y = O(0);
      for (int64_t n = 0; n < N; n++) {
        int64_t c0 = 0;
        for (size_t i = 0; i < in.size(); i++) {
          int64_t C = L(2 + i);
          kCopy(I(i) + n * C * S, C * S, y + (n * Ct + c0) * S);
          c0 += C;
        }
      }
      break;
    }
    case kSlice: {
      int64_t N = L(0), C = L(1), S = L(2), a = L(3), b = L(4);
      float* y = O(0);
      for (int64_t n = 0; n < N; n++) kCopy(I(0) + (n * C + a) * S, (b - a) * S, y + n * (b - a) * S);
      break;
    }
    case kSoftmaxOp: kSoftmax(I(0), L(0), L(1), L(2), O(0)); break;
    case kSoftmaxG: kSoftmaxGrad(I(0), I(1), L(0), L(1), L(2), O(0)); break;
    case kCE:
      if (!kCrossEntropy(I(0), I(1), L(0), L(1), L(2), O(0))) throw std::runtime_error(std::string("crossEntropy: ") + badTarget);
      break;
    case kCEG:
      if (!kCrossEntropyGrad(I(0), I(1), I(2), L(0), L(1), L(2), O(0))) throw std::runtime_error(std::string("crossEntropyGrad: ") + badTarget);
      break;
    case kDice:
      if (!kDiceLoss(I(0), I(1), L(0), L(1), L(2), p[3], p[4], O(0), O(1))) throw std::runtime_error(std::string("diceLoss: ") + badTarget);
      break;
    case kDiceG:
      if (!kDiceLossGrad(I(0), I(1), I(2), L(0), L(1), L(2), p[3], p[4], O(0))) throw std::runtime_error(std::string("diceLossGrad: ") + badTarget);
      break;
    case kSumOp: kSum(I(0), L(0), O(0)); break;
    case kFillOp: kFill(I(0), p[1], L(0), O(0)); break;
    case kAdamWOp:
      kAdamW(in[0]->data(), I(1), in[2]->data(), in[3]->data(), L(0), p[1], p[2], p[3], p[4], p[5], L(6));
      in[0]->version++, in[2]->version++, in[3]->version++;
      break;
    case kMatmul: {  // p = [B, M, N, K, transA, transB, bShared, hasBias, gelu?, keepPre?]
      // With gelu: outputs [GELU(y)] or, keeping the pre-activation for the gradient, [GELU(y), y].
      const bool gelu = p.size() > 8 && p[8] != 0, keepPre = gelu && p.size() > 9 && p[9] != 0;
      float* y = keepPre ? O(1) : O(0);
      gemmBatched(I(0), I(1), p[7] != 0 ? I(2) : nullptr, y, L(0), L(1), L(2), L(3), p[4] != 0, p[5] != 0, p[6] != 0, gelu ? O(0) : nullptr);
      break;
    }
    case kStridedCopyOp: {  // p = [rank, shape..., strides..., offset]
      const int64_t r = L(0);
      kStridedCopy(I(0), dims(p, 1, r), dims(p, 1 + r, r), L(1 + 2 * r), O(0));
      break;
    }
    case kStridedScatterOp: {  // p = [rank, x shape..., strides..., offset, y size]
      const int64_t r = L(0);
      kStridedScatter(I(0), dims(p, 1, r), dims(p, 1 + r, r), L(1 + 2 * r), O(0), L(2 + 2 * r));
      break;
    }
    case kRollOp: {  // p = [rank, shape..., shifts...]
      const int64_t r = L(0);
      kRoll(I(0), dims(p, 1, r), dims(p, 1 + r, r), O(0));
      break;
    }
    case kBroadcastOp: {  // p = [op, rank, shape..., a strides..., b strides...]
      const int64_t r = L(1);
      kBroadcastBinary(I(0), I(1), dims(p, 2, r), dims(p, 2 + r, r), dims(p, 2 + 2 * r, r), static_cast<int>(L(0)), O(0));
      break;
    }
    case kSumToShapeOp: {  // p = [rank, x shape..., out strides..., out size]
      const int64_t r = L(0);
      kSumToShape(I(0), dims(p, 1, r), dims(p, 1 + r, r), O(0), L(1 + 2 * r));
      break;
    }
    case kGatherRowsOp: kGatherRows(I(0), I(1), L(0), L(1), O(0)); break;  // p = [n, C]
    case kScatterAddRowsOp: kScatterAddRows(I(0), I(1), L(0), L(1), L(2), O(0)); break;  // p = [n, C, rows]
    case kAttentionOp: {  // inputs q, k, v, [bias], [mask]; outputs out, lse
      const bool hb = p[14] != 0, hm = p[15] != 0;
      attentionForward(I(0), I(1), I(2), hb ? I(3) : nullptr, hm ? I(hb ? 4 : 3) : nullptr, attnFrom(p), O(0), O(1));
      break;
    }
    case kAttentionGradOp: {  // inputs dout, q, k, v, out, lse, [bias], [mask]; p += [share1, share2, needBias]
      const bool hb = p[14] != 0, hm = p[15] != 0;
      const int s1 = static_cast<int>(p[16]), s2 = static_cast<int>(p[17]);
      size_t o = 0;
      float* g[3];
      g[0] = O(o++);
      g[1] = s1 == 1 ? O(o++) : g[0];
      g[2] = s2 == 2 ? O(o++) : g[s2];
      float* db = p[18] != 0 ? O(o) : nullptr;
      attentionBackward(I(0), I(1), I(2), I(3), hb ? I(6) : nullptr, hm ? I(hb ? 7 : 6) : nullptr, I(4), I(5), attnFrom(p), g[0], g[1], g[2], db);
      break;
    }
    case kGroupNormActOp: {  // inputs x, [w], [b]; p = [N, C, S, G, eps, hasW, hasB, relu]
      const bool hw = p[5] != 0, hb = p[6] != 0;
      kGroupNormAct(I(0), hw ? I(1) : nullptr, hb ? I(hw ? 2 : 1) : nullptr, L(0), L(1), L(2), L(3), p[4], p[7] != 0, O(0));
      break;
    }
    case kBatchNormActOp: {  // inputs x, [w], [b], [res]; p = [N, C, S, hasW, hasB, hasRes, relu, inv×C, shift×C]
      const int64_t C = L(1);
      const bool hw = p[3] != 0, hb = p[4] != 0, hr = p[5] != 0;
      std::vector<float> inv(static_cast<size_t>(C)), shift(static_cast<size_t>(C));
      for (int64_t c = 0; c < C; c++) inv[c] = static_cast<float>(p[7 + c]), shift[c] = static_cast<float>(p[7 + C + c]);
      size_t k = 1;
      const float* w = hw ? I(k++) : nullptr;
      const float* b = hb ? I(k++) : nullptr;
      const float* r = hr ? I(k++) : nullptr;
      kBatchNormEvalAct(I(0), inv.data(), shift.data(), w, b, r, L(0), C, L(2), p[6] != 0, O(0));
      break;
    }
    case kConvConcatOp: {
      // inputs x_0..x_{k-1}, w, [bias], [res], [bnW], [bnB];
      // p = [geometry (19), hasBias, k, C_0..C_{k-1}, hasRes, hasBn, relu, hasBnW, hasBnB, inv×Cout, shift×Cout (when hasBn)]
      const int k = static_cast<int>(p[20]);
      const size_t f = 21 + static_cast<size_t>(k);
      const bool hb = p[19] != 0, hr = p[f] != 0, hbn = p[f + 1] != 0;
      std::vector<const float*> parts(static_cast<size_t>(k));
      std::vector<int64_t> partC(static_cast<size_t>(k));
      for (int j = 0; j < k; j++) parts[j] = I(j), partC[j] = L(21 + j);
      size_t at = static_cast<size_t>(k) + 1;
      const float* bias = hb ? I(at++) : nullptr;
      ConvEpilogue ep;
      ep.res = hr ? I(at++) : nullptr;
      ep.relu = p[f + 2] != 0;
      ep.w = p[f + 3] != 0 ? I(at++) : nullptr;
      ep.b = p[f + 4] != 0 ? I(at++) : nullptr;
      const ConvGeom g = geomFrom(p);
      std::vector<float> inv, shift;
      if (hbn) {
        inv.resize(static_cast<size_t>(g.Cout)), shift.resize(static_cast<size_t>(g.Cout));
        for (int64_t c = 0; c < g.Cout; c++) inv[c] = static_cast<float>(p[f + 5 + c]), shift[c] = static_cast<float>(p[f + 5 + g.Cout + c]);
        ep.inv = inv.data(), ep.shift = shift.data();
      }
      const bool any = hr || hbn || ep.relu;
      convForwardConcat(parts.data(), partC.data(), k, I(k), bias, g, O(0), WeightKey{in[k]->id, in[k]->version.load()}, any ? &ep : nullptr);
      break;
    }
    case kConvGIBiasOp:  // inputs dy, w, bias; p = geometry
      convGradInput(I(0), I(1), geomFrom(p), O(0), WeightKey{in[1]->id, in[1]->version.load()}, I(2));
      break;
    default: throw std::runtime_error("unknown op");
  }
}

// ---- UXNET_PROFILE=1: time every kernel on the executor, print a table at exit ----
const char* const kOpNames[] = {"conv3d", "conv3d grad input", "conv3d grad weight", "sum to channels", "instance norm",
                                "instance norm grad", "layer norm", "layer norm grad", "gelu", "gelu grad", "leaky relu",
                                "leaky relu grad", "add", "scale", "mul channel", "mul channel grad", "concat", "slice",
                                "softmax", "softmax grad", "cross entropy", "cross entropy grad", "dice", "dice grad", "sum",
                                "fill", "adamw", "matmul", "strided copy", "strided scatter", "roll", "broadcast binary",
                                "sum to shape", "gather rows", "scatter add rows", "attention", "attention grad",
                                "group norm act", "batch norm act", "conv3d fused", "conv transpose3d +bias"};

struct Profiler {
  bool on = false;
  std::mutex mu;
  struct Entry {
    int64_t calls = 0;
    double secs = 0, flop = 0;
  };
  std::map<std::string, Entry> entries;
  Profiler() {
    const char* v = std::getenv("UXNET_PROFILE");
    on = v && *v && std::strcmp(v, "0") != 0;
  }
};

Profiler& profiler() {
  static Profiler* p = new Profiler();
  return *p;
}

// Convolutions are told apart by geometry (the same layer's calls aggregate); other kernels by name.
void recordOp(int op, const std::vector<double>& p, double secs) {
  std::string key = op >= 0 && op <= kConvGIBiasOp ? kOpNames[op] : "op " + std::to_string(op);
  double flop = 0;
  if (op == kConv || op == kConvGI || op == kConvGW || op == kConvConcatOp || op == kConvGIBiasOp) {
    ConvGeom g = geomFrom(p);
    char buf[160];
    std::snprintf(buf, sizeof buf, " %lld->%lld%s k%dx%dx%d s%d p%d @%dx%dx%d", static_cast<long long>(g.Cin), static_cast<long long>(g.Cout),
                  g.G > 1 ? (" g" + std::to_string(g.G)).c_str() : "", g.k[0], g.k[1], g.k[2], g.s[0], g.p[0], g.out[0], g.out[1], g.out[2]);
    key += buf;
    flop = 2.0 * g.N * g.Cout * (g.Cin / g.G) * g.k[0] * g.k[1] * g.k[2] * static_cast<double>(g.out[0]) * g.out[1] * g.out[2];
  }
  if (op == kMatmul) {
    char buf[96];
    std::snprintf(buf, sizeof buf, " %lldx%lldx%lld%s%s%s", static_cast<long long>(p[1]), static_cast<long long>(p[2]), static_cast<long long>(p[3]),
                  p[4] != 0 ? " tA" : "", p[5] != 0 ? " tB" : "", p.size() > 8 && p[8] != 0 ? " +gelu" : "");
    key += buf;
    flop = 2.0 * p[0] * p[1] * p[2] * p[3];
  }
  if (op == kStridedCopyOp) {  // p = [rank, shape..., strides..., offset]: rows, row length, inner stride
    const int64_t r = static_cast<int64_t>(p[0]);
    double n = 1;
    for (int64_t d = 0; d < r; d++) n *= p[1 + d];
    char buf[96];
    std::snprintf(buf, sizeof buf, " r%lld len%lld s%lld n%.0f", static_cast<long long>(r), static_cast<long long>(p[r]), static_cast<long long>(p[2 * r]), n);
    key += buf;
  }
  if (op == kLNorm || op == kLNormG) {  // p = [outer, C, S, channelsLast, ...]: which layer norms cost what
    char buf[96];
    std::snprintf(buf, sizeof buf, " C%lld %s x%lld", static_cast<long long>(p[1]), p[3] != 0 ? "last" : "first", static_cast<long long>(p[0] * p[2]));
    key += buf;
  }
  if (op == kAttentionOp || op == kAttentionGradOp) {
    char buf[96];
    std::snprintf(buf, sizeof buf, " %lldx%lld d%lld", static_cast<long long>(p[1]), static_cast<long long>(p[2]), static_cast<long long>(p[7]));
    key += buf;
    flop = (op == kAttentionOp ? 4.0 : 10.0) * p[0] * p[6] * p[1] * p[2] * p[7];
  }
  Profiler& pr = profiler();
  std::lock_guard<std::mutex> lk(pr.mu);
  Profiler::Entry& e = pr.entries[key];
  e.calls++, e.secs += secs, e.flop += flop;
}

void printProfile() {
  Profiler& pr = profiler();
  std::lock_guard<std::mutex> lk(pr.mu);
  if (!pr.on || pr.entries.empty()) return;
  std::vector<std::pair<std::string, Profiler::Entry>> rows(pr.entries.begin(), pr.entries.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.secs > b.second.secs; });
  double total = 0;
  int64_t calls = 0;
  for (auto& r : rows) total += r.second.secs, calls += r.second.calls;
  std::fprintf(stderr, "uxnet native profile (UXNET_PROFILE): %lld kernel calls, %.3f s in kernels, %s, %d threads\n",
               static_cast<long long>(calls), total, convIsaName(), numThreads());
  std::fprintf(stderr, "%10s %7s %8s %8s  %s\n", "time s", "%", "calls", "GFLOP/s", "kernel");
  for (size_t i = 0; i < rows.size() && i < 40; i++) {
    const auto& e = rows[i].second;
    char rate[32] = "-";
    if (e.flop > 0 && e.secs > 0) std::snprintf(rate, sizeof rate, "%.0f", e.flop / e.secs / 1e9);
    std::fprintf(stderr, "%10.3f %6.1f%% %8lld %8s  %s\n", e.secs, total > 0 ? 100 * e.secs / total : 0.0, static_cast<long long>(e.calls), rate,
                 rows[i].first.c_str());
  }
  if (rows.size() > 40) std::fprintf(stderr, "(%zu more)\n", rows.size() - 40);
}

// op(code, inputs: handle[], outSizes: number[], params: number[], inPlace: number[]) -> handle[]
Napi::Value RunOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int op = info[0].As<Napi::Number>().Int32Value();
  Napi::Array ins = info[1].As<Napi::Array>();
  Napi::Array outSizes = info[2].As<Napi::Array>();
  Napi::Array params = info[3].As<Napi::Array>();
  std::vector<BufP> in, out;
  for (uint32_t i = 0; i < ins.Length(); i++) in.push_back(getBuf(ins.Get(i)));
  for (uint32_t i = 0; i < outSizes.Length(); i++)
    out.push_back(std::make_shared<Buf>(static_cast<size_t>(outSizes.Get(i).As<Napi::Number>().Int64Value())));
  std::vector<double> p(params.Length());
  for (uint32_t i = 0; i < params.Length(); i++) p[i] = params.Get(i).As<Napi::Number>().DoubleValue();
  std::vector<BufP> written = out;
  if (op == kAdamWOp) written = {in[0], in[2], in[3]};
  uint64_t seq = enqueue([op, in = std::move(in), out, p = std::move(p)]() {
    if (!profiler().on) return runOp(op, in, out, p);
    auto t0 = std::chrono::steady_clock::now();
    runOp(op, in, out, p);
    recordOp(op, p, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  });
  for (auto& b : written) b->lastWrite = seq;
  Napi::Array res = Napi::Array::New(env, out.size());
  for (uint32_t i = 0; i < out.size(); i++) res.Set(i, wrap(env, out[i]));
  return res;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* ed = new EnvData();
  ed->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "uxnet-native-read", 0, 1);
  ed->tsfn.Unref(env);
  env.SetInstanceData<EnvData>(ed);
  gEnvCount++;
  env.AddCleanupHook([ed]() {
    if (--gEnvCount == 0) {
      shutdownRuntime();
      printProfile();
    }
    ed->tsfn.Release();
  });
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("memStats", Napi::Function::New(env, MemStatsJs));
  exports.Set("upload", Napi::Function::New(env, Upload));
  exports.Set("zeros", Napi::Function::New(env, Zeros));
  exports.Set("free", Napi::Function::New(env, Free));
  exports.Set("readSync", Napi::Function::New(env, ReadSync));
  exports.Set("read", Napi::Function::New(env, Read));
  exports.Set("write", Napi::Function::New(env, Write));
  exports.Set("sync", Napi::Function::New(env, Sync));
  exports.Set("op", Napi::Function::New(env, RunOp));
  return exports;
}

}  // namespace
}  // namespace ux

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return ux::Init(env, exports); }
NODE_API_MODULE(uxnet_native, InitModule)
