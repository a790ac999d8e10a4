// A program: a fixed list of kernel invocations over fixed buffers, compiled once and run many
// times (a model's decode step, its prefill step). Small integers that change between runs
// (the position, the number of rows, token ids) are read from a params array at run time.
// Running a whole step in C++ keeps the JavaScript thread idle and the per-token host overhead
// to one call; running it on a worker thread keeps the event loop free.
//
// Everything is validated at compile time against declared maxima (rows, positions, KV slots);
// each run checks its params against the same maxima before touching memory.
//
// One run may carry rows of several sequences: RoPE, the KV store and attention then read a
// (KV slot, position) pair per row from the params (`seq_slot`) instead of one start position, and
// the caches are an arena of `slots` slots of `capacity` positions each.
// The ops themselves are program/ops.h; compile_op.cc turns what JavaScript gave (ProgramArgs)
// into a Program, one compile_<kind> per op kind.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "context.h"
#include "program/ops.h"

namespace ie {

// One of the program's buffers, pinned by the N-API layer: `len` elements of `elem` bytes.
struct BufferArg {
  uint8_t* base = nullptr;
  uint64_t len = 0;
  int elem = 4;
};

// A program as read from JavaScript, unchecked.
struct ProgramArgs {
  Num max_rows;
  int32_t* params = nullptr;
  int params_len = 0;
  std::vector<BufferArg> buffers;
  std::vector<OpArgs> ops;
};

struct Program {
  std::vector<Op> ops;
  int32_t* params = nullptr;
  int params_len = 0;
  int64_t max_rows = 1;
};

// Checks every op against the declared maxima (rows, positions, KV slots) and resolves its
// views. Returns "" or the first problem, e.g. "ops[2].x: 4 rows of 8 ... do not fit buffer 0".
std::string compile_program(const ProgramArgs& args, Program* out);

// Runs every op in order. Returns "" or a message (bad params: position past the cache, ...).
std::string run_program(Context& ctx, const Program& p);

}  // namespace ie
