// The machine's read bandwidth, measured as the best of several streaming readers (the figure
// every GEMV and decode benchmark is judged against, so it must not be a weak one).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "context.h"

namespace ie {

struct ReadProbe {
  size_t bytes = 0;     // bytes each pass read (the buffer from its first 64-byte boundary); 0: too small
  double seconds = 0;   // best time for one pass over them, all pool threads reading
  std::string variant;  // the reader that achieved it, e.g. "1 stream/thread, nta prefetch"
  double checksum = 0;  // folded loads, so the reads cannot be elided
};

// Streams [p, p + n) with every pool thread (each its own contiguous slice, then 2 MiB pieces from a
// shared counter) in each reader variant (1 to 16 interleaved streams per thread, with and without
// non-temporal software prefetch), `passes` times each, and returns the fastest pass.
ReadProbe probe_read_bandwidth(Context& ctx, const uint8_t* p, size_t n, int passes);

}  // namespace ie
