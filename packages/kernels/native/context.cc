#include "context.h"

#include <algorithm>

namespace ie {

const char* affinity_name(Affinity a) {
  switch (a) {
    case Affinity::None: return "none";
    case Affinity::Compact: return "compact";
    case Affinity::Scatter: return "scatter";
  }
  return "?";
}

bool parse_affinity(const std::string& s, Affinity* out) {
  for (Affinity a : {Affinity::None, Affinity::Compact, Affinity::Scatter})
    if (s == affinity_name(a)) {
      *out = a;
      return true;
    }
  return false;
}

Context::Context(CpuFeatures f, CpuTopology t, KernelTable kt, Affinity a, NumaPolicy n, int threads, std::vector<int> pin)
    : features(std::move(f)), topo(std::move(t)), k(kt), affinity(a), numa(n), pool(threads, std::move(pin)), scratch_(threads), scratch_q8d_(threads), scratch_x_(threads), scratch_q8_(threads) {}

std::unique_ptr<Context> Context::create(const ContextOptions& o, std::string* error) {
  CpuFeatures f = detect_cpu_features();
  std::string isa_error;
  const Isa isa = choose_isa(f, o.isa, &isa_error);
  if (!isa_error.empty()) {
    *error = isa_error;
    return nullptr;
  }
  CpuTopology topo = read_topology();
  const int threads = o.threads > 0 ? o.threads : (int)topo.cores.size();
  if (threads > 1024) {
    *error = "threads must be at most 1024";
    return nullptr;
  }
  std::vector<int> pin = affinity_cpus(topo, o.affinity, threads);
  const KernelTable table = make_kernel_table(isa, f);
  return std::unique_ptr<Context>(new Context(std::move(f), std::move(topo), table, o.affinity, o.numa, threads, std::move(pin)));
}

int8_t* Context::scratch_q8(int tid, size_t bytes) {
  auto& v = scratch_q8_[tid];
  if (v.size() < bytes) v.resize(bytes);
  return v.data();
}

float* Context::scratch_q8d(int tid, size_t floats) {
  auto& v = scratch_q8d_[tid];
  if (v.size() < floats) v.resize(floats);
  return v.data();
}

float* Context::shared_scratch(size_t floats) {
  if (shared_.size() < floats) shared_.resize(floats);
  return shared_.data();
}

const float* Context::aligned_rows(int tid, const float* x, int64_t ldx, int M, int64_t K, int64_t* ld) {
  constexpr int64_t per_line = (int64_t)(kVectorAlign / sizeof(float));
  if (is_vector_aligned(x) && (M == 1 || ldx % per_line == 0)) {
    *ld = ldx;
    return x;
  }
  *ld = (K + per_line - 1) / per_line * per_line;
  auto& v = scratch_x_[tid];
  if (v.size() < (size_t)(*ld * M)) v.resize((size_t)(*ld * M));
  for (int i = 0; i < M; i++) std::copy(x + i * ldx, x + i * ldx + K, v.data() + i * *ld);
  return v.data();
}

float* Context::scratch(int tid, size_t floats) {
  auto& v = scratch_[tid];
  if (v.size() < floats) v.resize(floats);
  return v.data();
}

}  // namespace ie
