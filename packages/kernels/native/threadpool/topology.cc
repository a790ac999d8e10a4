#include "threadpool/topology.h"

#include <sched.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

namespace ie {

static bool read_file(const std::string& path, std::string* out) {
  std::ifstream f(path);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  while (!out->empty() && (out->back() == '\n' || out->back() == ' ')) out->pop_back();
  return true;
}

std::vector<int> parse_cpu_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ',')) {
    if (part.empty()) continue;
    const auto dash = part.find('-');
    try {
      if (dash == std::string::npos) {
        out.push_back(std::stoi(part));
      } else {
        const int a = std::stoi(part.substr(0, dash)), b = std::stoi(part.substr(dash + 1));
        for (int i = a; i <= b && i - a < 65536; i++) out.push_back(i);
      }
    } catch (...) {
      // A malformed entry in /sys is skipped rather than trusted.
    }
  }
  return out;
}

CpuTopology read_topology() {
  CpuTopology t;
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  const bool have_mask = sched_getaffinity(0, sizeof(allowed), &allowed) == 0;
  std::string online_s;
  std::vector<int> online = read_file("/sys/devices/system/cpu/online", &online_s) ? parse_cpu_list(online_s) : std::vector<int>{};
  if (online.empty()) {
    for (int c = 0; c < CPU_SETSIZE; c++)
      if (have_mask && CPU_ISSET(c, &allowed)) online.push_back(c);
  }
  // NUMA nodes.
  std::map<int, int> node_of;
  for (int n = 0; n < 1024; n++) {
    std::string list;
    if (!read_file("/sys/devices/system/node/node" + std::to_string(n) + "/cpulist", &list)) {
      if (n > 0 && t.nodes.size() == 0) break;
      if (n > 64) break;
      continue;
    }
    if ((int)t.nodes.size() <= n) t.nodes.resize(n + 1);
    t.nodes[n] = parse_cpu_list(list);
    for (int c : t.nodes[n]) node_of[c] = n;
  }
  if (t.nodes.empty()) t.nodes.push_back(online);
  // Physical cores: (package, core_id) pairs.
  std::map<std::pair<int, int>, CpuTopology::Core> cores;
  for (int c : online) {
    if (have_mask && !CPU_ISSET(c, &allowed)) continue;
    t.logical_cpus++;
    std::string pkg_s, core_s;
    const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(c) + "/topology/";
    int pkg = 0, core = c;
    if (read_file(base + "physical_package_id", &pkg_s)) pkg = std::atoi(pkg_s.c_str());
    if (read_file(base + "core_id", &core_s)) core = std::atoi(core_s.c_str());
    auto& k = cores[{pkg, core}];
    k.package = pkg;
    k.node = node_of.count(c) ? node_of[c] : 0;
    k.cpus.push_back(c);
  }
  for (auto& [key, core] : cores) t.cores.push_back(core);
  if (t.cores.empty()) t.cores.push_back({0, 0, {0}});
  return t;
}

std::vector<int> affinity_cpus(const CpuTopology& topo, Affinity a, int n) {
  if (a == Affinity::None || n <= 0) return {};
  // Slots: the first logical CPU of every core, then the second, ...
  std::vector<const CpuTopology::Core*> order;
  for (const auto& c : topo.cores) order.push_back(&c);
  if (a == Affinity::Scatter) {
    // Round-robin across NUMA nodes (then packages): core 0 of node 0, core 0 of node 1, ...
    std::map<int, std::vector<const CpuTopology::Core*>> by_node;
    for (const auto* c : order) by_node[c->node * 4096 + c->package].push_back(c);
    order.clear();
    for (size_t i = 0;; i++) {
      bool any = false;
      for (auto& [k, v] : by_node)
        if (i < v.size()) {
          order.push_back(v[i]);
          any = true;
        }
      if (!any) break;
    }
  }
  std::vector<int> cpus;
  for (size_t smt = 0; (int)cpus.size() < n; smt++) {
    bool any = false;
    for (const auto* c : order)
      if (smt < c->cpus.size() && (int)cpus.size() < n) {
        cpus.push_back(c->cpus[smt]);
        any = true;
      }
    if (!any) break;
  }
  // More threads than logical CPUs: wrap around.
  for (size_t i = 0; (int)cpus.size() < n && !cpus.empty(); i++) cpus.push_back(cpus[i]);
  return cpus;
}

}  // namespace ie
