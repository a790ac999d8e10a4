#include "matmul/matmul.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <new>

#include "cpu/fp16.h"
#include "gemv/blocks.h"
#include "gemv/weights.h"

namespace ie {

static uint64_t align64(uint64_t n) { return (n + 63) / 64 * 64; }

QuantPlanes quant_planes(const MatrixDesc& d) {
  QuantPlanes q;
  const uint64_t N = (uint64_t)d.N, K = (uint64_t)d.K;
  q.per_row = d.type == WeightType::I8 && d.group == 0;
  q.group = q.per_row ? K : (uint64_t)d.group;
  q.groups_per_row = q.per_row ? 1 : (K + q.group - 1) / q.group;
  const uint64_t qbytes = d.type == WeightType::Q4 ? N * q.groups_per_row * (q.group / 2) : q.per_row ? N * K : N * q.groups_per_row * q.group;
  q.scales_offset = align64(qbytes);
  const uint64_t scales_end = q.scales_offset + N * q.groups_per_row * (uint64_t)scale_bytes(d.stype);
  q.zeros_offset = align64(scales_end);  // where zero points are (or would be: q4 affine only)
  q.bytes = d.affine ? q.zeros_offset + N * q.groups_per_row : scales_end;
  return q;
}

uint64_t matrix_bytes(const MatrixDesc& d, std::string* error) {
  if (d.N < 1 || d.K < 1 || d.N > (1ll << 31) || d.K > (1ll << 31)) {
    *error = "rows and cols must be in 1..2^31";
    return 0;
  }
  const uint64_t N = (uint64_t)d.N, K = (uint64_t)d.K;
  if (N * K > (1ull << 50)) {  // N, K <= 2^31: the product itself cannot overflow; 4 bytes each could
    *error = "rows * cols must be at most 2^50";
    return 0;
  }
  switch (d.type) {
    case WeightType::F32: return N * K * 4;
    case WeightType::F16:
    case WeightType::BF16: return N * K * 2;
    case WeightType::I8:
    case WeightType::Q4: break;
    case WeightType::Q4_K:
    case WeightType::Q5_K:
    case WeightType::Q6_K:
    case WeightType::IQ4_NL:
    case WeightType::MXFP4:
      if (d.group != 0 || d.affine) {
        *error = "block types carry their scales in their blocks: no group size, no affine scheme";
        return 0;
      }
      if (K % (uint64_t)block_elems(d.type) != 0) {
        *error = "cols must be a whole number of " + std::to_string(block_elems(d.type)) + "-element blocks";
        return 0;
      }
      return N * (K / (uint64_t)block_elems(d.type)) * (uint64_t)block_bytes(d.type);
    default:
      *error = "unknown weight type";
      return 0;
  }
  const bool per_row = d.type == WeightType::I8 && d.group == 0;
  if (!per_row && d.group != 32 && d.group != 64 && d.group != 128) {
    *error = "group size must be 32, 64 or 128";
    return 0;
  }
  if (d.affine && d.type != WeightType::Q4) {
    *error = "only q4 has an affine scheme";
    return 0;
  }
  return quant_planes(d).bytes;
}

// A block type: one panel, rows of whole blocks (already laid out for streaming).
static MatrixPlan plan_block_matrix(const MatrixDesc& d) {
  MatrixPlan p;
  p.d = d;
  WeightRows r;
  r.K = (int)d.K;
  r.q_ld = (ptrdiff_t)(d.K / block_elems(d.type) * block_bytes(d.type));
  p.panels.push_back(r);
  p.panel_k0.push_back(0);
  p.q_off.push_back(0);
  p.s_off.push_back(0);
  p.z_off.push_back(0);
  return p;
}

// K-panel pi (columns [pi * B, pi * B + B)) of an unblocked float or quantized matrix.
static void plan_panel(const MatrixDesc& d, const QuantPlanes& qp, uint64_t B, uint64_t pi, MatrixPlan* p) {
  const bool quant = d.type == WeightType::I8 || d.type == WeightType::Q4;
  const uint64_t N = (uint64_t)d.N, K = (uint64_t)d.K, k0 = pi * B, w = std::min(B, K - k0), G = qp.group;
  const int sb = scale_bytes(d.stype);
  WeightRows r;
  r.K = (int)w;
  r.stype = d.stype;
  uint64_t q = 0, s = 0, z = 0;
  if (!quant) {
    const uint64_t esize = (uint64_t)weight_elem_bytes(d.type);
    q = k0 * N * esize;
    r.q_ld = (ptrdiff_t)(w * esize);
  } else if (d.rows16) {  // one panel (not K-blocked): the records of stripe 0 from byte 0
    const uint64_t gp = (w + G - 1) / G;
    r.q_ld = (ptrdiff_t)(gp * ((d.type == WeightType::Q4 ? G / 2 : G) + sb));  // a stripe of 16 rows is 16 * q_ld bytes
    r.group = (int)G;  // i8 with one scale per row: G = K, one record a stripe
    r.rows16 = true;
  } else if (qp.per_row) {
    q = k0 * N;
    r.q_ld = (ptrdiff_t)w;
    s = qp.scales_offset;
    r.s_ld = sb;
    r.group = 0;
  } else {
    const uint64_t gb = B / G, gp = (w + G - 1) / G;
    const uint64_t gbytes = d.type == WeightType::Q4 ? G / 2 : G;
    q = pi * gb * N * gbytes;
    r.q_ld = (ptrdiff_t)(gp * gbytes);
    s = qp.scales_offset + pi * gb * N * sb;
    r.s_ld = (ptrdiff_t)(gp * sb);
    z = qp.zeros_offset + pi * gb * N;
    r.z_ld = (ptrdiff_t)gp;
    r.group = (int)G;
  }
  p->panels.push_back(r);
  p->panel_k0.push_back((int)k0);
  p->q_off.push_back(q);
  p->s_off.push_back(s);
  p->z_off.push_back(z);
}

// Checks the descriptor against the layout, then precomputes the panels.
static bool check_layout(const MatrixDesc& d, std::string* error) {
  const uint64_t want = matrix_bytes(d, error);
  if (want == 0) return false;
  if (want != d.bytes) {
    *error = "byte size " + std::to_string(d.bytes) + " does not match the layout's " + std::to_string(want);
    return false;
  }
  const bool quant = d.type == WeightType::I8 || d.type == WeightType::Q4;
  const QuantPlanes qp = quant ? quant_planes(d) : QuantPlanes{};
  if (quant && d.scales_offset != qp.scales_offset) {
    *error = "scales_offset must be " + std::to_string(qp.scales_offset);
    return false;
  }
  if (d.affine && d.zeros_offset != qp.zeros_offset) {
    *error = "zeros_offset must be " + std::to_string(qp.zeros_offset);
    return false;
  }
  if (d.pretransposed && (quant || is_block_type(d.type) || d.block_k != 0)) {
    *error = "pretransposed storage is for unblocked float matrices only";
    return false;
  }
  if (d.rows16) {
    MatrixDesc rows = d;
    rows.rows16 = false;
    const std::string unfit = rows16_unfit(rows);
    if (!unfit.empty()) {
      *error = "16-row records: " + unfit;
      return false;
    }
  }
  if (is_block_type(d.type) && d.block_k != 0) {
    *error = "block types are not K-blocked";
    return false;
  }
  if (!is_block_type(d.type) && (d.block_k < 0 || d.block_k % 64 != 0 || (d.block_k && !qp.per_row && quant && d.block_k % (int64_t)qp.group != 0))) {
    *error = "block_k must be a multiple of 64 and of the group size";
    return false;
  }
  return true;
}

// The K-quants, whose 16-row records hold one superblock of 16 rows each (kernel_table.h: the same
// bytes as the 16 blocks, reordered) and whose int8 kernels need no zero-point sums.
static bool is_kquant(WeightType t) { return t == WeightType::Q4_K || t == WeightType::Q5_K || t == WeightType::Q6_K; }

bool plan_matrix(const MatrixDesc& d, MatrixPlan* out, std::string* error) {
  if (!check_layout(d, error)) return false;
  if (is_block_type(d.type)) {
    *out = plan_block_matrix(d);
    if (d.rows16) {  // iq4_nl: q4 records of group 32, f16 scales; q4_k, q5_k, q6_k: a record a superblock (a stripe is still 16 rows' bytes)
      WeightRows& r = out->panels[0];
      r.group = is_kquant(d.type) ? kSuperBlock : kQ8Block;
      r.stype = ScaleType::F16;
      r.rows16 = true;
    }
    return true;
  }
  const bool quant = d.type == WeightType::I8 || d.type == WeightType::Q4;
  const QuantPlanes qp = quant ? quant_planes(d) : QuantPlanes{};
  MatrixPlan p;
  p.d = d;
  const uint64_t K = (uint64_t)d.K, B = d.block_k ? (uint64_t)d.block_k : K;
  for (uint64_t pi = 0; pi < (K + B - 1) / B; pi++) plan_panel(d, qp, B, pi, &p);
  *out = std::move(p);
  return true;
}

void MatrixPlan::bind(const uint8_t* base) {
  data = base;
  for (size_t i = 0; i < panels.size(); i++) {
    panels[i].q = base + q_off[i];
    panels[i].s = (d.type == WeightType::I8 || d.type == WeightType::Q4) && !d.rows16 ? base + s_off[i] : nullptr;
    panels[i].z = d.affine ? base + z_off[i] : nullptr;
  }
}

std::string rows16_unfit(const MatrixDesc& d) {
  if (d.type == WeightType::I8) {
    // x's blocks of 32 each take whole vectors of a record.
    if (d.K % kQ8Block != 0) return "i8 rows must be a whole number of 32-column blocks";
    if (d.group > 0 && (d.group % kQ8Block != 0 || d.K % d.group != 0)) return "i8 groups must be multiples of 32 that divide the row";
  } else if (d.type != WeightType::IQ4_NL && !is_kquant(d.type) && (d.type != WeightType::Q4 || d.affine || d.group <= 0)) {
    return "only symmetric q4 with groups, i8, iq4_nl, q4_k, q5_k and q6_k";
  }
  if (d.N % 16 != 0) return "rows must be a multiple of 16";
  if (d.block_k != 0 || d.pretransposed) return "the matrix must be row-major and not K-blocked";
  if (d.rows16) return "the matrix is interleaved already";
  return "";
}

// The matrix's bytes as they are, to reorder from.
static bool copy_of(const uint8_t* data, size_t n, std::vector<uint8_t>* out, std::string* error) {
  try {
    out->assign(data, data + n);
  } catch (const std::bad_alloc&) {
    *error = "out of memory for a copy of the matrix";
    return false;
  }
  return true;
}

// Row r (lane r of its stripe) of a Q6_K superblock b into its record (kernel_table.h, kQ6kRecordBytes).
static void q6k_into_record(const uint8_t* b, int r, uint8_t* out) {
  int code[kSuperBlock];
  for (int e = 0; e < kSuperBlock; e++) code[e] = k6_code(b, e);
  for (int g = 0; g < 16; g++) {
    const int* c = code + 16 * g;
    uint8_t* v = out + 192 * g + 4 * r;
    for (int j = 0; j < 4; j++) {
      v[j] = (uint8_t)(c[j] | (c[12 + j] >> 4) << 6);              // P: chunk 0, bits 4-5 of chunk 3
      v[64 + j] = (uint8_t)(c[4 + j] | ((c[12 + j] >> 2) & 3) << 6);  // Q: chunk 1, bits 2-3
      v[128 + j] = (uint8_t)(c[8 + j] | (c[12 + j] & 3) << 6);        // R: chunk 2, bits 0-1
    }
    out[kQ6kRecordScales + 16 * g + kquant_records_slot(r)] = b[192 + g];
  }
  std::memcpy(out + kQ6kRecordD + 2 * r, b + 208, 2);
}

// Row r of a Q4_K superblock b into its record (kernel_table.h, kQ4kRecordBytes); Q5_K's (five:
// its nibbles after the high bits) the same, then the high bits (kQ5kRecordHigh).
static void q4k_into_record(const uint8_t* b, int r, uint8_t* out, bool five = false) {
  const uint8_t* qs = b + (five ? 48 : 16);
  for (int j = 0; j < 4; j++)
    for (int l = 0; l < 32; l++) out[512 * j + 64 * (l / 4) + 4 * r + l % 4] = qs[32 * j + l];
  int sc[8], m[8];
  k_scales_mins(b + 4, sc, m);
  const int t = kquant_records_slot(r);
  for (int s = 0; s < 8; s++) {
    out[kQ4kRecordScales + 16 * s + t] = (uint8_t)(sc[s] | (m[s] & 3) << 6);
    uint8_t& nib = out[kQ4kRecordMins + 8 * s + t % 8];
    nib = (uint8_t)(t < 8 ? (nib & 0xf0) | (m[s] >> 2) : (nib & 0x0f) | (m[s] >> 2) << 4);
  }
  std::memcpy(out + kQ4kRecordD + 2 * r, b, 2);
  std::memcpy(out + kQ4kRecordDmin + 2 * r, b + 2, 2);
  if (five)
    for (int e = 0; e < kSuperBlock; e++) {
      const int l = e % 64, bit = 4 * r + l % 4;
      uint8_t& m = out[kQ5kRecordHigh + 128 * (e / 64) + 16 * ((l % 32) / 4) + (l < 32 ? 0 : 8) + bit / 8];
      m = (uint8_t)((m & ~(1 << (bit % 8))) | (k5_high(b + 16, e) >> 4) << (bit % 8));
    }
}

// A K-quant's blocks into records: each stripe's 16 rows of superblock i become record i of the
// stripe, the same bytes reordered.
static bool interleave_kquant_records(const MatrixDesc& d, uint8_t* data, std::string* error) {
  const bool q6 = d.type == WeightType::Q6_K;
  const int64_t nb = d.K / kSuperBlock, bb = block_bytes(d.type);
  std::vector<uint8_t> rows;
  if (!copy_of(data, (size_t)d.bytes, &rows, error)) return false;
  for (int64_t s = 0; s < d.N / 16; s++)
    for (int64_t i = 0; i < nb; i++) {
      uint8_t* out = data + (s * nb + i) * 16 * bb;
      for (int r = 0; r < 16; r++) {
        const uint8_t* b = rows.data() + ((s * 16 + r) * nb + i) * bb;
        if (q6) q6k_into_record(b, r, out);
        else q4k_into_record(b, r, out, d.type == WeightType::Q5_K);
      }
    }
  return true;
}

// Symmetric q4, i8 and iq4_nl into records (kernel_table.h, q4x16_record_bytes / i8x16_record_bytes).
static bool interleave_planes(const MatrixDesc& d, uint8_t* data, std::string* error) {
  const bool iq4 = d.type == WeightType::IQ4_NL, i8 = d.type == WeightType::I8;
  const QuantPlanes qp = iq4 ? QuantPlanes{} : quant_planes(d);
  // Per row and group g (iq4_nl: block), gbytes code bytes and an sb-byte scale, each the unit
  // (row * ng + g) of its plane: codes at code0 + unit * code_step, scales at scale0 + unit * scale_step.
  // iq4_nl's blocks are one plane of (d, 16 code bytes): q4 records of group 32 with f16 scales.
  const int64_t ng = iq4 ? d.K / block_elems(d.type) : (int64_t)qp.groups_per_row;
  const int64_t gbytes = iq4 ? 16 : i8 ? (int64_t)qp.group : (int64_t)qp.group / 2, sb = iq4 ? 2 : scale_bytes(d.stype);
  const int64_t code0 = iq4 ? 2 : 0, code_step = iq4 ? block_bytes(d.type) : gbytes;
  const int64_t scale0 = iq4 ? 0 : (int64_t)qp.scales_offset, scale_step = iq4 ? block_bytes(d.type) : sb;
  // 16 rows of codes then scales, back to back (N % 16 == 0 keeps the scales plane unpadded): the
  // records take exactly the planes' bytes.
  if (!iq4 && (qp.scales_offset != (uint64_t)(d.N * ng * gbytes) || qp.bytes != (uint64_t)(d.N * ng * (gbytes + sb)))) {
    *error = "the planes are not back to back";
    return false;
  }
  std::vector<uint8_t> rows;
  if (!copy_of(data, (size_t)(iq4 ? d.bytes : qp.bytes), &rows, error)) return false;
  const int64_t rec = 16 * (gbytes + sb);  // q4x16_record_bytes / i8x16_record_bytes
  const uint8_t flip = i8 ? 0x80 : 0;      // i8 codes + 128: the unsigned operand
  for (int64_t s = 0; s < d.N / 16; s++)
    for (int64_t g = 0; g < ng; g++) {
      uint8_t* out = data + (s * ng + g) * rec;
      for (int r = 0; r < 16; r++) {
        const int64_t unit = (s * 16 + r) * ng + g;
        const uint8_t* src = rows.data() + code0 + unit * code_step;
        for (int64_t b = 0; b < gbytes; b++) out[(b / 4) * 64 + r * 4 + b % 4] = src[b] ^ flip;
        std::memcpy(out + 16 * gbytes + r * sb, rows.data() + scale0 + unit * scale_step, (size_t)sb);
      }
    }
  return true;
}

bool interleave_rows16(MatrixPlan& m, uint8_t* data, std::string* error) {
  *error = rows16_unfit(m.d);
  if (!error->empty()) return false;
  MatrixDesc d = m.d;
  if (!(is_kquant(d.type) ? interleave_kquant_records(d, data, error) : interleave_planes(d, data, error))) return false;
  d.rows16 = true;
  MatrixPlan p;
  if (!plan_matrix(d, &p, error)) return false;  // cannot fail: checked above
  p.bind(data);
  m = std::move(p);
  return true;
}

std::string blocked_k_unfit(const MatrixDesc& d, int64_t B) {
  if (is_block_type(d.type)) return "block types are stored as whole blocks, never K-blocked";
  if (d.pretransposed) return "the matrix is pretransposed";
  if (d.rows16) return "the matrix is in 16-row records";
  if (d.block_k != 0) return "the matrix is K-blocked already";
  if (B <= 0 || B % 64 != 0) return "the panel width must be a positive multiple of 64";
  if (d.group > 0 && B % d.group != 0) return "the panel width must be a multiple of the group size";
  return "";
}

// N rows of `row` bytes (at `rows`) into panels `panel` bytes wide at `out`: panel after panel,
// each holding every row's bytes of its columns in row order.
static void block_plane(uint8_t* out, const uint8_t* rows, int64_t N, int64_t row, int64_t panel) {
  for (int64_t c0 = 0; c0 < row; c0 += panel) {
    const int64_t w = std::min(panel, row - c0);
    for (int64_t r = 0; r < N; r++, out += w) std::memcpy(out, rows + r * row + c0, (size_t)w);
  }
}

bool reorder_blocked_k(MatrixPlan& m, uint8_t* data, int64_t B, std::string* error) {
  *error = blocked_k_unfit(m.d, B);
  if (!error->empty()) return false;
  MatrixDesc d = m.d;
  d.block_k = B;
  MatrixPlan p;
  if (!plan_matrix(d, &p, error)) return false;
  // The planes whose units follow K: bytes per row, and per panel row.
  struct Plane {
    uint64_t offset;
    int64_t row, panel;
  };
  std::vector<Plane> planes;
  if (d.type == WeightType::I8 || d.type == WeightType::Q4) {
    const QuantPlanes qp = quant_planes(d);
    if (qp.per_row) {
      planes.push_back({0, d.K, B});  // one scale per row: the scales stay
    } else {
      const int64_t G = (int64_t)qp.group, ng = (int64_t)qp.groups_per_row, gbytes = d.type == WeightType::Q4 ? G / 2 : G, sb = scale_bytes(d.stype);
      planes.push_back({0, ng * gbytes, B / G * gbytes});
      planes.push_back({qp.scales_offset, ng * sb, B / G * sb});
      if (d.affine) planes.push_back({qp.zeros_offset, ng, B / G});
    }
  } else {
    const int64_t es = weight_elem_bytes(d.type);
    planes.push_back({0, d.K * es, B * es});
  }
  std::vector<uint8_t> copy;
  try {
    copy.resize((size_t)(d.N * planes[0].row));  // the codes' plane is the largest
  } catch (const std::bad_alloc&) {
    *error = "out of memory for a copy of the matrix's codes";
    return false;
  }
  for (const Plane& pl : planes) {
    const size_t bytes = (size_t)(d.N * pl.row);
    std::memcpy(copy.data(), data + pl.offset, bytes);
    block_plane(data + pl.offset, copy.data(), d.N, pl.row, pl.panel);
  }
  p.bind(data);
  m = std::move(p);
  return true;
}

RowKernels row_kernels(const KernelTable& k, const MatrixDesc& d) {
  RowKernels r;
  if (d.rows16) {
    const Records16Kernels& rec = d.type == WeightType::I8 ? k.i8x16 : d.type == WeightType::IQ4_NL ? k.iq4x16 : d.type == WeightType::Q6_K ? k.q6kx16 : d.type == WeightType::Q4_K ? k.q4kx16 : d.type == WeightType::Q5_K ? k.q5kx16 : k.q4x16;
    r.gemv = rec.gemv;
    r.gemv_q8 = rec.gemv_q8;
    r.gemv_q8_rows = rec.gemv_q8_rows;
    r.dequant = rec.dequant;
    r.pack_gemm = rec.pack_gemm;
    r.q8_rows_prefill = rec.q8_rows_prefill;
    return r;
  }
  const int t = (int)d.type;
  r.gemv = k.gemv[t];
  r.gemv_q8 = k.gemv_q8[t];
  r.gemv_q8_rows = k.gemv_q8_rows[t];
  r.gemv_rows = t <= (int)WeightType::BF16 ? k.gemv_rows[t] : nullptr;
  r.dequant = k.dequant[t];
  r.gemm_q8 = k.gemm_q8[t];
  return r;
}

// Below this many weights a matrix runs on the calling thread: waking the pool costs more.
static constexpr int64_t kParallelMinWeights = 1 << 15;

static void run_split(Context& ctx, int64_t work, const std::function<void(int, int)>& fn) {
  if (work < kParallelMinWeights || ctx.pool.size() == 1) ctx.pool.run_serial(fn);
  else ctx.pool.run(fn);
}

// Row-major GEMVs (not pretransposed) over RowRanges; each thread prepares x as the kernels take
// it (quantized, or on a 64-byte boundary) once per x it meets.
static void gemv_ranges(Context& ctx, const GemvJob* jobs, int n, Activations a) {
  int64_t work = 0;
  for (int j = 0; j < n; j++) work += jobs[j].m->d.N * jobs[j].m->d.K;
  RowRanges ranges(jobs, n, ctx.pool.size(), RowSplit::Tapering);
  run_split(ctx, work, [&](int t, int) {
    const float* xa = nullptr;  // x as the FP32 kernels take it, and which x and K it is
    const float* xa_of = nullptr;
    int64_t xa_k = 0;
    int8_t* xq = nullptr;  // x quantized, and which x, K and block
    float* xd = nullptr;
    const float* xq_of = nullptr;
    int64_t xq_k = 0;
    int xq_block = 0;
    int j;
    int64_t r0, r1;
    while (ranges.next(&j, &r0, &r1)) {
      const MatrixPlan& m = *jobs[j].m;
      const MatrixDesc& d = m.d;
      const float* x = jobs[j].x;
      float* y = jobs[j].y;
      const RowKernels rk = row_kernels(ctx.k, d);
      const GemvQ8Fn q8 = rk.gemv_q8;
      if (a == Activations::Int8 && q8) {
        const int block = q8_x_block(d.type, d.group);
        if (x != xq_of || d.K != xq_k || block != xq_block) {  // O(K), by each thread: no barrier needed
          xq = ctx.scratch_q8(t, (size_t)q8_padded((int)d.K));
          xd = ctx.scratch_q8d(t, (size_t)q8_padded((int)d.K) / kQ8Block);
          ctx.k.quantize_x(x, (int)d.K, block, xq, xd);
          xq_of = x, xq_k = d.K, xq_block = block;
        }
        for (size_t p = 0; p < m.panels.size(); p++) q8(m.panels[p].from_row(r0), xq + m.panel_k0[p], xd + m.panel_k0[p] / kQ8Block, y + r0, (int)(r1 - r0), p > 0);
        continue;
      }
      if (x != xa_of || d.K != xa_k) {
        int64_t ld;
        xa = ctx.aligned_rows(t, x, d.K, 1, d.K, &ld);
        xa_of = x, xa_k = d.K;
      }
      const GemvFn fn = rk.gemv;
      for (size_t p = 0; p < m.panels.size(); p++) fn(m.panels[p].from_row(r0), xa + m.panel_k0[p], y + r0, (int)(r1 - r0), p > 0);
    }
  });
}

void gemv(Context& ctx, const MatrixPlan& m, const float* x, float* y, Activations a) {
  const auto& d = m.d;
  if (!d.pretransposed || (a == Activations::Int8 && row_kernels(ctx.k, d).gemv_q8)) {
    const GemvJob job{&m, x, y};
    return gemv_ranges(ctx, &job, 1, a);
  }
  const int esize = weight_elem_bytes(d.type);
  const GemvTFn fn = ctx.k.gemv_t[(int)d.type];
  run_split(ctx, d.N * d.K, [&](int t, int n) {
    int64_t n0, n1;
    ThreadPool::chunk(d.N, 64, t, n, &n0, &n1);
    if (n1 > n0) fn(m.data + n0 * esize, (ptrdiff_t)(d.N * esize), x, (int)d.K, y + n0, (int)(n1 - n0), false);
  });
}

void gemv_batch(Context& ctx, const GemvJob* jobs, int n, Activations a) {
  // Pretransposed storage splits columns, not rows: then one GEMV at a time.
  for (int j = 0; j < n; j++)
    if (jobs[j].m->d.pretransposed) {
      for (int k = 0; k < n; k++) gemv(ctx, *jobs[k].m, jobs[k].x, jobs[k].y, a);
      return;
    }
  gemv_ranges(ctx, jobs, n, a);
}

// Columns [k0, k0 + n) of a panel's rows (k0 a multiple of the group size).
static WeightRows column_block(const WeightRows& w, WeightType t, int k0, int n) {
  WeightRows v = w;
  v.K = n;
  if (t == WeightType::F32 || t == WeightType::F16 || t == WeightType::BF16) {
    v.q = w.q + (ptrdiff_t)k0 * weight_elem_bytes(t);
    return v;
  }
  if (is_block_type(t) && !w.rows16) {  // k0 is a multiple of the GEMM's kc (256), so of every block size
    v.q = w.q + (ptrdiff_t)(k0 / block_elems(t)) * block_bytes(t);
    return v;
  }
  if (w.group == 0) {  // i8 per row: one scale per row, wherever the columns start
    v.q = w.q + k0;
    return v;
  }
  if (w.rows16) {  // q4, iq4_nl and the K-quants: k0 starts a group (superblock); i8: perhaps inside a record (one a stripe with one scale per row)
    const int k = w.col0 + k0, g = k / w.group;
    v.q = w.q + (ptrdiff_t)g * (t == WeightType::I8 ? i8x16_record_bytes(w.group, w.stype)
                                : is_kquant(t)      ? 16 * block_bytes(t)
                                                    : q4x16_record_bytes(w.group, w.stype));
    v.col0 = k % w.group;
    return v;
  }
  const int g0 = k0 / w.group;
  v.q = w.q + (ptrdiff_t)g0 * (t == WeightType::Q4 ? w.group / 2 : w.group);
  v.s = w.s + (ptrdiff_t)g0 * scale_bytes(w.stype);
  if (w.z) v.z = w.z + g0;
  return v;
}

// A prefill chunk in the int8-activation mode, where the ISA has an int8 GEMM for the type: each
// token quantized as gemv() quantizes it (phase 1, tokens split between threads), then each thread
// takes 16-row panels of the weights against every token (phase 2). Each output element is one
// thread's, in a fixed order: results do not depend on the thread count.
bool gemm_q8(Context& ctx, const MatrixPlan& m, const float* X, int M, float* Y) {
  const auto& d = m.d;
  const RowKernels rk = row_kernels(ctx.k, d);
  const GemmQ8Fn fn = rk.gemm_q8;
  // 16-row records have no GEMM of their own: their several-rows kernel takes every token, each
  // stripe read from memory once and from cache for the tokens after the first eight.
  // Records whose panels the FP32 GEMM packs directly run faster there (pack_kquant_x16_avx512.cc),
  // unless their several-rows kernel is the faster still (q8_rows_prefill).
  if (d.rows16 ? !rk.gemv_q8_rows || (rk.pack_gemm && !rk.q8_rows_prefill) : !fn) return false;
  // i8 goes in x's blocks of 32 (its codes offset by 128: the zero point); one scale per row needs
  // whole blocks, since a row's last block would read past its codes. iq4_nl and mxfp4 go as i8,
  // each panel decoded to its levels first.
  const bool table = d.type == WeightType::IQ4_NL || d.type == WeightType::MXFP4;
  const bool i8 = d.type == WeightType::I8 || table;
  const bool kquant = d.rows16 && is_kquant(d.type);  // records: no zero-point sums
  if (d.pretransposed || d.affine || M < 2 || (table || kquant ? false : i8 ? d.group == 0 && d.K % kQ8Block != 0 : d.group <= 0)) return false;
  const int64_t N = d.N, K = d.K, G = i8 ? kQ8Block : kquant ? kSuperBlock : d.group, ng = (K + G - 1) / G, P = q8_padded((int)K);
  const int32_t zero = i8 ? 128 : kQ4SymmetricZero;
  const int xblock = q8_x_block(d.type, d.group);
  std::unique_lock<std::mutex> phases = ctx.phase_lock();
  // xq [M][P] bytes, xd [M][P / 32] floats, xz [M][ng] int32, in one shared buffer.
  const size_t q_floats = (size_t)(M * P + 3) / 4, d_floats = (size_t)M * (P / kQ8Block);
  float* shared = ctx.shared_scratch(q_floats + d_floats + (size_t)M * ng);
  int8_t* xq = reinterpret_cast<int8_t*>(shared);
  float* xd = shared + q_floats;
  int32_t* xz = reinterpret_cast<int32_t*>(xd + d_floats);
  run_split(ctx, (int64_t)M * K * 16, [&](int t, int n) {
    int64_t m0, m1;
    ThreadPool::chunk(M, 1, t, n, &m0, &m1);
    for (int64_t i = m0; i < m1; i++) {
      int8_t* q = xq + i * P;
      ctx.k.quantize_x(X + i * K, (int)K, xblock, q, xd + i * (P / kQ8Block));
      for (int64_t g = 0; g < ng && !d.rows16; g++) {
        int32_t sum = 0;
        for (int64_t j = g * G; j < (g + 1) * G; j++) sum += q[j];
        xz[i * ng + g] = -zero * sum;
      }
    }
  });
  const size_t scratch_floats = (gemm_q8_scratch(K, (int)G, table) + 3) / 4;
  run_split(ctx, M * N * K, [&](int t, int n) {
    int64_t r0, r1;
    ThreadPool::chunk(N, d.rows16 ? kRecordsSplitRows : 16, t, n, &r0, &r1);
    if (r1 <= r0) return;
    if (d.rows16) return rk.gemv_q8_rows(m.panels[0].from_row(r0), xq, xd, P, P / kQ8Block, M, Y + r0, N, (int)(r1 - r0), false);
    uint8_t* scratch = reinterpret_cast<uint8_t*>(ctx.scratch(t, scratch_floats));
    for (size_t p = 0; p < m.panels.size(); p++) {
      const int64_t k0 = m.panel_k0[p];
      fn(m.panels[p].from_row(r0), (int)(r1 - r0), xq + k0, P, xd + k0 / kQ8Block, P / kQ8Block, xz + k0 / G, ng, M, Y + r0, N, p > 0, scratch);
    }
  });
  return true;
}

// The packed GEMM. Blocking: K in blocks of kc inside each IEBIN K-panel; the activations of a K
// block are packed once per call into token panels of mr (shared by all threads); each thread
// takes whole nr-row weight panels, dequantizes one (nr x kc) block at a time into L1, packs it,
// and runs it against every token panel. An output element always sees the same K blocks in the
// same order, so results are identical for every thread count.
void gemm(Context& ctx, const MatrixPlan& m, const float* X, int M, float* Y) {
  const auto& d = m.d;
  if (M == 1) return gemv(ctx, m, X, Y, Activations::F32);
  const GemmKernels& g = ctx.k.gemm;
  const int MR = g.mr, NR = g.nr, KC = g.kc;
  const int64_t N = d.N, K = d.K, mpanels = (M + MR - 1) / MR;
  struct Block { int panel, k0, kc; int64_t k; };  // k0 inside the IEBIN panel, k in the whole row
  std::vector<Block> blocks;
  std::vector<int64_t> a_off;  // where each K block's packed activations start
  int64_t a_total = 0;
  if (d.pretransposed) {
    for (int64_t k = 0; k < K; k += KC) blocks.push_back({0, (int)k, (int)std::min<int64_t>(KC, K - k), k});
  } else {
    for (size_t p = 0; p < m.panels.size(); p++)
      for (int k0 = 0; k0 < m.panels[p].K; k0 += KC) blocks.push_back({(int)p, k0, std::min(KC, m.panels[p].K - k0), m.panel_k0[p] + (int64_t)k0});
  }
  for (const Block& b : blocks) {
    a_off.push_back(a_total);
    a_total += mpanels * MR * b.kc;
  }
  std::unique_lock<std::mutex> phases = ctx.phase_lock();
  float* A = ctx.shared_scratch((size_t)a_total);
  // Phase 1: pack the activations, [block][token panel][k][mr], zero past M.
  const int64_t pack_jobs = (int64_t)blocks.size() * mpanels;
  run_split(ctx, M * K * 16, [&](int t, int n) {
    int64_t j0, j1;
    ThreadPool::chunk(pack_jobs, 1, t, n, &j0, &j1);
    for (int64_t j = j0; j < j1; j++) {
      const Block& b = blocks[j / mpanels];
      const int64_t mp = j % mpanels;
      const int rows = (int)std::min<int64_t>(MR, M - mp * MR);
      g.pack_tokens(X + mp * MR * K + b.k, (ptrdiff_t)K, rows, b.kc, A + a_off[j / mpanels] + mp * MR * b.kc);
    }
  });
  // Phase 2: weight panels, split between threads in whole panels.
  const RowKernels rk = row_kernels(ctx.k, d);
  const DequantFn dq = rk.dequant;
  const int esize = weight_elem_bytes(d.type);
  run_split(ctx, N * K * M, [&](int t, int n) {
    int64_t n0, n1;
    ThreadPool::chunk(N, NR, t, n, &n0, &n1);
    if (n1 <= n0) return;
    float* rows = ctx.scratch(t, (size_t)NR * KC * 2);
    float* B = rows + (size_t)NR * KC;
    std::vector<const uint8_t*> prefetch((size_t)NR * ((KC * 4 + 63) / 64 + 1));  // a block's rows: at most KC 4-byte weights each
    for (int64_t r = n0; r < n1; r += NR) {
      const int nn = (int)std::min<int64_t>(NR, n1 - r);
      for (size_t bi = 0; bi < blocks.size(); bi++) {
        const Block& b = blocks[bi];
        if (d.pretransposed) {
          // Stored [K][N]: the block's rows are already k-major; convert them in place of a transpose.
          WeightRows w;
          w.q = m.data + (b.k * N + r) * esize;
          w.q_ld = (ptrdiff_t)(N * esize);
          w.K = nn;
          if (nn < NR) std::fill(B, B + (size_t)NR * b.kc, 0.0f);
          dq(w, b.kc, B, NR);
        } else if (d.type == WeightType::F32) {
          // FP32 rows pack straight from the weights: a copy first was 8% of a prefill's time.
          const WeightRows w = column_block(m.panels[b.panel].from_row(r), d.type, b.k0, b.kc);
          g.pack_rows(reinterpret_cast<const float*>(w.q), w.q_ld / 4, nn, b.kc, B);
        } else if (const GemmPackHalfFn half = d.type == WeightType::F16 ? g.pack_f16 : d.type == WeightType::BF16 ? g.pack_bf16 : nullptr) {
          // And f16 / bf16 ones, converted as they are packed.
          const WeightRows w = column_block(m.panels[b.panel].from_row(r), d.type, b.k0, b.kc);
          half(reinterpret_cast<const uint16_t*>(w.q), w.q_ld / 2, nn, b.kc, B);
        } else if (const WeightRows w = m.panels[b.panel].from_row(r); rk.pack_gemm && w.row0 == 0 && nn % 16 == 0) {
          rk.pack_gemm(column_block(w, d.type, b.k0, b.kc), nn, B, NR);
        } else {
          dq(column_block(m.panels[b.panel].from_row(r), d.type, b.k0, b.kc), nn, rows, b.kc);
          g.pack_rows(rows, b.kc, nn, b.kc, B);
        }
        // The lines of the weight block after next (it comes from DRAM, 16+ rows at once), fetched
        // into L2 by the micro-kernels while this block computes, a share with each token panel.
        // Two blocks ahead: the next one's last lines, fetched one ahead, came in with the last
        // panel, just before that block's copy needed them.
        int lines = 0;
        if (!d.pretransposed && !d.rows16) {
          size_t nb = bi;
          int64_t nr = r;
          for (int ahead = 0; ahead < 2; ahead++)
            if (++nb == blocks.size()) nb = 0, nr += NR;
          if (nr < n1) {
            const WeightRows next = column_block(m.panels[blocks[nb].panel].from_row(nr), d.type, blocks[nb].k0, blocks[nb].kc);
            const int64_t row_bytes = row_code_bytes(next, d.type);
            const int rows_next = (int)std::min<int64_t>(NR, n1 - nr);
            for (int i = 0; i < rows_next; i++)
              for (int64_t o = 0; o < row_bytes; o += 64) prefetch[lines++] = next.q + i * next.q_ld + o;
          }
        }
        const float* a = A + a_off[bi];
        for (int64_t mp = 0; mp < mpanels; mp++) {
          const int l0 = (int)(lines * mp / mpanels), l1 = (int)(lines * (mp + 1) / mpanels);
          const int mr = (int)std::min<int64_t>(MR, M - mp * MR);
          g.micro[mr - 1](a + mp * MR * b.kc, B, b.kc, Y + mp * MR * N + r, (ptrdiff_t)N, nn, bi > 0, {prefetch.data() + l0, l1 - l0});
        }
      }
    }
  });
}

void matrix_row(Context& ctx, const MatrixPlan& m, int64_t r, float* out) {
  const auto& d = m.d;
  if (d.pretransposed) {
    const int esize = weight_elem_bytes(d.type);
    for (int64_t k = 0; k < d.K; k++) {
      const uint8_t* p = m.data + (k * d.N + r) * esize;
      uint16_t h;
      float f;
      switch (d.type) {
        case WeightType::F32: std::memcpy(&f, p, 4); out[k] = f; break;
        case WeightType::F16: std::memcpy(&h, p, 2); out[k] = f16_to_f32(h); break;
        default: std::memcpy(&h, p, 2); out[k] = bf16_to_f32(h); break;
      }
    }
    return;
  }
  const DequantFn dq = row_kernels(ctx.k, d).dequant;
  for (size_t p = 0; p < m.panels.size(); p++) dq(m.panels[p].from_row(r), 1, out + m.panel_k0[p], (ptrdiff_t)d.K);
}

}  // namespace ie
