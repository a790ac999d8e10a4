// NUMA placement hints through the mbind / set_mempolicy system calls (no libnuma). On a
// machine with one node there is nothing to place: the hint is reported as having no effect,
// with the reason, and no system call is made.
#pragma once
#include <cstddef>
#include <string>

#include "threadpool/topology.h"

namespace ie {

enum class NumaPolicy { None, Interleave, Local };
const char* numa_policy_name(NumaPolicy p);
bool parse_numa_policy(const std::string& s, NumaPolicy* out);

struct NumaReport {
  int nodes = 1;
  NumaPolicy requested = NumaPolicy::None;
  bool applied = false;   // a system call changed the placement
  std::string detail;     // what was done, or why nothing was
};

// Applies `policy` to the memory range [addr, addr + len) (page-aligned by the caller):
// interleave: pages spread round-robin over all nodes (MPOL_INTERLEAVE);
// local: pages bound to the node of the CPUs the pool is pinned to (MPOL_PREFERRED on the
// first pinned CPU's node), so each worker streams from its own node's memory.
NumaReport numa_bind(const CpuTopology& topo, NumaPolicy policy, void* addr, size_t len, int first_pinned_cpu);

// What the policy will do for the pool's threads on this machine, without touching memory.
NumaReport numa_describe(const CpuTopology& topo, NumaPolicy policy);

}  // namespace ie
