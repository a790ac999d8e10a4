// Everything one ie context owns: the CPU's features, the dispatch table chosen for it, the
// topology, the thread pool and per-thread scratch. There is no global state: two contexts
// (say a scalar one and an AVX-512 one in a test) are independent.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/kernel_table.h"
#include "mem/aligned.h"
#include "numa/numa.h"
#include "threadpool/threadpool.h"
#include "threadpool/topology.h"

namespace ie {

struct ContextOptions {
  int threads = 0;  // 0: one per physical core
  Affinity affinity = Affinity::None;
  NumaPolicy numa = NumaPolicy::None;
  std::string isa;  // "" = best supported
};

class Context {
 public:
  static std::unique_ptr<Context> create(const ContextOptions& o, std::string* error);

  const CpuFeatures features;
  const CpuTopology topo;
  const KernelTable k;
  const Affinity affinity;
  const NumaPolicy numa;
  ThreadPool pool;

  // Scratch for thread `tid` of the current job (grown, never shrunk). Only valid inside a
  // pool job (run or run_serial), which serializes users.
  float* scratch(int tid, size_t floats);
  int8_t* scratch_q8(int tid, size_t bytes);
  float* scratch_q8d(int tid, size_t floats);
  // Scratch shared by every thread across the phases of one operation (the GEMM's packed
  // activations, written in one pool job and read in the next). Valid while holding phase_lock().
  float* shared_scratch(size_t floats);
  // FP32 activation rows as the kernels want them: `x` itself when every row starts on a
  // 64-byte boundary, else a copy of the M rows of K into thread `tid`'s aligned scratch (the
  // caller's buffers are JavaScript's, 16-byte aligned). *ld gets the rows' stride in floats.
  const float* aligned_rows(int tid, const float* x, int64_t ldx, int M, int64_t K, int64_t* ld);
  std::unique_lock<std::mutex> phase_lock() { return std::unique_lock<std::mutex>(phase_mu_); }

 private:
  Context(CpuFeatures f, CpuTopology t, KernelTable kt, Affinity a, NumaPolicy n, int threads, std::vector<int> pin);
  std::vector<AlignedVector<float>> scratch_, scratch_q8d_, scratch_x_;
  std::vector<AlignedVector<int8_t>> scratch_q8_;
  AlignedVector<float> shared_;
  std::mutex phase_mu_;
};

const char* affinity_name(Affinity a);
bool parse_affinity(const std::string& s, Affinity* out);

}  // namespace ie
