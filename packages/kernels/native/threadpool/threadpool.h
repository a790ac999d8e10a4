// A fixed pool of threads created once. `run(fn)` calls fn(t, n) for t in [0, n): the calling
// thread runs t = 0, workers run the rest. Workers spin for up to about a millisecond, then sleep
// on a condition variable, so the hundreds of small dispatches of decode steps cost microseconds
// while an idle pool costs no CPU. Jobs are serialized: calls from several threads (the JS thread and
// async workers) take turns.
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ie {

class ThreadPool {
 public:
  // `pin`: empty for no affinity, else n CPU ids; thread t (the caller for t = 0) is pinned to pin[t].
  ThreadPool(int n_threads, std::vector<int> pin);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_; }
  const std::vector<int>& pinned_cpus() const { return pin_; }
  // Errors from pinning (e.g. a CPU outside the process's allowed set), empty when fine.
  std::string pin_error() const;

  void run(const std::function<void(int, int)>& fn);
  // fn(0, 1) on the calling thread, serialized with run(): for work too small to share.
  void run_serial(const std::function<void(int, int)>& fn);

  // Splits [0, total) into n contiguous chunks whose starts are multiples of `align`.
  static void chunk(int64_t total, int64_t align, int t, int n, int64_t* begin, int64_t* end);

 private:
  void worker(int tid);
  void pin_caller();

  const int n_;
  const std::vector<int> pin_;
  std::vector<std::thread> threads_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> remaining_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  const std::function<void(int, int)>* job_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  std::mutex run_mu_;
  mutable std::mutex err_mu_;
  std::string pin_error_;
  std::vector<std::thread::id> pinned_callers_;
};

}  // namespace ie
