// Memory maps of file regions (the file is never modified), with madvise hints, and anonymous
// memory a file region is read into (the weights' copy in huge pages). The region stays mapped while
// any holder keeps the shared Mapping alive; closing from JavaScript detaches the JS buffer
// at once (so JS can never touch unmapped memory) and unmaps when the last native user is done.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace ie {

enum class Advice { Normal, Sequential, Random, WillNeed };
bool parse_advice(const std::string& s, Advice* out);

struct Mapping {
  uint8_t* base = nullptr;   // what mmap returned (page-aligned)
  size_t map_len = 0;        // length passed to mmap
  uint8_t* data = nullptr;   // base + (offset - page-aligned offset)
  size_t len = 0;            // bytes asked for
  bool huge_pages = false;   // madvise(MADV_HUGEPAGE) accepted
  std::string huge_pages_detail;
  ~Mapping();
};

// Maps [offset, offset + length) of `path` privately (MAP_PRIVATE): the file is never written;
// the pages are writable copy-on-write, so a write from JavaScript through a view changes only
// this process's copy of that page instead of faulting. Returns null and sets `error` on failure.
std::shared_ptr<Mapping> map_file(const std::string& path, uint64_t offset, uint64_t length, Advice advice, bool huge_pages, bool populate, std::string* error);

// `length` bytes of zeroed anonymous memory starting on a 2 MiB boundary, held like a mapping;
// with huge_pages, madvise(MADV_HUGEPAGE) before anything touches it. Returns null and sets
// `error` on failure.
std::shared_ptr<Mapping> allocate_memory(uint64_t length, bool huge_pages, std::string* error);

}  // namespace ie
