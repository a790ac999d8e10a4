// The machine's CPU topology as Linux reports it under /sys: packages, physical cores and
// their logical CPUs, NUMA nodes. Used for the default thread count and for affinity.
#pragma once
#include <string>
#include <vector>

namespace ie {

struct CpuTopology {
  struct Core {
    int package = 0;
    int node = 0;
    std::vector<int> cpus;  // logical CPUs (hyperthreads) of this physical core
  };
  std::vector<Core> cores;           // ordered by package, then core
  std::vector<std::vector<int>> nodes;  // NUMA node -> logical CPUs
  int logical_cpus = 0;
};

CpuTopology read_topology();

// Parses a Linux CPU list such as "0-3,8,10-11".
std::vector<int> parse_cpu_list(const std::string& s);

enum class Affinity { None, Compact, Scatter };

// CPUs to pin n threads to: compact fills one package/node before the next, scatter
// round-robins across packages/nodes; one thread per physical core first.
std::vector<int> affinity_cpus(const CpuTopology& topo, Affinity a, int n);

}  // namespace ie
