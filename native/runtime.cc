#include "runtime.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#define UX_HAVE_MMAP 1
#endif

namespace ux {

// Large buffers come straight from mmap (with transparent huge pages where the kernel allows them), so
// that freeing them returns the memory to the OS and zeros() costs nothing until touched. Freed mappings
// are kept in a cache and reused best-fit (see mapGet): reusing them avoids page-fault storms (the kernel
// zero-fills every fresh page, and in a VM each fault costs several microseconds: a quarter of a
// SwinUNETR forward before best-fit reuse). The cache may hold UXNET_CACHE_MB (default 256) plus
// whatever the live buffers are below their high-water mark, so live + cached never exceeds peak live +
// UXNET_CACHE_MB: memory that a step needed at its peak is kept for the next step, and the process never
// holds more. (512 was the default with exact-size reuse; best-fit needs less slack, and with 512
// nnFormer's forward peak RSS rose from 1,344 to 1,601 MB, above PyTorch's 1,408.)
static constexpr size_t kMmapBytes = 1 << 20;

namespace {
struct MapCache {
  std::mutex mu;
  std::multimap<size_t, void*> free;  // length -> mapping
  std::deque<std::pair<size_t, void*>> order;  // oldest first, for eviction
  size_t bytes = 0;  // cached
  size_t cap = 0;
  size_t live = 0, peakLive = 0;  // mapped bytes in use, and their maximum so far
  MemStats stats;
  bool trace = false;
  size_t budget() const { return peakLive + cap - live; }
  MapCache() {
    const char* env = std::getenv("UXNET_CACHE_MB");
    cap = (env && *env ? static_cast<size_t>(std::atoll(env)) : 256) << 20;
    const char* tr = std::getenv("UXNET_ALLOC_TRACE");
    trace = tr && *tr && std::strcmp(tr, "0") != 0;
  }
};
MapCache& mapCache() {
  static MapCache* c = new MapCache();
  return *c;
}
}  // namespace

// Moves the oldest cached mappings into `drop` until the cache fits its budget (caller holds c.mu).
static void evictOverBudget(MapCache& c, std::vector<std::pair<size_t, void*>>& drop) {
  while (c.bytes > c.budget() && !c.order.empty()) {
    auto o = c.order.front();
    c.order.pop_front();
    auto range = c.free.equal_range(o.first);
    for (auto it = range.first; it != range.second; ++it)
      if (it->second == o.second) {
        c.free.erase(it);
        break;
      }
    c.bytes -= o.first;
    drop.push_back(o);
  }
}

// Mapped buffers are whole, aligned 2 MiB units, so that every mapping (and every head or tail split off
// it) stays backed by transparent huge pages: splitting at 4 KiB boundaries broke them into small pages,
// and the kernels then ran ~10 % slower (TLB misses) although nothing was page-faulted again.
static constexpr size_t kHuge = 2u << 20;
static inline size_t mapLen(size_t bytes) { return ((bytes + kHuge - 1) / kHuge) * kHuge; }

#ifdef UX_HAVE_MMAP
// Reserves `len` bytes of address space at a 2 MiB boundary (PROT_NONE), or returns MAP_FAILED.
static void* reserveAligned(size_t len, int prot) {
  void* r = mmap(nullptr, len + kHuge, prot, MAP_PRIVATE | MAP_ANONYMOUS | (prot == PROT_NONE ? MAP_NORESERVE : 0), -1, 0);
  if (r == MAP_FAILED) return r;
  uintptr_t a = (reinterpret_cast<uintptr_t>(r) + kHuge - 1) & ~(kHuge - 1);
  size_t head = a - reinterpret_cast<uintptr_t>(r);
  if (head) munmap(r, head);
  if (kHuge - head) munmap(reinterpret_cast<char*>(a) + len, kHuge - head);
  return reinterpret_cast<void*>(a);
}
#endif

#ifdef UX_HAVE_MMAP
// Removes cached mapping `it` from the cache (caller holds c.mu).
static void takeCached(MapCache& c, std::multimap<size_t, void*>::iterator it) {
  void* p = it->second;
  c.bytes -= it->first;
  c.free.erase(it);
  for (auto o = c.order.begin(); o != c.order.end(); ++o)
    if (o->second == p) {
      c.order.erase(o);
      break;
    }
}

// Returns a mapping of `len` bytes (a multiple of 4096); *fresh tells whether it is all zero-filled.
// Exact sizes are rare across a forward (every layer has its own), so reuse is best-fit: the smallest
// cached mapping that holds `len` is split, its head returned and its tail kept cached as a mapping of
// its own (pages stay resident: nothing is zeroed again). Failing that, the largest smaller one is
// grown with mremap, so only the extension is fresh. Only then is a new mapping made.
static void* mapGet(size_t len, bool* fresh) {
  MapCache& c = mapCache();
  std::vector<std::pair<size_t, void*>> drop;
  void* grow = nullptr;
  size_t growLen = 0;
  {
    std::lock_guard<std::mutex> lk(c.mu);
    auto it = c.free.lower_bound(len);
    if (it != c.free.end()) {
      size_t have = it->first;
      char* p = static_cast<char*>(it->second);
      takeCached(c, it);
      size_t rest = have - len;
      if (rest >= kMmapBytes) {
        c.free.emplace(rest, p + len);
        c.order.emplace_back(rest, p + len);
        c.bytes += rest;
      } else if (rest > 0) {
        drop.emplace_back(rest, p + len);  // too small for any mapped buffer
      }
      c.live += len;
      c.stats.hits++;
      c.stats.reusedBytes += len;
      *fresh = false;
      if (drop.empty()) return p;
      munmap(drop[0].second, drop[0].first);
      return p;
    }
#ifdef MREMAP_MAYMOVE
    if (it != c.free.begin()) {
      --it;
      growLen = it->first;
      grow = it->second;
      takeCached(c, it);
    }
#endif
    // Partly or wholly fresh: drop the oldest cached mappings that no longer fit beside the grown live set.
    c.live += len;
    if (c.live > c.peakLive) c.peakLive = c.live;
    if (grow) {
      c.stats.grows++;
      c.stats.reusedBytes += growLen;
    } else {
      c.stats.misses++;
    }
    c.stats.freshBytes += len - growLen;
    if (c.trace)
      std::fprintf(stderr, "uxnet alloc: %.2f MB, %.2f MB fresh (live %.0f MB, cached %.0f MB in %zu)\n", len / 1048576.0,
                   (len - growLen) / 1048576.0, c.live / 1048576.0, c.bytes / 1048576.0, c.free.size());
    evictOverBudget(c, drop);
  }
  for (auto& d : drop) munmap(d.second, d.first);
  void* p = MAP_FAILED;
#ifdef MREMAP_MAYMOVE
  if (grow) {
    // The kernel moves page-table entries (whole huge-page entries between aligned addresses), not data;
    // the old pages keep their contents. The target is an aligned reservation that mremap replaces.
    void* at = reserveAligned(len, PROT_NONE);
    if (at != MAP_FAILED) {
      p = mremap(grow, growLen, len, MREMAP_MAYMOVE | MREMAP_FIXED, at);
      if (p == MAP_FAILED) munmap(at, len);
    }
    if (p == MAP_FAILED) munmap(grow, growLen);
    else {
      *fresh = false;
      return p;
    }
  }
#endif
  p = reserveAligned(len, PROT_READ | PROT_WRITE);
  if (p == MAP_FAILED) {
    // Out of address space or memory: drop the cache and retry once.
    std::vector<std::pair<size_t, void*>> all;
    {
      std::lock_guard<std::mutex> lk(c.mu);
      all.assign(c.order.begin(), c.order.end());
      c.order.clear();
      c.free.clear();
      c.bytes = 0;
    }
    for (auto& d : all) munmap(d.second, d.first);
    p = reserveAligned(len, PROT_READ | PROT_WRITE);
    if (p == MAP_FAILED) {
      std::lock_guard<std::mutex> lk(c.mu);
      c.live -= len;
      throw std::bad_alloc();
    }
  }
#ifdef MADV_HUGEPAGE
  madvise(p, len, MADV_HUGEPAGE);
#endif
  *fresh = true;
  return p;
}

static void mapPut(void* p, size_t len) {
  MapCache& c = mapCache();
  std::vector<std::pair<size_t, void*>> drop;
  {
    std::lock_guard<std::mutex> lk(c.mu);
    c.live -= len;
    if (len > c.budget()) {
      drop.emplace_back(len, p);
    } else {
      c.free.emplace(len, p);
      c.order.emplace_back(len, p);
      c.bytes += len;
      evictOverBudget(c, drop);
    }
  }
  for (auto& d : drop) munmap(d.second, d.first);
}
#endif

void releaseCachedMemory() {
#ifdef UX_HAVE_MMAP
  MapCache& c = mapCache();
  std::vector<std::pair<size_t, void*>> drop;
  {
    std::lock_guard<std::mutex> lk(c.mu);
    drop.assign(c.order.begin(), c.order.end());
    c.order.clear();
    c.free.clear();
    c.bytes = 0;
  }
  for (auto& d : drop) munmap(d.second, d.first);
#endif
}

MemStats memStats() {
  MapCache& c = mapCache();
  std::lock_guard<std::mutex> lk(c.mu);
  MemStats s = c.stats;
  s.live = c.live, s.peakLive = c.peakLive, s.cached = c.bytes;
  return s;
}

static std::atomic<uint64_t> gBufIds{0};
Buf::Buf(size_t n) : id(++gBufIds), n_(n) {}

Buf::~Buf() {
  if (!ptr_) return;
#ifdef UX_HAVE_MMAP
  if (mapped_) {
    mapPut(ptr_, mapLen(n_ * sizeof(float)));
    return;
  }
#endif
  freeScratch(ptr_);
}

float* Buf::alloc() {
  if (ptr_) return ptr_;
  size_t bytes = n_ * sizeof(float);
  if (bytes == 0) bytes = 64;
#ifdef UX_HAVE_MMAP
  if (bytes >= kMmapBytes) {
    bool fresh = false;
    ptr_ = static_cast<float*>(mapGet(mapLen(bytes), &fresh));
    mapped_ = true;
    zeroed_ = fresh;
    return ptr_;
  }
#endif
  ptr_ = static_cast<float*>(allocScratch(bytes));
  return ptr_;
}

float* Buf::allocZero() {
  if (ptr_) return ptr_;
  alloc();
  if (!zeroed_) std::memset(ptr_, 0, n_ * sizeof(float));
  return ptr_;
}

void* allocScratch(size_t bytes) {
  size_t b = ((bytes + 63) / 64) * 64;
  if (b == 0) b = 64;
  void* p = nullptr;
#if defined(_WIN32)
  p = _aligned_malloc(b, 64);
#else
  if (posix_memalign(&p, 64, b) != 0) p = nullptr;
#endif
  if (!p) throw std::bad_alloc();
  return p;
}

void freeScratch(void* p) {
  if (!p) return;
#if defined(_WIN32)
  _aligned_free(p);
#else
  free(p);
#endif
}

// ---------------- thread pool ----------------
namespace {

struct Pool {
  std::vector<std::thread> workers;
  std::mutex mu;
  std::condition_variable cv, doneCv;
  uint64_t generation = 0;
  bool stop = false;
  // current job
  const std::function<void(int64_t, int64_t, int)>* fn = nullptr;
  int64_t n = 0, grain = 1;
  std::atomic<int64_t> next{0};
  int active = 0;
  int nthreads = 1;

  void runChunks(int tid) {
    for (;;) {
      int64_t b = next.fetch_add(grain);
      if (b >= n) break;
      int64_t e = b + grain < n ? b + grain : n;
      (*fn)(b, e, tid);
    }
  }

  void workerLoop(int tid) {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return stop || generation != seen; });
        if (stop) return;
        seen = generation;
      }
      runChunks(tid);
      {
        std::lock_guard<std::mutex> lk(mu);
        if (--active == 0) doneCv.notify_all();
      }
    }
  }

  void start(int t) {
    nthreads = t < 1 ? 1 : t;
    for (int i = 1; i < nthreads; i++) workers.emplace_back([this, i] { workerLoop(i); });
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
    }
    cv.notify_all();
    for (auto& w : workers) w.join();
    workers.clear();
  }
};

Pool* gPool = nullptr;

int configuredThreads() {
  const char* env = std::getenv("UXNET_THREADS");
  if (env && *env) {
    int v = std::atoi(env);
    if (v >= 1) return v > 256 ? 256 : v;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

}  // namespace

int numThreads() { return gPool ? gPool->nthreads : configuredThreads(); }

void parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  Pool& p = *gPool;
  if (p.nthreads == 1 || n <= grain) {
    fn(0, n, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lk(p.mu);
    p.fn = &fn;
    p.n = n;
    p.grain = grain;
    p.next.store(0);
    p.active = p.nthreads - 1;
    p.generation++;
  }
  p.cv.notify_all();
  p.runChunks(0);
  std::unique_lock<std::mutex> lk(p.mu);
  p.doneCv.wait(lk, [&] { return p.active == 0; });
  p.fn = nullptr;
}

// ---------------- in-order queue ----------------
namespace {
struct Queue {
  std::mutex mu;
  std::condition_variable cv, doneCv;
  std::deque<std::pair<uint64_t, std::function<void()>>> tasks;
  uint64_t submitted = 0;
  std::atomic<uint64_t> completed{0};
  bool stop = false;
  std::thread thread;
  std::string error;

  void loop() {
    for (;;) {
      std::pair<uint64_t, std::function<void()>> t;
      {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return stop || !tasks.empty(); });
        if (stop) return;  // shutting down: pending tasks are dropped
        t = std::move(tasks.front());
        tasks.pop_front();
      }
      try {
        t.second();
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lk(mu);
        if (error.empty()) error = e.what();
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu);
        if (error.empty()) error = "unknown native error";
      }
      t.second = nullptr;  // release captured buffers before signalling completion
      {
        std::lock_guard<std::mutex> lk(mu);
        completed.store(t.first);
      }
      doneCv.notify_all();
    }
  }
};
Queue* gQueue = nullptr;
std::once_flag gInitOnce;

void initRuntime() {
  std::call_once(gInitOnce, [] {
    gPool = new Pool();
    gPool->start(configuredThreads());
    gQueue = new Queue();
    gQueue->thread = std::thread([] { gQueue->loop(); });
  });
}
}  // namespace

uint64_t enqueue(std::function<void()> task) {
  initRuntime();
  std::lock_guard<std::mutex> lk(gQueue->mu);
  uint64_t seq = ++gQueue->submitted;
  gQueue->tasks.emplace_back(seq, std::move(task));
  gQueue->cv.notify_one();
  return seq;
}

void waitFor(uint64_t seq) {
  if (seq == 0) return;
  initRuntime();
  if (gQueue->completed.load() >= seq) return;
  std::unique_lock<std::mutex> lk(gQueue->mu);
  gQueue->doneCv.wait(lk, [&] { return gQueue->completed.load() >= seq; });
}

uint64_t completedSeq() { return gQueue ? gQueue->completed.load() : 0; }

std::string takeError() {
  if (!gQueue) return {};
  std::lock_guard<std::mutex> lk(gQueue->mu);
  std::string e = std::move(gQueue->error);
  gQueue->error.clear();
  return e;
}

void shutdownRuntime() {
  if (!gQueue) return;
  {
    std::lock_guard<std::mutex> lk(gQueue->mu);
    gQueue->stop = true;
  }
  gQueue->cv.notify_all();
  if (gQueue->thread.joinable()) gQueue->thread.join();
  gPool->shutdown();
}

}  // namespace ux
