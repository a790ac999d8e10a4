// Reading IEBIN weight rows in scalar code: scales, zero points, q4 nibbles.
#pragma once
#include <cstring>

#include "cpu/fp16.h"
#include "cpu/kernel_table.h"

namespace ie {

inline float load_scale(const uint8_t* p, ScaleType t) {
  if (t == ScaleType::F32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  return t == ScaleType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
}

// Scale of (row r, group g).
inline float row_scale(const WeightRows& w, int r, int g) { return load_scale(w.s + r * w.s_ld + g * scale_bytes(w.stype), w.stype); }

// Zero point of (row r, group g): the stored one for q4 affine, 8 for symmetric q4.
inline int q4_zero(const WeightRows& w, int r, int g) { return w.z ? w.z[r * w.z_ld + g] : kQ4SymmetricZero; }

// Code of element j (0 <= j < G) of a q4 group starting at `grp`: byte j % (G/2), low nibble for j < G/2.
inline int q4_code(const uint8_t* grp, int G, int j) {
  const int half = G / 2;
  const uint8_t b = grp[j < half ? j : j - half];
  return j < half ? (b & 15) : (b >> 4);
}

// 16-row records (kernel_table.h): the record of (row r, group g), and in it row r's code of
// element j of the group and its scale.
inline const uint8_t* q4x16_record(const WeightRows& w, int r, int g) {
  return w.q + (ptrdiff_t)((w.row0 + r) / 16) * 16 * w.q_ld + (ptrdiff_t)g * q4x16_record_bytes(w.group, w.stype);
}
inline int q4x16_code(const uint8_t* rec, const WeightRows& w, int r, int j) {
  const int half = w.group / 2, b = j < half ? j : j - half, lane = (w.row0 + r) % 16;  // byte b of the row's group: vector b / 4, lane, byte b % 4
  const uint8_t v = rec[(b / 4) * 64 + lane * 4 + b % 4];
  return j < half ? (v & 15) : (v >> 4);
}
inline float q4x16_scale(const uint8_t* rec, const WeightRows& w, int r) {
  return load_scale(rec + 8 * w.group + ((w.row0 + r) % 16) * scale_bytes(w.stype), w.stype);
}

// i8 records: the record holding column k of row r (columns from the slice's col0), and in it row
// r's code and scale.
inline const uint8_t* i8x16_record(const WeightRows& w, int r, int k) {
  return w.q + (ptrdiff_t)((w.row0 + r) / 16) * 16 * w.q_ld + (ptrdiff_t)((w.col0 + k) / w.group) * i8x16_record_bytes(w.group, w.stype);
}
inline int i8x16_code(const uint8_t* rec, const WeightRows& w, int r, int k) {
  const int j = (w.col0 + k) % w.group, lane = (w.row0 + r) % 16;
  return (int)rec[(j / 4) * 64 + lane * 4 + j % 4] - 128;
}
inline float i8x16_scale(const uint8_t* rec, const WeightRows& w, int r) {
  return load_scale(rec + 16 * w.group + ((w.row0 + r) % 16) * scale_bytes(w.stype), w.stype);
}

// Q6_K records (kernel_table.h): the record of (row r, superblock i), and in it row r's code (0..63)
// of the superblock's column j, the int8 scale of its 16-column group g and its d.
inline const uint8_t* q6kx16_record(const WeightRows& w, int r, int i) {
  return w.q + (ptrdiff_t)((w.row0 + r) / 16) * 16 * w.q_ld + (ptrdiff_t)i * kQ6kRecordBytes;
}
inline int q6kx16_code(const uint8_t* rec, const WeightRows& w, int r, int j) {
  const int lane = (w.row0 + r) % 16, chunk = (j % 16) / 4;
  const uint8_t* v = rec + 192 * (j / 16) + lane * 4 + j % 4;  // P; Q at + 64, R at + 128
  if (chunk < 3) return v[64 * chunk] & 63;
  return (v[0] >> 6) << 4 | (v[64] >> 6) << 2 | v[128] >> 6;
}
// Where lane l's scale sits among a group's 16 in the K-quant records: lanes 0-3, 8-11, 4-7, 12-15.
inline int kquant_records_slot(int lane) { return lane < 4 || lane >= 12 ? lane : lane < 8 ? lane + 4 : lane - 4; }
inline int q6kx16_scale(const uint8_t* rec, const WeightRows& w, int r, int g) {
  return (int8_t)rec[kQ6kRecordScales + 16 * g + kquant_records_slot((w.row0 + r) % 16)];
}
inline float q6kx16_d(const uint8_t* rec, const WeightRows& w, int r) { return load_scale(rec + kQ6kRecordD + 2 * ((w.row0 + r) % 16), ScaleType::F16); }

// Q4_K records (kernel_table.h): the record of (row r, superblock i), and in it row r's code (0..15)
// of the superblock's column j, the 6-bit scale and min of its sub-block s, its d and dmin.
inline const uint8_t* q4kx16_record(const WeightRows& w, int r, int i) {
  return w.q + (ptrdiff_t)((w.row0 + r) / 16) * 16 * w.q_ld + (ptrdiff_t)i * kQ4kRecordBytes;
}
inline int q4kx16_code(const uint8_t* rec, const WeightRows& w, int r, int j) {
  const int b = j % 32, lane = (w.row0 + r) % 16;
  const uint8_t v = rec[512 * (j / 64) + 64 * (b / 4) + 4 * lane + b % 4];
  return j % 64 < 32 ? (v & 15) : (v >> 4);
}
inline int q4kx16_scale(const uint8_t* rec, const WeightRows& w, int r, int s) {
  return rec[kQ4kRecordScales + 16 * s + kquant_records_slot((w.row0 + r) % 16)] & 63;
}
inline int q4kx16_min(const uint8_t* rec, const WeightRows& w, int r, int s) {
  const int t = kquant_records_slot((w.row0 + r) % 16);
  const int high = (rec[kQ4kRecordMins + 8 * s + t % 8] >> (t < 8 ? 0 : 4)) & 15;
  return rec[kQ4kRecordScales + 16 * s + t] >> 6 | high << 2;
}
inline float q4kx16_d(const uint8_t* rec, const WeightRows& w, int r) { return load_scale(rec + kQ4kRecordD + 2 * ((w.row0 + r) % 16), ScaleType::F16); }
inline float q4kx16_dmin(const uint8_t* rec, const WeightRows& w, int r) { return load_scale(rec + kQ4kRecordDmin + 2 * ((w.row0 + r) % 16), ScaleType::F16); }

// Q5_K records (kernel_table.h): a Q4_K record with each code's high bit in masks after it; the
// scale, min, d and dmin as q4kx16_* read them.
inline const uint8_t* q5kx16_record(const WeightRows& w, int r, int i) {
  return w.q + (ptrdiff_t)((w.row0 + r) / 16) * 16 * w.q_ld + (ptrdiff_t)i * kQ5kRecordBytes;
}
inline int q5kx16_code(const uint8_t* rec, const WeightRows& w, int r, int j) {
  const int b = j % 32, lane = (w.row0 + r) % 16, bit = 4 * lane + b % 4;
  const uint8_t* mask = rec + kQ5kRecordHigh + 128 * (j / 64) + 16 * (b / 4) + (j % 64 < 32 ? 0 : 8);
  return q4kx16_code(rec, w, r, j) | ((mask[bit / 8] >> (bit % 8)) & 1) << 4;
}

// Group geometry of a panel: elements per group (per-row: the whole panel) and group count.
inline int group_size(const WeightRows& w) { return w.group > 0 ? w.group : w.K; }
inline int group_count(const WeightRows& w) { return w.group > 0 ? (w.K + w.group - 1) / w.group : 1; }

}  // namespace ie
