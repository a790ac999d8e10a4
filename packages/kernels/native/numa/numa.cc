#include "numa/numa.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace ie {

// From <linux/mempolicy.h>, spelled out so no kernel headers or libnuma are needed.
static constexpr int kMpolPreferred = 1;
static constexpr int kMpolInterleave = 3;

const char* numa_policy_name(NumaPolicy p) {
  switch (p) {
    case NumaPolicy::None: return "none";
    case NumaPolicy::Interleave: return "interleave";
    case NumaPolicy::Local: return "local";
  }
  return "?";
}

bool parse_numa_policy(const std::string& s, NumaPolicy* out) {
  for (NumaPolicy p : {NumaPolicy::None, NumaPolicy::Interleave, NumaPolicy::Local})
    if (s == numa_policy_name(p)) {
      *out = p;
      return true;
    }
  return false;
}

NumaReport numa_describe(const CpuTopology& topo, NumaPolicy policy) {
  NumaReport r;
  r.nodes = (int)topo.nodes.size();
  r.requested = policy;
  if (policy == NumaPolicy::None) {
    r.detail = "no NUMA policy requested";
  } else if (r.nodes <= 1) {
    r.detail = std::string("NUMA policy '") + numa_policy_name(policy) + "' has no effect: this machine has a single NUMA node, so every page is already local to every core";
  } else {
    r.detail = std::string("NUMA policy '") + numa_policy_name(policy) + "' will be applied to weight memory across " + std::to_string(r.nodes) + " nodes";
  }
  return r;
}

NumaReport numa_bind(const CpuTopology& topo, NumaPolicy policy, void* addr, size_t len, int first_pinned_cpu) {
  NumaReport r = numa_describe(topo, policy);
  if (policy == NumaPolicy::None || r.nodes <= 1) return r;
  const int nodes = r.nodes;
  std::vector<unsigned long> mask((nodes + 63) / 64, 0);
  int mode = kMpolInterleave;
  if (policy == NumaPolicy::Interleave) {
    for (int n = 0; n < nodes; n++)
      if (!topo.nodes[n].empty()) mask[n / 64] |= 1ul << (n % 64);
  } else {
    int node = 0;
    for (int n = 0; n < nodes; n++)
      for (int c : topo.nodes[n])
        if (c == first_pinned_cpu) node = n;
    mask[node / 64] |= 1ul << (node % 64);
    mode = kMpolPreferred;
  }
  const long rc = syscall(SYS_mbind, addr, len, mode, mask.data(), (unsigned long)nodes + 1, 0ul);
  if (rc != 0) {
    r.detail = std::string("mbind failed: ") + std::strerror(errno) + "; pages stay where the kernel puts them";
    return r;
  }
  r.applied = true;
  r.detail = policy == NumaPolicy::Interleave ? "weight pages interleaved across " + std::to_string(nodes) + " nodes (mbind MPOL_INTERLEAVE)"
                                              : "weight pages preferred on the pinned threads' node (mbind MPOL_PREFERRED)";
  return r;
}

}  // namespace ie
