#include "mem/mapping.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ie {

bool parse_advice(const std::string& s, Advice* out) {
  if (s == "normal") *out = Advice::Normal;
  else if (s == "sequential") *out = Advice::Sequential;
  else if (s == "random") *out = Advice::Random;
  else if (s == "willneed") *out = Advice::WillNeed;
  else return false;
  return true;
}

Mapping::~Mapping() {
  if (base) munmap(base, map_len);
}

// madvise(MADV_HUGEPAGE) over [addr, addr + len), its outcome in m.huge_pages and m.huge_pages_detail.
static void ask_huge_pages(Mapping& m, void* addr, size_t len, const char* what, const char* refused_hint) {
#ifdef MADV_HUGEPAGE
  if (madvise(addr, len, MADV_HUGEPAGE) == 0) {
    m.huge_pages = true;
    m.huge_pages_detail = std::string("madvise(MADV_HUGEPAGE) accepted (transparent huge pages for ") + what + ")";
  } else {
    m.huge_pages_detail = std::string("madvise(MADV_HUGEPAGE) refused: ") + std::strerror(errno) + refused_hint + "; 4 KiB pages are used";
  }
#else
  (void)addr, (void)len, (void)what, (void)refused_hint;
  m.huge_pages_detail = "MADV_HUGEPAGE is not available on this system";
#endif
}

std::shared_ptr<Mapping> map_file(const std::string& path, uint64_t offset, uint64_t length, Advice advice, bool huge_pages, bool populate, std::string* error) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = path + ": cannot open (" + std::strerror(errno) + ")";
    return nullptr;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    *error = path + ": cannot stat (" + std::strerror(errno) + ")";
    close(fd);
    return nullptr;
  }
  const uint64_t size = (uint64_t)st.st_size;
  if (offset > size || length > size - offset || length == 0) {
    *error = path + ": range [" + std::to_string(offset) + ", +" + std::to_string(length) + ") is outside the " + std::to_string(size) + "-byte file";
    close(fd);
    return nullptr;
  }
  const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  const uint64_t aligned = offset - offset % page;
  const size_t map_len = (size_t)(length + (offset - aligned));
  // Private and (after populating) writable: JavaScript sees the bytes as an ordinary
  // Uint8Array, and a write through it must neither fault (a PROT_READ page would SIGSEGV the
  // process) nor reach the file. A write copies that one page for this process (copy-on-write);
  // pages never written stay shared with the page cache, so this is as zero-copy as before.
  // Mapped read-only first, so MAP_POPULATE faults pages in for reading (populating a writable
  // private mapping would copy every page); MAP_NORESERVE keeps a model larger than RAM + swap
  // mappable (no commit charge for pages that are never written).
  void* p = mmap(nullptr, map_len, PROT_READ, MAP_PRIVATE | MAP_NORESERVE | (populate ? MAP_POPULATE : 0), fd, (off_t)aligned);
  close(fd);
  if (p == MAP_FAILED) {
    *error = path + ": mmap failed (" + std::strerror(errno) + ")";
    return nullptr;
  }
  if (mprotect(p, map_len, PROT_READ | PROT_WRITE) != 0) {
    // Strict overcommit (vm.overcommit_memory=2) ignores MAP_NORESERVE and may refuse to
    // charge a writable private mapping of this size: fail cleanly rather than hand JavaScript
    // a view whose writes would crash the process.
    const int e = errno;
    munmap(p, map_len);
    *error = path + ": cannot make the private mapping writable (" + std::strerror(e) + "); the system's overcommit policy refuses " + std::to_string(map_len) + " bytes";
    return nullptr;
  }
  auto m = std::make_shared<Mapping>();
  m->base = static_cast<uint8_t*>(p);
  m->map_len = map_len;
  m->data = m->base + (offset - aligned);
  m->len = (size_t)length;
  const int adv = advice == Advice::Sequential ? MADV_SEQUENTIAL : advice == Advice::Random ? MADV_RANDOM : advice == Advice::WillNeed ? MADV_WILLNEED : MADV_NORMAL;
  madvise(p, map_len, adv);
  if (huge_pages) ask_huge_pages(*m, p, map_len, "this file mapping", " (file-backed huge pages need CONFIG_READ_ONLY_THP_FOR_FS)");
  else m->huge_pages_detail = "not requested";
  return m;
}

std::shared_ptr<Mapping> allocate_memory(uint64_t length, bool huge_pages, std::string* error) {
  constexpr uint64_t kHugePage = uint64_t(1) << 21;
  if (length == 0 || length > (uint64_t(1) << 53)) {
    *error = "cannot allocate " + std::to_string(length) + " bytes";
    return nullptr;
  }
  // One huge page more than needed, so the data can start on a 2 MiB boundary: its first bytes
  // then share a huge page with nothing else.
  const size_t map_len = (size_t)((length + kHugePage - 1) / kHugePage * kHugePage + kHugePage);
  void* p = mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    *error = "cannot allocate " + std::to_string(length) + " bytes (" + std::strerror(errno) + ")";
    return nullptr;
  }
  auto m = std::make_shared<Mapping>();
  m->base = static_cast<uint8_t*>(p);
  m->map_len = map_len;
  m->data = reinterpret_cast<uint8_t*>(((uintptr_t)p + kHugePage - 1) & ~(uintptr_t)(kHugePage - 1));
  m->len = (size_t)length;
  m->anonymous = true;
  // Asked before the first touch, so the pages are huge from their first fault on.
  if (huge_pages) ask_huge_pages(*m, m->data, (size_t)(m->base + map_len - m->data), "this anonymous memory", "");
  else m->huge_pages_detail = "not requested";
  return m;
}

bool map_file_over(Mapping& m, const std::string& path, uint64_t file_offset, uint64_t at, uint64_t length, std::string* error) {
  const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  if (!m.anonymous) {
    *error = "only anonymous memory (allocateMemory) takes a file's pages in place";
    return false;
  }
  if (length == 0 || at % page != 0 || file_offset % page != 0 || (uintptr_t)m.data % page != 0 || at > m.len || length > m.len - at) {
    *error = "cannot map [" + std::to_string(at) + ", +" + std::to_string(length) + ") of a " + std::to_string(m.len) + "-byte region from file offset " + std::to_string(file_offset) +
             ": the range must lie inside it and start on a page";
    return false;
  }
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = path + ": cannot open (" + std::strerror(errno) + ")";
    return false;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || file_offset > (uint64_t)st.st_size || length > (uint64_t)st.st_size - file_offset) {
    *error = path + ": range [" + std::to_string(file_offset) + ", +" + std::to_string(length) + ") is not inside the file";
    close(fd);
    return false;
  }
  void* p = mmap(nullptr, (size_t)length, PROT_READ, MAP_PRIVATE | MAP_NORESERVE, fd, (off_t)file_offset);
  close(fd);
  if (p == MAP_FAILED) {
    *error = path + ": mmap failed (" + std::strerror(errno) + ")";
    return false;
  }
  // Writable like map_file's (a write through a JS view copies one page, never reaches the file).
  if (mprotect(p, (size_t)length, PROT_READ | PROT_WRITE) != 0) {
    *error = path + ": cannot make the private mapping writable (" + std::strerror(errno) + ")";
    munmap(p, (size_t)length);
    return false;
  }
  madvise(p, (size_t)length, MADV_RANDOM);
#ifdef MREMAP_FIXED
  void* q = mremap(p, (size_t)length, (size_t)length, MREMAP_MAYMOVE | MREMAP_FIXED, m.data + at);
  if (q == MAP_FAILED) {
    *error = path + ": mremap failed (" + std::strerror(errno) + ")";
    munmap(p, (size_t)length);
    return false;
  }
  return true;
#else
  // No mremap that moves a mapping over another here (Linux has one): the range stays copied.
  munmap(p, (size_t)length);
  *error = "moving a file mapping in place (mremap) is not available on this system";
  return false;
#endif
}

}  // namespace ie
