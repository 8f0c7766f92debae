// Native backend runtime: float32 buffers, the thread pool and the in-order execution queue.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace ux {

// A float32 storage. Memory is allocated by the task that first writes it (kernel outputs) or eagerly
// (uploads, zeros), and released when the last shared_ptr goes: the JS handle and every queued task that
// uses the buffer each hold one, so freeing from JS while work is pending is safe.
struct Buf {
  explicit Buf(size_t n);
  ~Buf();
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  // Allocates (uninitialised) if not yet allocated; returns the data pointer.
  float* alloc();
  // Allocates zero-filled.
  float* allocZero();
  float* data() const { return ptr_; }
  size_t size() const { return n_; }
  // Sequence number of the last queued task that writes this buffer (0: none).
  std::atomic<uint64_t> lastWrite{0};
  // Never-reused identity and in-place write count (bumped by the tasks that overwrite the buffer):
  // together they key caches of derived data such as packed conv weights.
  const uint64_t id;
  std::atomic<uint64_t> version{0};

 private:
  size_t n_;
  float* ptr_ = nullptr;
  bool mapped_ = false;
  bool zeroed_ = false;
};
using BufP = std::shared_ptr<Buf>;

// Unmaps the cached freed buffers (UXNET_CACHE_MB caps the cache, default 256).
void releaseCachedMemory();

// Counters of the large-buffer mapping cache since start: reuses, fresh (kernel-zeroed) mappings and
// their bytes, and the current/peak live and cached bytes. Cheap; for benchmarks and tests.
struct MemStats {
  uint64_t hits = 0, grows = 0, misses = 0;  // reused as is (or split), grown with mremap, new
  uint64_t reusedBytes = 0, freshBytes = 0;
  uint64_t live = 0, peakLive = 0, cached = 0;
};
MemStats memStats();

// Aligned scratch allocation for kernels (64-byte aligned, freed with freeScratch).
void* allocScratch(size_t bytes);
void freeScratch(void* p);

template <typename T>
struct Scratch {
  T* p = nullptr;
  size_t n = 0;
  Scratch() = default;
  explicit Scratch(size_t count) { resize(count); }
  ~Scratch() { freeScratch(p); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void resize(size_t count) {
    if (count <= n) return;
    freeScratch(p);
    p = static_cast<T*>(allocScratch(count * sizeof(T) + 64));
    n = count;
  }
  T* get() { return p; }
  T& operator[](size_t i) { return p[i]; }
};

// ---- thread pool ----
int numThreads();
// Runs fn(begin, end, tid) over [0, n) in chunks of `grain` items on all pool threads (the calling
// thread participates). Must be called from the executor thread (kernels run there), not nested.
void parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn);

// ---- in-order queue ----
// Enqueues a task; returns its sequence number. Tasks run one after another on the executor thread.
uint64_t enqueue(std::function<void()> task);
// Blocks the caller until task `seq` (and all before it) has finished.
void waitFor(uint64_t seq);
uint64_t completedSeq();
void shutdownRuntime();
// Error message of the first task that failed (empty if none); tasks do not throw across the queue.
std::string takeError();

}  // namespace ux
