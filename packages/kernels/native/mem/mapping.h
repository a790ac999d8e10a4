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
  bool anonymous = false;    // from allocate_memory
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

// Puts [file_offset, file_offset + length) of `path` in place of the bytes [at, at + length) of
// `m` (anonymous memory from allocate_memory), as map_file maps it: private, writable copy-on-write,
// MADV_RANDOM. For tables of which each step reads a row or two (a token embedding): a copy would
// hold all of them in memory, the file's pages only those read. The file is mapped elsewhere first
// and then moved over the range (mremap), so on failure `m` is left as it was. at and file_offset
// must be page multiples (m->data is 2 MiB-aligned). False with `error` set on failure.
bool map_file_over(Mapping& m, const std::string& path, uint64_t file_offset, uint64_t at, uint64_t length, std::string* error);

}  // namespace ie
