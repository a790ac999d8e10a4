// A weight matrix as IEBIN stores it, and the drivers that run the dispatch table's row
// kernels over it: K-panels (blocked-K), pretransposed storage, and the split of rows (or
// columns) between the pool's threads. Every output element is computed by exactly one thread
// with a fixed sequence of operations, so results are identical for every thread count.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "context.h"

namespace ie {

struct MatrixDesc {
  WeightType type = WeightType::F32;
  int64_t N = 0, K = 0;       // rows (outputs) and columns (inputs)
  int group = 0;              // q4 / i8 per-group size; 0 for i8 per-row and float types
  bool affine = false;        // q4 with zero points
  ScaleType stype = ScaleType::F16;
  int64_t block_k = 0;        // 0: not blocked
  bool pretransposed = false;
  // Symmetric q4, iq4_nl or i8 in 16-row records (kernel_table.h, Records16Kernels): the same bytes
  // as the row-major planes (iq4_nl: blocks), reordered by interleave_rows16. Never in a file: the runtime interleaves at load.
  bool rows16 = false;
  uint64_t scales_offset = 0, zeros_offset = 0, bytes = 0;
};

// Byte size the layout implies, or 0 with `error` set when the descriptor is impossible.
uint64_t matrix_bytes(const MatrixDesc& d, std::string* error);

// The planes of an i8 / q4 matrix (docs/iebin.md): the quant plane from 0, the scales plane at
// align64(quant plane), the zero points (q4 affine; `bytes` counts them only then) at
// align64(end of scales). The one place
// the C++ side computes them; kernels/src/matrix-spec.ts's quantPlanes is the TypeScript one.
struct QuantPlanes {
  bool per_row = false;          // i8 with one scale per row
  uint64_t group = 0;            // elements per scale (K when per row)
  uint64_t groups_per_row = 0;
  uint64_t scales_offset = 0, zeros_offset = 0, bytes = 0;
};
QuantPlanes quant_planes(const MatrixDesc& d);

struct MatrixPlan {
  MatrixDesc d;
  std::vector<WeightRows> panels;  // row 0 of each K-panel; data pointers filled by bind()
  std::vector<int> panel_k0;
  std::vector<uint64_t> q_off, s_off, z_off;  // byte offsets of each panel's planes
  const uint8_t* data = nullptr;
  void bind(const uint8_t* base);
};

// Checks the descriptor (sizes, group, block size) and precomputes the panels.
bool plan_matrix(const MatrixDesc& d, MatrixPlan* out, std::string* error);

// Why a row-major matrix cannot be interleaved into 16-row records ("" when it can): symmetric q4 with
// groups, iq4_nl or i8, rows a multiple of 16, not K-blocked.
std::string rows16_unfit(const MatrixDesc& d);
// Reorders `m`'s bytes (row-major, bound at `data`, which the caller owns and nothing else reads as
// row-major afterwards) into 16-row records in place, then plans and binds `m` as rows16. False
// with `error` set, bytes untouched, when rows16_unfit says so or the memory for the copy is missing.
bool interleave_rows16(MatrixPlan& m, uint8_t* data, std::string* error);

// Why a matrix cannot be reordered into K-panels of B columns ("" when it can): a row-major f32 /
// f16 / bf16 / i8 / q4 matrix (not a block type, not pretransposed, not K-blocked, not in 16-row
// records) and B a positive multiple of 64 and of the group size.
std::string blocked_k_unfit(const MatrixDesc& d, int64_t B);
// Reorders `m`'s row-major bytes (bound at `data`, which the caller owns and nothing else reads as
// row-major afterwards) in place into K-panels of B columns, the layout of an IEBIN tensor with
// block_k = B (docs/iebin.md, *Blocked-K*), then plans and binds `m` so. A long row's x stays in L1
// while a panel streams. False with `error` set, bytes untouched, when blocked_k_unfit says so or
// the memory for a copy of a plane is missing.
bool reorder_blocked_k(MatrixPlan& m, uint8_t* data, int64_t B, std::string* error);

// The dispatch table's kernels for a matrix's type and layout (null where there is none).
struct RowKernels {
  GemvFn gemv = nullptr;
  GemvQ8Fn gemv_q8 = nullptr;
  GemvQ8RowsFn gemv_q8_rows = nullptr;
  GemvRowsFn gemv_rows = nullptr;
  DequantFn dequant = nullptr;
  GemmQ8Fn gemm_q8 = nullptr;
  GemmPackRecordsFn pack_gemm = nullptr;  // records only
  bool q8_rows_prefill = false;           // records only
};
RowKernels row_kernels(const KernelTable& k, const MatrixDesc& d);

// How activations meet quantized weights: FP32 (dequantization fused into f32 FMAs, the
// default) or int8 (x quantized per 32 elements, integer dot products; i8/q4 weights only).
enum class Activations { F32 = 0, Int8 = 1 };

void gemv(Context& ctx, const MatrixPlan& m, const float* x, float* y, Activations a = Activations::F32);
// Several GEMVs in one pool job (a decode row's chosen experts): the rows of all of them handed
// out in ranges from one counter, so threads stay busy across the matrices and the pool wakes
// once. Every row is computed exactly as gemv() computes it.
struct GemvJob {
  const MatrixPlan* m;
  const float* x;
  float* y;
};
void gemv_batch(Context& ctx, const GemvJob* jobs, int n, Activations a);

// A matrix's bytes per row (all its planes, averaged over its rows): what sizes a split of its rows.
inline int64_t matrix_row_bytes(const MatrixDesc& d) { return std::max<int64_t>(1, (int64_t)(d.bytes / (uint64_t)std::max<int64_t>(1, d.N))); }

// Rows of 16-row records go to threads in multiples of this: the kernels read several stripes a pass
// (gemv/q4x16_avx512vnni.cc: up to four), so each thread's rows hold whole passes.
constexpr int64_t kRecordsSplitRows = 64;

// The rows of one or more GEMVs, handed out a range at a time from a shared counter: a thread
// whose core runs slower (a VM's vCPU sharing its host, measured here as a tenth of a 2-thread
// decode spent waiting at the end of each GEMV) takes fewer ranges instead of holding the others
// back, and several GEMVs (gemv_batch) wake the pool once. No range spans two GEMVs. A row's result
// does not depend on the range it falls in (the kernels' rows keep their arithmetic whatever rows
// a call gets), so results stay the same at every thread count.
//
// Shrinking: each range a (2 x threads)-th of the rows still left, down to the alignment, so the
// last ranges are short: for the compute-bound several-rows kernels of 16-row records, whose speed
// does not depend on a range's length, the other thread then waits at most a short range at the end
// of a call (with equal ranges an eight-stream TinyLlama step spent a tenth of its calling thread's
// time waiting there). Tapering, for the row-major GEMVs: the same, but no range of a matrix under
// kTaperFloorBytes of its weights (or a thread's share of a smaller matrix; a matrix's last range
// takes the rest rather than leave a shorter one), so that the bus-bound kernels' far-apart row
// streams (gemv/row_streams.h) start rarely and always have room. These took four equal ranges
// per thread until 2026-12-05, and a call ended with up to one of them waited for: in a gpt-oss
// decode step q, k and v made 9 ranges for two threads, and each expert matrix was one of the MoE
// job's 8 (`perf`: the two threads' waits 10% of a two-thread gpt-oss decode's samples, 3%
// tapered). On Zen 5 the 8-layer gpt-oss-20b cut decoded up to 1.3x faster tapered in the minutes
// the VM ran slow and alike otherwise (15 rounds alternated, one 0.85x);
// TinyLlama BF16 alike; isolated GEMVs alike or faster. One thread takes each GEMV whole.
enum class RowSplit { Shrinking, Tapering };
class RowRanges {
 public:
  RowRanges(const GemvJob* jobs, int n, int threads, RowSplit split) : jobs_(jobs), threads_(std::max(1, threads)), split_(split) {
    for (int j = 0; j < n; j++) {
      rows_ += jobs[j].m->d.N;
      if (jobs[j].m->d.rows16) align_ = kRecordsSplitRows;
    }
  }
  // The next range: job *j, rows [r0, r1). next_ counts rows of the GEMVs laid end to end; a range
  // ends at its GEMV's last row.
  bool next(int* j, int64_t* r0, int64_t* r1) {
    int64_t at = next_.load(std::memory_order_relaxed);
    for (;;) {
      if (at >= rows_) return false;
      int k = 0;
      int64_t first = 0;  // the GEMV's first row, end to end
      while (at >= first + jobs_[k].m->d.N) first += jobs_[k++].m->d.N;
      const MatrixDesc& d = jobs_[k].m->d;
      const int64_t left = first + d.N - at;  // the GEMV's rows not handed out yet
      int64_t want = (rows_ - at + 2 * threads_ - 1) / (2 * threads_), floor_rows = 0;
      if (split_ == RowSplit::Tapering) {
        const int64_t row_bytes = matrix_row_bytes(d);
        floor_rows = std::min((kTaperFloorBytes + row_bytes - 1) / row_bytes, (d.N + threads_ - 1) / threads_);
        want = threads_ == 1 ? d.N : std::max(want, floor_rows);
      }
      int64_t len = std::min(left, (want + align_ - 1) / align_ * align_);
      if (left - len < floor_rows) len = left;  // no short range left at the GEMV's end
      if (next_.compare_exchange_weak(at, at + len, std::memory_order_relaxed)) {
        *j = k;
        *r0 = at - first;
        *r1 = *r0 + len;
        return true;
      }
    }
  }

 private:
  static constexpr int64_t kTaperFloorBytes = 512 << 10;  // ~13 us of one core's stream: a range's start (~1 us) stays small
  const GemvJob* jobs_;
  int threads_;
  RowSplit split_;
  int64_t rows_ = 0, align_ = 16;
  std::atomic<int64_t> next_{0};
};

// Y[M][N] = X[M][K] W^T
void gemm(Context& ctx, const MatrixPlan& m, const float* X, int M, float* Y);
// The int8-activation GEMM (M tokens, each quantized as gemv() quantizes it); false where the ISA
// has none for the matrix (then nothing was computed).
bool gemm_q8(Context& ctx, const MatrixPlan& m, const float* X, int M, float* Y);
// out[K] = row r of W, dequantized.
void matrix_row(Context& ctx, const MatrixPlan& m, int64_t r, float* out);

}  // namespace ie
