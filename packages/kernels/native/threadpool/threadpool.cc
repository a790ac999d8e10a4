#include "threadpool/threadpool.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void cpu_relax() { _mm_pause(); }
#else
static inline void cpu_relax() {}
#endif

namespace ie {

// ~0.3-1 ms of spinning before a worker sleeps: longer than a whole decode step of a small model
// (a tiny model's step is ~60 us, and a worker asleep at every step costs a wake-up each time:
// two threads were 3x slower than one), far shorter than the gap between user requests.
static constexpr int kSpinIterations = 1 << 14;

static std::string pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  const int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
  return rc == 0 ? std::string() : "cannot pin a thread to CPU " + std::to_string(cpu) + ": " + std::strerror(rc);
}

ThreadPool::ThreadPool(int n_threads, std::vector<int> pin) : n_(std::max(1, n_threads)), pin_(std::move(pin)) {
  threads_.reserve(n_ - 1);
  for (int t = 1; t < n_; t++) threads_.emplace_back([this, t] { worker(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  cv_.notify_all();
  for (auto& th : threads_) th.join();
}

std::string ThreadPool::pin_error() const {
  std::lock_guard<std::mutex> lk(err_mu_);
  return pin_error_;
}

void ThreadPool::pin_caller() {
  if (pin_.empty()) return;
  const auto id = std::this_thread::get_id();
  if (std::find(pinned_callers_.begin(), pinned_callers_.end(), id) != pinned_callers_.end()) return;
  pinned_callers_.push_back(id);
  const std::string e = pin_to(pin_[0]);
  if (!e.empty()) {
    std::lock_guard<std::mutex> lk(err_mu_);
    pin_error_ = e;
  }
}

void ThreadPool::worker(int tid) {
  if (!pin_.empty()) {
    const std::string e = pin_to(pin_[tid]);
    if (!e.empty()) {
      std::lock_guard<std::mutex> lk(err_mu_);
      pin_error_ = e;
    }
  }
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = generation_.load(std::memory_order_acquire);
    for (int spins = 0; g == seen && spins < kSpinIterations; spins++) {
      cpu_relax();
      g = generation_.load(std::memory_order_acquire);
    }
    if (g == seen) {
      std::unique_lock<std::mutex> lk(mu_);
      sleepers_.fetch_add(1);
      cv_.wait(lk, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      sleepers_.fetch_sub(1);
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load()) return;
    (*job_)(tid, n_);
    remaining_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
  std::lock_guard<std::mutex> serial(run_mu_);
  pin_caller();
  if (n_ == 1) {
    fn(0, 1);
    return;
  }
  job_ = &fn;
  remaining_.store(n_ - 1, std::memory_order_relaxed);
  {
    // Under the lock so a worker deciding to sleep cannot miss this generation.
    std::lock_guard<std::mutex> lk(mu_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  if (sleepers_.load() > 0) cv_.notify_all();
  fn(0, n_);
  while (remaining_.load(std::memory_order_acquire) > 0) cpu_relax();
  job_ = nullptr;
}

void ThreadPool::run_serial(const std::function<void(int, int)>& fn) {
  std::lock_guard<std::mutex> serial(run_mu_);
  pin_caller();
  fn(0, 1);
}

void ThreadPool::chunk(int64_t total, int64_t align, int t, int n, int64_t* begin, int64_t* end) {
  const int64_t units = (total + align - 1) / align;
  const int64_t b = units * t / n, e = units * (t + 1) / n;
  *begin = std::min(total, b * align);
  *end = std::min(total, e * align);
}

}  // namespace ie
