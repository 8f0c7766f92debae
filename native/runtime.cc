#include "runtime.h"

#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#define UX_HAVE_MMAP 1
#endif

namespace ux {

// Large buffers come straight from mmap so that freeing them returns the memory to the OS at once
// (peak RSS in training depends on it) and zeros() costs nothing until touched.
static constexpr size_t kMmapBytes = 1 << 20;

Buf::Buf(size_t n) : n_(n) {}

Buf::~Buf() {
  if (!ptr_) return;
#ifdef UX_HAVE_MMAP
  if (mapped_) {
    munmap(ptr_, ((n_ * sizeof(float) + 4095) / 4096) * 4096);
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
    size_t len = ((bytes + 4095) / 4096) * 4096;
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    ptr_ = static_cast<float*>(p);
    mapped_ = true;
    return ptr_;
  }
#endif
  ptr_ = static_cast<float*>(allocScratch(bytes));
  return ptr_;
}

float* Buf::allocZero() {
  if (ptr_) return ptr_;
  alloc();
  if (!mapped_) std::memset(ptr_, 0, n_ * sizeof(float));  // fresh mmap pages are already zero
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
