// The N-API surface of @ie/kernels: Context (pool + dispatch table), Matrix (a weight matrix
// over a buffer), Mapping (a read-only mmap), Program. Arguments are validated in TypeScript
// first; everything here is checked again cheaply, and a failed check throws a JS error with a
// `code` instead of touching memory. A program spec is only read here (read_program, into the
// plain structs of program/ops.h); program/compile_op.cc judges it.
//
// The boundary rules (nothing JavaScript does may crash the process):
//  - every wrapped object carries a napi type tag, checked on every unwrap (a spoofed object,
//    a Matrix passed where a Mapping is expected, a method called on a foreign `this`: all
//    KERNELS_BAD_ARGUMENT); Matrix, Mapping and Program cannot be constructed from JavaScript;
//  - every buffer the native side keeps a pointer into is pinned: the ArrayBuffer's backing
//    store is held (so a transfer or detach cannot free the memory under a running kernel),
//    resizable and shared buffers are refused (a shrink cannot be prevented), and detaching is
//    detected before and after every operation;
//  - a Matrix disposed while an async operation uses it is released when that operation ends;
//  - sizes and view extents are computed with overflow-checked arithmetic and capped;
//  - all JS-visible reads of an argument object (getters can run arbitrary code) happen before
//    any raw pointer is derived from a buffer.
#include <napi.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "attention/attention.h"
#include "context.h"
#include "cpu/fma_peak.h"
#include "layout/layout.h"
#include "matmul/matmul.h"
#include "mem/mapping.h"
#include "mem/read_probe.h"
#include "napi/backing_store.h"
#include "numa/numa.h"
#include "program/program.h"


namespace {

using ie::BackingStoreRef;
using ie::Context;

Napi::Error coded(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}
#define IE_THROW(env, code, msg) throw coded(env, code, msg)

// Overflow-checked arithmetic on unsigned 64-bit sizes.
inline bool ck_mul(uint64_t a, uint64_t b, uint64_t* r) { return !__builtin_mul_overflow(a, b, r); }
inline bool ck_add(uint64_t a, uint64_t b, uint64_t* r) { return !__builtin_add_overflow(a, b, r); }

// Type tags: an object is only ever unwrapped as the class that tagged it.
constexpr napi_type_tag kMappingTag = {0x8a1d6c2e4f1b4d7aULL, 0x9c3e1f5a7b2d4e60ULL};
constexpr napi_type_tag kMatrixTag = {0x3b7f0e9d2c614a85ULL, 0xa4d2c8e61f0b3957ULL};
constexpr napi_type_tag kProgramTag = {0x5e2a9c1d7b3f4068ULL, 0xb1c7d3e5f9a20486ULL};
constexpr napi_type_tag kContextTag = {0x71c4e8a2d09b5f36ULL, 0xc5e9a1b3d7f20864ULL};

// The token only native code can pass to the Matrix, Mapping and Program constructors.
int kConstructToken = 0;
Napi::Value construct_token(Napi::Env env) { return Napi::External<int>::New(env, &kConstructToken); }
void require_token(const Napi::CallbackInfo& info, const char* what) {
  if (info.Length() < 1 || !info[0].IsExternal() || info[0].As<Napi::External<int>>().Data() != &kConstructToken)
    IE_THROW(info.Env(), "KERNELS_BAD_ARGUMENT", std::string(what) + " objects are made by a Context, not constructed from JavaScript");
}

template <typename W>
W* checked_unwrap(Napi::Env env, const Napi::Value& v, const napi_type_tag* tag, const char* what) {
  if (v.IsEmpty() || !v.IsObject()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", std::string("expected a ") + what);
  Napi::Object o = v.As<Napi::Object>();
  if (!o.CheckTypeTag(tag)) IE_THROW(env, "KERNELS_BAD_ARGUMENT", std::string("expected a ") + what + " (got another object)");
  W* w = Napi::ObjectWrap<W>::Unwrap(o);
  if (!w) IE_THROW(env, "KERNELS_BAD_ARGUMENT", std::string("expected a ") + what);
  return w;
}

// A typed array argument, checked: the right kind, over a plain (not shared, not resizable),
// attached ArrayBuffer. `end` is byteOffset + byteLength: what the buffer must keep holding.
struct TypedView {
  uint8_t* data = nullptr;
  size_t elems = 0;
  size_t bytes = 0;
  size_t end = 0;
  Napi::ArrayBuffer ab;
};

TypedView typed_view(Napi::Env env, const Napi::Value& v, napi_typedarray_type type, const std::string& what) {
  if (v.IsEmpty() || !v.IsTypedArray()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", what + " must be a typed array");
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  if (ta.TypedArrayType() != type) IE_THROW(env, "KERNELS_BAD_ARGUMENT", what + " has the wrong element type");
  napi_value buf = nullptr;
  size_t len = 0, off = 0;
  napi_typedarray_type t;
  void* unused = nullptr;
  if (napi_get_typedarray_info(env, ta, &t, &len, &unused, &buf, &off) != napi_ok) IE_THROW(env, "KERNELS_BAD_ARGUMENT", what + " must be a typed array");
  bool is_ab = false;
  if (napi_is_arraybuffer(env, buf, &is_ab) != napi_ok || !is_ab) IE_THROW(env, "KERNELS_BAD_ARGUMENT", what + " must not be backed by a SharedArrayBuffer");
  Napi::ArrayBuffer ab(env, buf);
  if (ab.IsDetached()) IE_THROW(env, "KERNELS_DETACHED", what + "'s buffer is detached");
  if (BackingStoreRef::resizable(ab)) IE_THROW(env, "KERNELS_BAD_ARGUMENT", what + " must not be backed by a resizable ArrayBuffer (it could shrink while in use)");
  TypedView r;
  r.elems = len;
  r.ab = ab;
  r.bytes = ta.ByteLength();
  if (!ck_add(off, r.bytes, &r.end) || r.end > ab.ByteLength()) IE_THROW(env, "KERNELS_DETACHED", what + " lies outside its buffer");
  r.data = static_cast<uint8_t*>(ab.Data()) + off;
  return r;
}

// Keeps an ArrayBuffer's memory alive (whatever JavaScript does to the buffer: transfer,
// detach, drop) and remembers how much of it was in use, to detect detaching.
struct Pin {
  BackingStoreRef store;
  Napi::Reference<Napi::ArrayBuffer> ab;
  size_t end = 0;
  Pin() = default;
  explicit Pin(const TypedView& v) : store(BackingStoreRef::of(v.ab)), ab(Napi::Persistent(v.ab)), end(v.end) {}
  Pin(Pin&&) = default;
  Pin& operator=(Pin&&) = default;
  // Still attached and as long as when pinned.
  bool intact() const {
    if (ab.IsEmpty()) return false;
    Napi::ArrayBuffer b = ab.Value();
    return !b.IsEmpty() && !b.IsDetached() && b.ByteLength() >= end && b.Data() == store.data();
  }
};

std::string str_opt(const Napi::Object& o, const char* key, const std::string& dflt) {
  const Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsString()) IE_THROW(o.Env(), "KERNELS_BAD_ARGUMENT", std::string(key) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

int64_t checked_int(Napi::Env env, const Napi::Value& v, const std::string& what, int64_t lo, int64_t hi) {
  if (!v.IsNumber()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", what + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= (double)lo && d <= (double)hi) || d != std::floor(d)) IE_THROW(env, "KERNELS_BAD_ARGUMENT", what + " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
  return (int64_t)d;
}

// An optional integer property (default `dflt` when undefined or null) in [lo, hi].
int64_t int_opt(const Napi::Object& o, const char* key, int64_t dflt, int64_t lo, int64_t hi) {
  const Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  return checked_int(o.Env(), v, key, lo, hi);
}

// A required integer property in [lo, hi].
int64_t int_req(const Napi::Object& o, const char* key, int64_t lo, int64_t hi) {
  const Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) IE_THROW(o.Env(), "KERNELS_BAD_ARGUMENT", std::string(key) + " is required");
  return checked_int(o.Env(), v, key, lo, hi);
}

int64_t int_arg(const Napi::CallbackInfo& info, size_t i, int64_t lo, int64_t hi, const char* what) {
  if (info.Length() <= i) IE_THROW(info.Env(), "KERNELS_BAD_ARGUMENT", std::string(what) + " must be a number");
  return checked_int(info.Env(), info[i], what, lo, hi);
}

// A typed array argument of an exact kind with at least `min_len` elements.
template <typename T>
T* typed_arg(const Napi::CallbackInfo& info, size_t i, napi_typedarray_type type, size_t min_len, const char* what) {
  const TypedView v = typed_view(info.Env(), info.Length() > i ? info[i] : Napi::Value(), type, what);
  if (v.elems < min_len) IE_THROW(info.Env(), "KERNELS_BAD_ARGUMENT", std::string(what) + " has " + std::to_string(v.elems) + " elements, needs " + std::to_string(min_len));
  return reinterpret_cast<T*>(v.data);
}

float* f32_arg(const Napi::CallbackInfo& info, size_t i, size_t n, const char* what) { return typed_arg<float>(info, i, napi_float32_array, n, what); }

// A matrix descriptor as the TypeScript side encodes it (nativeDescriptor in matrix-spec.ts).
ie::MatrixDesc parse_desc(const Napi::Object& o) {
  ie::MatrixDesc d;
  d.type = (ie::WeightType)int_req(o, "type", 0, ie::kWeightTypeCount - 1);
  d.N = int_req(o, "rows", 1, 1ll << 31);
  d.K = int_req(o, "cols", 1, 1ll << 31);
  d.group = (int)int_opt(o, "group", 0, 0, 128);
  d.affine = int_opt(o, "affine", 0, 0, 1) == 1;
  d.stype = (ie::ScaleType)int_opt(o, "scaleType", 0, 0, 2);
  d.block_k = int_opt(o, "blockK", 0, 0, 1ll << 31);
  d.pretransposed = int_opt(o, "pretransposed", 0, 0, 1) == 1;
  d.scales_offset = (uint64_t)int_opt(o, "scalesOffset", 0, 0, 1ll << 53);
  d.zeros_offset = (uint64_t)int_opt(o, "zerosOffset", 0, 0, 1ll << 53);
  d.bytes = (uint64_t)int_opt(o, "bytes", 0, 0, 1ll << 53);
  return d;
}

// ---------------------------------------------------------------- Mapping

// Async operations running (gemmAsync, Program.runAsync): a Mapping closed meanwhile may lie under
// their pinned views (a pin keeps V8's backing store, not the memory under an external one), so
// its memory is kept here until the last of them settles. JS thread only; shared by the addon's
// data and each worker, so that a worker settling while the environment is torn down (a worker
// thread terminated) never touches freed instance data.
struct AsyncLedger {
  int inflight = 0;
  std::vector<std::shared_ptr<ie::Mapping>> closed_meanwhile;
  void started() { inflight++; }
  void settled() {
    if (--inflight == 0) closed_meanwhile.clear();
  }
};

struct AddonData {
  Napi::FunctionReference mapping_ctor, matrix_ctor, program_ctor;
  std::shared_ptr<AsyncLedger> ledger = std::make_shared<AsyncLedger>();
};

// Settles an async operation's promise. While a worker thread's environment is being torn down
// (worker.terminate()), Resolve/Reject throw; such an exception escaping OnOK/OnError reaches
// node-addon-api's own handler mid-teardown and aborts the process, and nobody awaits the promise.
template <class Settle>
void settle_quietly(Settle&& settle) {
  try {
    settle();
  } catch (const Napi::Error&) {
  }
}

class MappingWrap : public Napi::ObjectWrap<MappingWrap> {
 public:
  // Largest single JS view: typed arrays index at most 2^32 - 1 elements.
  static constexpr size_t kMaxView = 0xffffffffu;

  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Mapping",
                       {InstanceMethod<&MappingWrap::Close>("close"), InstanceMethod<&MappingWrap::View>("view"), InstanceAccessor<&MappingWrap::Buffer>("buffer"),
                        InstanceAccessor<&MappingWrap::Length>("length"), InstanceAccessor<&MappingWrap::HugePages>("hugePages"), InstanceAccessor<&MappingWrap::HugePagesDetail>("hugePagesDetail"),
                        InstanceMethod<&MappingWrap::MapFileOver>("mapFileOver")});
  }
  MappingWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<MappingWrap>(info) {
    require_token(info, "Mapping");
    info.This().As<Napi::Object>().TypeTag(&kMappingTag);
  }
  // Shadows ObjectWrap::Unwrap (node-addon-api calls T::Unwrap for `this` too): tag-checked.
  static MappingWrap* Unwrap(const Napi::Object& o) { return checked_unwrap<MappingWrap>(o.Env(), o, &kMappingTag, "Mapping"); }

  void Attach(std::shared_ptr<ie::Mapping> m) { mapping_ = std::move(m); }
  std::shared_ptr<ie::Mapping> mapping() const { return mapping_; }

 private:
  // An ArrayBuffer over [offset, offset + length) of the mapping; it keeps the mapping alive
  // until close() (or, unclosed, until the garbage collector takes it).
  // The mapping is private and writable (mem/mapping.h): writes through it stay in this process.
  Napi::ArrayBuffer make_view(Napi::Env env, size_t offset, size_t length) {
    auto* hold = new std::shared_ptr<ie::Mapping>(mapping_);
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, mapping_->data + offset, length, [](Napi::Env, void*, std::shared_ptr<ie::Mapping>* h) { delete h; }, hold);
    // Forget the views the garbage collector already took, so the list does not grow forever.
    if (views_.size() >= 2 * pruned_at_ + 16) {
      std::vector<View_> live;
      for (auto& v : views_)
        if (!v.ref.IsEmpty() && !v.ref.Value().IsEmpty()) live.push_back(std::move(v));
      views_ = std::move(live);
      pruned_at_ = views_.size();
    }
    views_.push_back({Napi::Weak(ab), hold});
    return ab;
  }
  Napi::Value View(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!mapping_) IE_THROW(env, "KERNELS_CLOSED", "the mapping is closed");
    const int64_t off = int_arg(info, 0, 0, (int64_t)mapping_->len, "offset");
    const int64_t len = int_arg(info, 1, 0, (int64_t)kMaxView, "length");
    if (!mapping_) IE_THROW(env, "KERNELS_CLOSED", "the mapping is closed");
    if ((uint64_t)off + (uint64_t)len > mapping_->len) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "the view [" + std::to_string(off) + ", +" + std::to_string(len) + ") lies outside the " + std::to_string(mapping_->len) + "-byte mapping");
    return make_view(env, (size_t)off, (size_t)len);
  }
  Napi::Value Buffer(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!mapping_) return env.Null();
    if (mapping_->len > kMaxView) IE_THROW(env, "KERNELS_MAP_TOO_LARGE", "the mapping is " + std::to_string(mapping_->len) + " bytes, more than one JavaScript view can hold; use view(offset, length)");
    // whole_ is weak: once the garbage collector took the buffer, Value() is empty (asking an
    // empty value whether it is detached fails with "Invalid argument"), so make a new one.
    Napi::ArrayBuffer cur;
    if (!whole_.IsEmpty()) cur = whole_.Value();
    if (cur.IsEmpty() || cur.IsDetached()) {
      cur = make_view(env, 0, mapping_->len);
      whole_ = Napi::Weak(cur);
    }
    return cur;
  }
  // mapFileOver(path, fileOffset, at, length): the file's pages in place of [at, at + length) of
  // this anonymous memory (ie::map_file_over); loadFile's, before anything reads the memory.
  Napi::Value MapFileOver(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!mapping_) IE_THROW(env, "KERNELS_CLOSED", "the mapping is closed");
    if (info.Length() < 4 || !info[0].IsString()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "mapFileOver(path, fileOffset, at, length)");
    const std::string path = info[0].As<Napi::String>().Utf8Value();
    const int64_t file_offset = int_arg(info, 1, 0, 1ll << 53, "fileOffset");
    const int64_t at = int_arg(info, 2, 0, (int64_t)mapping_->len, "at");
    const int64_t length = int_arg(info, 3, 1, (int64_t)mapping_->len, "length");
    std::string error;
    if (!ie::map_file_over(*mapping_, path, (uint64_t)file_offset, (uint64_t)at, (uint64_t)length, &error)) IE_THROW(env, "KERNELS_MAP_FAILED", error);
    return env.Undefined();
  }
  Napi::Value Length(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), mapping_ ? (double)mapping_->len : 0); }
  Napi::Value HugePages(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), mapping_ && mapping_->huge_pages); }
  Napi::Value HugePagesDetail(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), mapping_ ? mapping_->huge_pages_detail : "closed"); }
  // Detaches every JS view now (they become empty) and lets go of their hold on the memory,
  // which is unmapped once no Matrix, Program or running operation uses it. Waiting for the
  // collector to take the views instead left closed anonymous memory mapped, unseen by V8's
  // heap accounting (a benchmark making 1 GiB sets in turn grew to 24 GiB).
  Napi::Value Close(const Napi::CallbackInfo& info) {
    AddonData* ad = info.Env().GetInstanceData<AddonData>();
    if (ad && ad->ledger->inflight > 0 && mapping_) ad->ledger->closed_meanwhile.push_back(mapping_);
    for (auto& v : views_) {
      if (v.ref.IsEmpty()) continue;
      Napi::ArrayBuffer ab = v.ref.Value();
      if (ab.IsEmpty()) continue;  // collected: its finalizer owns (and deletes) the hold
      if (!ab.IsDetached()) ab.Detach();
      v.hold->reset();  // the finalizer still deletes the (now empty) hold later
    }
    views_.clear();
    pruned_at_ = 0;
    whole_.Reset();
    mapping_.reset();
    return info.Env().Undefined();
  }
  struct View_ {
    Napi::Reference<Napi::ArrayBuffer> ref;  // weak
    std::shared_ptr<ie::Mapping>* hold;      // valid while ref's buffer is alive
  };
  std::shared_ptr<ie::Mapping> mapping_;
  Napi::Reference<Napi::ArrayBuffer> whole_;
  std::vector<View_> views_;
  size_t pruned_at_ = 0;
};

// ---------------------------------------------------------------- Matrix

class MatrixWrap : public Napi::ObjectWrap<MatrixWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Matrix", {InstanceAccessor<&MatrixWrap::Rows>("rows"), InstanceAccessor<&MatrixWrap::Cols>("cols"), InstanceMethod<&MatrixWrap::Dispose>("dispose"),
                                       InstanceMethod<&MatrixWrap::InterleaveRows16>("interleaveRows16"),
                                       InstanceMethod<&MatrixWrap::ReorderBlockedK>("reorderBlockedK")});
  }
  MatrixWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<MatrixWrap>(info) {
    require_token(info, "Matrix");
    info.This().As<Napi::Object>().TypeTag(&kMatrixTag);
  }
  static MatrixWrap* Unwrap(const Napi::Object& o) { return checked_unwrap<MatrixWrap>(o.Env(), o, &kMatrixTag, "Matrix"); }

  ie::MatrixPlan plan;                  // bound once, at creation, to the pinned bytes
  Pin pin;                              // the bytes' ArrayBuffer (a plain one or a mapping view)
  std::shared_ptr<ie::Mapping> mapping; // keeps a mapped region mapped
  bool disposed = false;
  int inflight = 0;                     // async operations using the matrix (JS thread only)

  // The plan, if the matrix may be used now. The bytes are pinned, so they cannot go away; a
  // plain buffer that JavaScript detached (transferred) is refused all the same, since its
  // memory now belongs to someone else. A mapping's views are detached by close(), which
  // leaves the matrix working: the mapping stays mapped while the matrix holds it.
  const ie::MatrixPlan& bound(Napi::Env env) {
    if (disposed) IE_THROW(env, "KERNELS_CLOSED", "the matrix was disposed");
    if (!plan.data) IE_THROW(env, "KERNELS_CLOSED", "the matrix has no data");
    if (!mapping && !pin.intact()) IE_THROW(env, "KERNELS_DETACHED", "the matrix's buffer was detached or shrunk");
    return plan;
  }
  // An async operation starts / ends using the matrix; a dispose() in between takes effect at the end.
  void acquire() { inflight++; }
  void release_op() {
    if (--inflight == 0 && disposed) drop();
  }

 private:
  void drop() {
    pin = Pin();
    mapping.reset();
  }
  // Lets go of the buffer (or mapping) now instead of at garbage collection; while an async
  // operation uses the matrix, when that operation ends. Later use throws KERNELS_CLOSED.
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    disposed = true;
    if (inflight == 0) drop();
    return info.Env().Undefined();
  }
  // Reorders the matrix's own bytes into 16-row records and rebinds it (ie::interleave_rows16).
  // Programs compiled over the matrix hold its plan, so they see the new layout.
  Napi::Value InterleaveRows16(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const ie::MatrixPlan& p = bound(env);
    if (inflight > 0) IE_THROW(env, "KERNELS_BUSY", "the matrix is in use by an async operation; interleave it before running anything over it");
    std::string error;
    if (!ie::interleave_rows16(plan, const_cast<uint8_t*>(p.data), &error)) IE_THROW(env, "KERNELS_BAD_MATRIX", "cannot interleave the matrix: " + error);
    return env.Undefined();
  }
  Napi::Value ReorderBlockedK(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const ie::MatrixPlan& p = bound(env);
    if (inflight > 0) IE_THROW(env, "KERNELS_BUSY", "the matrix is in use by an async operation; reorder it before running anything over it");
    if (info.Length() < 1 || !info[0].IsNumber()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "reorderBlockedK takes the panel width in columns");
    const double b = info[0].As<Napi::Number>().DoubleValue();
    if (!(b >= 1 && b <= (double)(1 << 30)) || b != (double)(int64_t)b) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "the panel width must be an integer in 1..2^30");
    std::string error;
    if (!ie::reorder_blocked_k(plan, const_cast<uint8_t*>(p.data), (int64_t)b, &error)) IE_THROW(env, "KERNELS_BAD_MATRIX", "cannot reorder the matrix into K-panels: " + error);
    return env.Undefined();
  }
  Napi::Value Rows(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)plan.d.N); }
  Napi::Value Cols(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)plan.d.K); }
};

// ---------------------------------------------------------------- Program

class ProgramWrap : public Napi::ObjectWrap<ProgramWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Program", {InstanceMethod<&ProgramWrap::Run>("run"), InstanceMethod<&ProgramWrap::RunAsync>("runAsync"), InstanceAccessor<&ProgramWrap::Size>("size")});
  }
  ProgramWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ProgramWrap>(info) {
    require_token(info, "Program");
    info.This().As<Napi::Object>().TypeTag(&kProgramTag);
  }
  static ProgramWrap* Unwrap(const Napi::Object& o) { return checked_unwrap<ProgramWrap>(o.Env(), o, &kProgramTag, "Program"); }

  Napi::ObjectReference owner;                     // the ContextWrap object
  std::vector<Napi::Reference<Napi::Value>> keep;  // buffers, params, matrices
  std::vector<MatrixWrap*> matrices;
  std::vector<Pin> buffers;                        // params and buffers, pinned for the program's life
  ie::Program program;
  bool compiled = false;
  bool busy = false;

  // Buffers and matrices must still be what they were at compile time.
  void check_alive(Napi::Env env) {
    if (!compiled) IE_THROW(env, "KERNELS_CLOSED", "the program was not compiled");
    if (busy) IE_THROW(env, "KERNELS_BUSY", "the program is already running");
    for (const Pin& b : buffers)
      if (!b.intact()) IE_THROW(env, "KERNELS_DETACHED", "a buffer of the program was detached");
    for (MatrixWrap* m : matrices) m->bound(env);
  }
  bool buffers_intact() const {
    for (const Pin& b : buffers)
      if (!b.intact()) return false;
    return true;
  }

 private:
  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)program.ops.size()); }
  Napi::Value Run(const Napi::CallbackInfo& info);
  Napi::Value RunAsync(const Napi::CallbackInfo& info);
};

// ---------------------------------------------------------------- Program specs
// A program spec read into plain structs (program/ops.h) without judging the values:
// program/compile_op.cc checks them all. What stops here is only what has no plain form: a
// buffer that is not a pinnable typed array, a Matrix that is not one (its type tag), a list
// of experts that is not an array.

ie::Num read_num(const Napi::Value& v) {
  ie::Num n;
  if (v.IsUndefined() || v.IsNull()) return n;
  if (!v.IsNumber()) {
    n.state = ie::Num::Other;
    return n;
  }
  n.state = ie::Num::Number;
  n.v = v.As<Napi::Number>().DoubleValue();
  return n;
}

ie::ViewArg read_view(const Napi::Value& av) {
  ie::ViewArg v;
  v.set = !av.IsUndefined();
  if (!av.IsArray() || av.As<Napi::Array>().Length() < 3) return v;
  Napi::Array a = av.As<Napi::Array>();
  v.shaped = true;
  v.buffer = read_num(a.Get(0u));
  v.offset = read_num(a.Get(1u));
  v.stride = read_num(a.Get(2u));
  return v;
}

// One op object's fields, by their TypeScript names; matrices are unwrapped and held by the program.
struct OpReader {
  Napi::Env env;
  Napi::Object o;
  ProgramWrap* pw;
  std::string where;

  ie::Num num(const char* key) const { return read_num(o.Get(key)); }
  ie::ViewArg view(const char* key) const { return read_view(o.Get(key)); }
  ie::Place<ie::Wire> place() const { return {num("posSlot"), num("seqSlot")}; }
  const ie::MatrixPlan* use_matrix(const Napi::Value& mv, const std::string& what) const {
    MatrixWrap* m = checked_unwrap<MatrixWrap>(env, mv, &kMatrixTag, what.c_str());
    m->bound(env);
    pw->matrices.push_back(m);
    pw->keep.push_back(Napi::Persistent(mv));
    return &m->plan;
  }
  const ie::MatrixPlan* matrix(const char* key) const {
    const Napi::Value mv = o.Get(key);
    return mv.IsUndefined() || mv.IsNull() ? nullptr : use_matrix(mv, where + "." + key);
  }
  std::vector<const ie::MatrixPlan*> matrices(const char* key) const {
    const Napi::Value av = o.Get(key);
    if (!av.IsArray()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + "." + key + " must be an array of Matrix");
    Napi::Array a = av.As<Napi::Array>();
    const uint32_t n = a.Length();
    if (n > 1u << 16) IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + "." + key + ": too many experts");
    std::vector<const ie::MatrixPlan*> out;
    for (uint32_t j = 0; j < n; j++) out.push_back(use_matrix(a.Get(j), where + "." + key + "[" + std::to_string(j) + "]"));
    return out;
  }
};

using W = ie::Wire;
void read_op(const OpReader& r, ie::EmbedOp<W>* a) {
  a->matrix = r.matrix("matrix");
  a->out = r.view("out");
  a->ids_slot = r.num("idsSlot");
}
void read_op(const OpReader& r, ie::RmsNormOp<W>* a) {
  a->x = r.view("x");
  a->weight = r.view("weight");
  a->out = r.view("out");
  a->n = r.num("n");
  a->eps = r.num("eps");
}
void read_op(const OpReader& r, ie::MatMulOp<W>* a) {
  a->matrix = r.matrix("matrix");
  a->x = r.view("x");
  a->out = r.view("out");
  a->activations = r.num("activations");
  a->last_row_only = r.num("lastRowOnly");
}
void read_op(const OpReader& r, ie::AddOp<W>* a) {
  a->a = r.view("a");
  a->b = r.view("b");
  a->out = r.view("out");
  a->n = r.num("n");
}
void read_op(const OpReader& r, ie::SwiGluOp<W>* a) {
  a->gate = r.view("gate");
  a->up = r.view("up");
  a->out = r.view("out");
  a->n = r.num("n");
}
void read_op(const OpReader& r, ie::RopeOp<W>* a) {
  a->x = r.view("x");
  a->cos = r.view("cos");
  a->sin = r.view("sin");
  a->heads = r.num("heads");
  a->head_dim = r.num("headDim");
  a->capacity = r.num("capacity");
  a->style = r.num("style");
  a->place = r.place();
}
void read_op(const OpReader& r, ie::StoreOp<W>* a) {
  a->x = r.view("x");
  a->cache = r.view("cache");
  a->n = r.num("n");
  a->capacity = r.num("capacity");
  a->slots = r.num("slots");
  a->positions = r.num("positions");
  a->kv_type = r.num("kvType");
  a->place = r.place();
}
void read_op(const OpReader& r, ie::AttentionOp<W>* a) {
  a->q = r.view("q");
  a->k = r.view("k");
  a->v = r.view("v");
  a->out = r.view("out");
  a->sinks = r.view("sinks");
  a->heads = r.num("heads");
  a->kv_heads = r.num("kvHeads");
  a->head_dim = r.num("headDim");
  a->capacity = r.num("capacity");
  a->slots = r.num("slots");
  a->window = r.num("window");
  a->positions = r.num("positions");
  a->kv_type = r.num("kvType");
  a->scale = r.num("scale");
  a->place = r.place();
}
void read_op(const OpReader& r, ie::MoeOp<W>* a) {
  a->x = r.view("x");
  a->router = r.view("router");
  a->out = r.view("out");
  a->gate_bias = r.view("gateBias");
  a->up_bias = r.view("upBias");
  a->down_bias = r.view("downBias");
  a->gate = r.matrices("gate");
  a->up = r.matrices("up");
  a->down = r.matrices("down");
  a->top_k = r.num("topK");
  a->limit = r.num("limit");
  a->alpha = r.num("alpha");
  a->activations = r.num("activations");
  const Napi::Value sv = r.o.Get("scratch");
  if (!sv.IsObject()) return;  // unshaped scratch views: compile says which
  const Napi::Object s = sv.As<Napi::Object>();
  a->scratch = {read_view(s.Get("x")), read_view(s.Get("gate")), read_view(s.Get("up")), read_view(s.Get("y"))};
}
void read_op(const OpReader& r, ie::ArgmaxOp<W>* a) {
  a->x = r.view("x");
  a->n = r.num("n");
  a->out_slot = r.num("outSlot");
}
void read_op(const OpReader& r, ie::GatherOp<W>* a) {
  a->x = r.view("x");
  a->out = r.view("out");
  a->n = r.num("n");
  a->rows_slot = r.num("rowsSlot");
}
void read_op(const OpReader& r, ie::TapOp<W>* a) {
  a->x = r.view("x");
  a->out = r.view("out");
  a->n = r.num("n");
}

// One reader per kind, indexed by OpKind (OpBody's alternatives follow its order).
using BodyReader = ie::OpBody<W> (*)(const OpReader&);
template <size_t I>
ie::OpBody<W> read_body(const OpReader& r) {
  std::variant_alternative_t<I, ie::OpBody<W>> a;
  read_op(r, &a);
  return ie::OpBody<W>(std::in_place_index<I>, std::move(a));
}
template <size_t... I>
constexpr std::array<BodyReader, sizeof...(I)> body_readers(std::index_sequence<I...>) {
  return {read_body<I>...};
}
constexpr auto kBodyReaders = body_readers(std::make_index_sequence<ie::kOpKindCount>());

ie::OpArgs read_op_args(const OpReader& r) {
  ie::OpArgs a;
  a.kind = r.num("kind");
  a.rows.m_slot = r.num("mSlot");
  a.rows.max_rows = r.num("maxRows");
  if (const auto k = ie::op_kind(a.kind)) a.body = kBodyReaders[(size_t)*k](r);
  return a;
}

// Params and buffers are pinned for the program's life: their memory stays allocated whatever
// JavaScript does (the ops' getters included); runs refuse buffers detached since.
void read_buffers(Napi::Env env, const Napi::Object& spec, ProgramWrap* pw, ie::ProgramArgs* args) {
  const Napi::Value params_v = spec.Get("params");
  const TypedView params = typed_view(env, params_v, napi_int32_array, "params");
  if (params.elems > (size_t)INT32_MAX) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "params is too long");
  args->params = reinterpret_cast<int32_t*>(params.data);
  args->params_len = (int)params.elems;
  pw->keep.push_back(Napi::Persistent(params_v));
  pw->buffers.emplace_back(params);
  const Napi::Value bufs_v = spec.Get("buffers");
  if (!bufs_v.IsArray()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "buffers must be an array of typed arrays");
  Napi::Array bufs = bufs_v.As<Napi::Array>();
  const uint32_t nbufs = bufs.Length();
  if (nbufs > 1u << 20) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "too many buffers");
  for (uint32_t i = 0; i < nbufs; i++) {
    const std::string what = "buffers[" + std::to_string(i) + "]";
    Napi::Value v = bufs.Get(i);
    if (!v.IsTypedArray()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", what + " must be a typed array");
    const auto t = v.As<Napi::TypedArray>().TypedArrayType();
    if (t != napi_float32_array && t != napi_uint16_array) IE_THROW(env, "KERNELS_BAD_ARGUMENT", what + " must be a Float32Array or Uint16Array");
    const TypedView tv = typed_view(env, v, t, what);
    args->buffers.push_back({tv.data, (uint64_t)tv.elems, t == napi_float32_array ? 4 : 2});
    pw->keep.push_back(Napi::Persistent(v));
    pw->buffers.emplace_back(tv);
  }
}

ie::ProgramArgs read_program(Napi::Env env, const Napi::Object& spec, ProgramWrap* pw) {
  ie::ProgramArgs args;
  args.max_rows = read_num(spec.Get("maxRows"));
  read_buffers(env, spec, pw, &args);
  const Napi::Value ops_v = spec.Get("ops");
  if (!ops_v.IsArray()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "ops must be an array");
  Napi::Array ops = ops_v.As<Napi::Array>();
  const uint32_t nops = ops.Length();
  if (nops > 1u << 20) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "too many ops");
  for (uint32_t i = 0; i < nops; i++) {
    const std::string where = "ops[" + std::to_string(i) + "]";
    const Napi::Value ov = ops.Get(i);
    if (!ov.IsObject()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + " must be an object");
    args.ops.push_back(read_op_args(OpReader{env, ov.As<Napi::Object>(), pw, where}));
  }
  return args;
}

// ---------------------------------------------------------------- Context

class ContextWrap : public Napi::ObjectWrap<ContextWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Context",
                       {InstanceMethod<&ContextWrap::Info>("info"), InstanceMethod<&ContextWrap::Close>("close"), InstanceMethod<&ContextWrap::MakeMatrix>("matrix"),
                        InstanceMethod<&ContextWrap::Gemv>("gemv"), InstanceMethod<&ContextWrap::Gemm>("gemm"), InstanceMethod<&ContextWrap::GemmAsync>("gemmAsync"),
                        InstanceMethod<&ContextWrap::Row>("row"), InstanceMethod<&ContextWrap::RmsNorm>("rmsnorm"), InstanceMethod<&ContextWrap::Softmax>("softmax"),
                        InstanceMethod<&ContextWrap::Rope>("rope"), InstanceMethod<&ContextWrap::Swiglu>("swiglu"), InstanceMethod<&ContextWrap::Add>("add"),
                        InstanceMethod<&ContextWrap::Scale>("scale"), InstanceMethod<&ContextWrap::Argmax>("argmax"), InstanceMethod<&ContextWrap::Dot>("dot"),
                        InstanceMethod<&ContextWrap::F32ToF16>("f32ToF16"), InstanceMethod<&ContextWrap::F16ToF32>("f16ToF32"), InstanceMethod<&ContextWrap::Attention>("attention"),
                        InstanceMethod<&ContextWrap::MapFile>("mapFile"), InstanceMethod<&ContextWrap::AllocateMemory>("allocateMemory"), InstanceMethod<&ContextWrap::NumaBind>("numaBind"), InstanceMethod<&ContextWrap::ReadBandwidth>("readBandwidth"), InstanceMethod<&ContextWrap::FmaPeak>("fmaPeak"),
                        InstanceMethod<&ContextWrap::Compile>("compile"), InstanceMethod<&ContextWrap::Touch>("touch")});
  }

  ContextWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ContextWrap>(info) {
    Napi::Env env = info.Env();
    Napi::Object o = info.Length() > 0 && info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(env);
    ie::ContextOptions opts;
    opts.threads = (int)int_opt(o, "threads", 0, 0, 1024);
    const std::string aff = str_opt(o, "affinity", "none");
    if (!ie::parse_affinity(aff, &opts.affinity)) IE_THROW(env, "KERNELS_BAD_OPTION", "affinity must be none, compact or scatter, got \"" + aff + "\"");
    const std::string numa = str_opt(o, "numa", "none");
    if (!ie::parse_numa_policy(numa, &opts.numa)) IE_THROW(env, "KERNELS_BAD_OPTION", "numa must be none, interleave or local, got \"" + numa + "\"");
    opts.isa = str_opt(o, "isa", "");
    std::string error;
    ctx_ = Context::create(opts, &error);
    if (!ctx_) IE_THROW(env, "KERNELS_BAD_OPTION", error);
    info.This().As<Napi::Object>().TypeTag(&kContextTag);
  }
  static ContextWrap* Unwrap(const Napi::Object& o) { return checked_unwrap<ContextWrap>(o.Env(), o, &kContextTag, "Context"); }

  Context& ctx(Napi::Env env) {
    if (!ctx_) IE_THROW(env, "KERNELS_CLOSED", "the kernel context is closed");
    return *ctx_;
  }
  std::atomic<int> inflight{0};
  bool close_requested = false;
  void release() { ctx_.reset(); }

 private:
  std::unique_ptr<Context> ctx_;

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Context& c = ctx(env);
    Napi::Object o = Napi::Object::New(env);
    o.Set("isa", ie::isa_name(c.k.isa));
    o.Set("int8Activations", c.k.q8_variant);
    o.Set("gemm", c.k.gemm.name);
    o.Set("int8Gemm", c.k.gemm_q8_name);
    o.Set("q4Rows16", c.k.q4x16.worth);
    o.Set("i8Rows16", c.k.i8x16.worth);
    o.Set("iq4NlRows16", c.k.iq4x16.worth);
    o.Set("q4kRows16", c.k.q4kx16.worth);
    o.Set("q5kRows16", c.k.q5kx16.worth);
    o.Set("q6kRows16", c.k.q6kx16.worth);
    o.Set("threads", c.pool.size());
    o.Set("affinity", ie::affinity_name(c.affinity));
    Napi::Array pinned = Napi::Array::New(env);
    for (size_t i = 0; i < c.pool.pinned_cpus().size(); i++) pinned.Set(i, c.pool.pinned_cpus()[i]);
    o.Set("pinnedCpus", pinned);
    o.Set("pinError", c.pool.pin_error());
    o.Set("physicalCores", (double)c.topo.cores.size());
    o.Set("logicalCpus", c.topo.logical_cpus);
    const ie::NumaReport nr = ie::numa_describe(c.topo, c.numa);
    Napi::Object numa = Napi::Object::New(env);
    numa.Set("nodes", nr.nodes);
    numa.Set("policy", ie::numa_policy_name(c.numa));
    numa.Set("detail", nr.detail);
    o.Set("numa", numa);
    Napi::Object f = Napi::Object::New(env);
    const auto& cf = c.features;
    f.Set("avx2", cf.avx2); f.Set("fma", cf.fma); f.Set("f16c", cf.f16c);
    f.Set("avx512f", cf.avx512f); f.Set("avx512bw", cf.avx512bw); f.Set("avx512vl", cf.avx512vl); f.Set("avx512dq", cf.avx512dq);
    f.Set("avx512vnni", cf.avx512vnni); f.Set("avx512bf16", cf.avx512bf16); f.Set("avx512fp16", cf.avx512fp16); f.Set("avxVnni", cf.avx_vnni);
    o.Set("features", f);
    o.Set("cpu", cf.brand);
    Napi::Array supported = Napi::Array::New(env);
    int i = 0;
    for (ie::Isa isa : ie::kAllIsas)
      if (ie::isa_supported(cf, isa)) supported.Set(i++, ie::isa_name(isa));
    o.Set("supportedIsas", supported);
    return o;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    close_requested = true;
    if (inflight.load() == 0) release();
    return info.Env().Undefined();
  }

  Napi::Value MakeMatrix(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ctx(env);
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsTypedArray()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "matrix(descriptor, Uint8Array)");
    const ie::MatrixDesc d = parse_desc(info[0].As<Napi::Object>());  // runs getters: before any pointer is taken
    if (d.bytes < 1) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "bytes must be at least 1");
    MappingWrap* mw = nullptr;
    if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) mw = MappingWrap::Unwrap(info[2].As<Napi::Object>());
    const TypedView tv = typed_view(env, info[1], napi_uint8_array, "matrix data");
    if (tv.bytes != d.bytes) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "matrix data is " + std::to_string(tv.elems) + " bytes, the descriptor says " + std::to_string(d.bytes));
    std::string error;
    ie::MatrixPlan plan;
    if (!ie::plan_matrix(d, &plan, &error)) IE_THROW(env, "KERNELS_BAD_MATRIX", error);
    const uint8_t* base = tv.data;
    const size_t align = (size_t)ie::weight_elem_bytes(d.type);
    if (reinterpret_cast<uintptr_t>(base) % (align < 4 ? 4 : align) != 0 && d.type != ie::WeightType::I8 && d.type != ie::WeightType::Q4) IE_THROW(env, "KERNELS_MISALIGNED", "matrix data must be aligned to its element size");
    AddonData* ad = env.GetInstanceData<AddonData>();
    Napi::Object obj = ad->matrix_ctor.New({construct_token(env)});
    MatrixWrap* m = MatrixWrap::Unwrap(obj);
    m->plan = std::move(plan);
    m->pin = Pin(tv);  // the bytes stay allocated (or mapped) while the matrix lives
    // A view into one of this process's mappings keeps that mapping alive on its own, and the
    // matrix keeps working after the mapping is closed.
    if (mw) {
      auto mp = mw->mapping();
      if (mp && base >= mp->data && (uint64_t)(base - mp->data) + d.bytes <= mp->len) m->mapping = mp;
    }
    m->plan.bind(base);
    return obj;
  }

  MatrixWrap* matrix_arg(const Napi::CallbackInfo& info, size_t i) {
    if (info.Length() <= i) IE_THROW(info.Env(), "KERNELS_BAD_ARGUMENT", "expected a Matrix");
    return checked_unwrap<MatrixWrap>(info.Env(), info[i], &kMatrixTag, "Matrix");
  }

  Napi::Value Gemv(const Napi::CallbackInfo& info) {
    Context& c = ctx(info.Env());
    MatrixWrap* m = matrix_arg(info, 0);
    const auto& p = m->bound(info.Env());
    const float* x = f32_arg(info, 1, (size_t)p.d.K, "x");
    float* y = f32_arg(info, 2, (size_t)p.d.N, "y");
    const int mode = info.Length() > 3 ? (int)int_arg(info, 3, 0, 1, "activations") : 0;
    ie::gemv(c, p, x, y, (ie::Activations)mode);
    return info.Env().Undefined();
  }

  Napi::Value Gemm(const Napi::CallbackInfo& info) {
    Context& c = ctx(info.Env());
    MatrixWrap* m = matrix_arg(info, 0);
    const auto& p = m->bound(info.Env());
    const int M = (int)int_arg(info, 2, 1, 1 << 20, "M");
    const float* X = f32_arg(info, 1, (size_t)p.d.K * M, "X");
    float* Y = f32_arg(info, 3, (size_t)p.d.N * M, "Y");
    ie::gemm(c, p, X, M, Y);
    return info.Env().Undefined();
  }

  // The worker holds everything it touches: the matrix (its dispose() waits for the worker),
  // X's and Y's memory (pinned: a transfer or detach while it runs cannot free it), and the
  // context (its close() waits for the worker).
  class GemmWorker : public Napi::AsyncWorker {
   public:
    GemmWorker(Napi::Env env, ContextWrap* owner, MatrixWrap* m, const float* X, int M, float* Y, Pin x, Pin y, std::vector<Napi::Reference<Napi::Value>> keep)
        : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), owner_(owner), ctx_(&owner->ctx(env)), m_(m), X_(X), M_(M), Y_(Y), x_(std::move(x)), y_(std::move(y)), keep_(std::move(keep)), ledger_(env.GetInstanceData<AddonData>()->ledger) {
      owner_->inflight.fetch_add(1);
      m_->acquire();
      ledger_->started();
    }
    Napi::Promise promise() { return deferred_.Promise(); }
    void Execute() override { ie::gemm(*ctx_, m_->plan, X_, M_, Y_); }
    void OnOK() override {
      settle_quietly([&] {
        const bool intact = x_.intact() && y_.intact();
        done();
        if (intact) deferred_.Resolve(Env().Undefined());
        else deferred_.Reject(coded(Env(), "KERNELS_DETACHED", "X or Y was detached while gemmAsync ran; Y's new owner holds the result").Value());
      });
    }
    void OnError(const Napi::Error& e) override {
      settle_quietly([&] {
        done();
        deferred_.Reject(coded(Env(), "KERNELS_BAD_ARGUMENT", e.Message()).Value());
      });
    }

   private:
    // Called once, first in OnOK or OnError: what the worker held is released before the promise
    // settles, so a then() that disposes the matrix or closes the context finds it idle.
    void done() {
      m_->release_op();
      x_ = Pin();
      y_ = Pin();
      if (owner_->inflight.fetch_sub(1) == 1 && owner_->close_requested) owner_->release();
      ledger_->settled();
    }
    Napi::Promise::Deferred deferred_;
    ContextWrap* owner_;
    Context* ctx_;
    MatrixWrap* m_;
    const float* X_;
    int M_;
    float* Y_;
    Pin x_, y_;
    std::vector<Napi::Reference<Napi::Value>> keep_;
    std::shared_ptr<AsyncLedger> ledger_;
  };

  // Same as gemm, on a libuv worker thread; resolves when Y is written. X and Y stay pinned
  // until the promise settles; a transfer meanwhile rejects it with KERNELS_DETACHED.
  Napi::Value GemmAsync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ctx(env);
    MatrixWrap* m = matrix_arg(info, 0);
    const auto& p = m->bound(env);
    const int M = (int)int_arg(info, 2, 1, 1 << 20, "M");
    const TypedView X = typed_view(env, info[1], napi_float32_array, "X");
    const TypedView Y = typed_view(env, info.Length() > 3 ? info[3] : Napi::Value(), napi_float32_array, "Y");
    if (X.elems < (size_t)p.d.K * M) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "X has " + std::to_string(X.elems) + " elements, needs " + std::to_string((size_t)p.d.K * M));
    if (Y.elems < (size_t)p.d.N * M) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "Y has " + std::to_string(Y.elems) + " elements, needs " + std::to_string((size_t)p.d.N * M));
    std::vector<Napi::Reference<Napi::Value>> keep;
    keep.push_back(Napi::Persistent(info[0]));
    keep.push_back(Napi::Persistent(info[1]));
    keep.push_back(Napi::Persistent(info[3]));
    keep.push_back(Napi::Persistent(Value().As<Napi::Value>()));
    auto* w = new GemmWorker(env, this, m, reinterpret_cast<const float*>(X.data), M, reinterpret_cast<float*>(Y.data), Pin(X), Pin(Y), std::move(keep));
    Napi::Promise pr = w->promise();
    w->Queue();
    return pr;
  }

  Napi::Value Row(const Napi::CallbackInfo& info) {
    Context& c = ctx(info.Env());
    MatrixWrap* m = matrix_arg(info, 0);
    const auto& p = m->bound(info.Env());
    const int64_t r = int_arg(info, 1, 0, p.d.N - 1, "row");
    float* out = f32_arg(info, 2, (size_t)p.d.K, "out");
    ie::matrix_row(c, p, r, out);
    return info.Env().Undefined();
  }

  // rmsnorm(x, w, eps, out, n)
  Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
    Context& c = ctx(info.Env());
    const int n = (int)int_arg(info, 4, 1, 1 << 30, "n");
    if (info.Length() < 3 || !info[2].IsNumber()) IE_THROW(info.Env(), "KERNELS_BAD_ARGUMENT", "eps must be a number");
    c.k.rmsnorm(f32_arg(info, 0, n, "x"), f32_arg(info, 1, n, "weight"), n, info[2].As<Napi::Number>().FloatValue(), f32_arg(info, 3, n, "out"));
    return info.Env().Undefined();
  }
  // softmax(x, n)
  Napi::Value Softmax(const Napi::CallbackInfo& info) {
    Context& c = ctx(info.Env());
    const int n = (int)int_arg(info, 1, 1, 1 << 30, "n");
    c.k.softmax(f32_arg(info, 0, n, "x"), n, -INFINITY);
    return info.Env().Undefined();
  }
  // rope(x, nHeads, headDim, cos, sin, style)
  Napi::Value Rope(const Napi::CallbackInfo& info) {
    Context& c = ctx(info.Env());
    const int heads = (int)int_arg(info, 1, 1, 1 << 16, "nHeads");
    const int hd = (int)int_arg(info, 2, 2, 1 << 16, "headDim");
    if (hd % 2) IE_THROW(info.Env(), "KERNELS_BAD_ARGUMENT", "headDim must be even");
    const int style = (int)int_arg(info, 5, 0, 1, "style");
    c.k.rope(f32_arg(info, 0, (size_t)heads * hd, "x"), heads, hd, f32_arg(info, 3, hd / 2, "cos"), f32_arg(info, 4, hd / 2, "sin"), style);
    return info.Env().Undefined();
  }
  // swiglu(gate, up, out, n)
  Napi::Value Swiglu(const Napi::CallbackInfo& info) {
    Context& c = ctx(info.Env());
    const int n = (int)int_arg(info, 3, 1, 1 << 30, "n");
    c.k.swiglu(f32_arg(info, 0, n, "gate"), f32_arg(info, 1, n, "up"), f32_arg(info, 2, n, "out"), n);
    return info.Env().Undefined();
  }
  // add(a, b, out, n)
  Napi::Value Add(const Napi::CallbackInfo& info) {
    Context& c = ctx(info.Env());
    const int n = (int)int_arg(info, 3, 1, 1 << 30, "n");
    c.k.add(f32_arg(info, 0, n, "a"), f32_arg(info, 1, n, "b"), f32_arg(info, 2, n, "out"), n);
    return info.Env().Undefined();
  }
  // scale(x, s, n)
  Napi::Value Scale(const Napi::CallbackInfo& info) {
    Context& c = ctx(info.Env());
    const int n = (int)int_arg(info, 2, 1, 1 << 30, "n");
    if (!info[1].IsNumber()) IE_THROW(info.Env(), "KERNELS_BAD_ARGUMENT", "s must be a number");
    c.k.scale(f32_arg(info, 0, n, "x"), info[1].As<Napi::Number>().FloatValue(), n);
    return info.Env().Undefined();
  }
  // argmax(x, n)
  Napi::Value Argmax(const Napi::CallbackInfo& info) {
    Context& c = ctx(info.Env());
    const int n = (int)int_arg(info, 1, 1, 1 << 30, "n");
    return Napi::Number::New(info.Env(), c.k.argmax(f32_arg(info, 0, n, "x"), n));
  }
  // dot(a, b, n)
  Napi::Value Dot(const Napi::CallbackInfo& info) {
    Context& c = ctx(info.Env());
    const int n = (int)int_arg(info, 2, 1, 1 << 30, "n");
    return Napi::Number::New(info.Env(), c.k.dot(f32_arg(info, 0, n, "a"), f32_arg(info, 1, n, "b"), n));
  }
  // f32ToF16(x: Float32Array, out: Uint16Array, n)
  Napi::Value F32ToF16(const Napi::CallbackInfo& info) {
    Context& c = ctx(info.Env());
    const int n = (int)int_arg(info, 2, 1, 1 << 30, "n");
    c.k.f32_to_f16(f32_arg(info, 0, n, "x"), typed_arg<uint16_t>(info, 1, napi_uint16_array, n, "out"), n);
    return info.Env().Undefined();
  }
  // f16ToF32(x: Uint16Array, out: Float32Array, n)
  Napi::Value F16ToF32(const Napi::CallbackInfo& info) {
    Context& c = ctx(info.Env());
    const int n = (int)int_arg(info, 2, 1, 1 << 30, "n");
    c.k.f16_to_f32(typed_arg<uint16_t>(info, 0, napi_uint16_array, n, "x"), f32_arg(info, 1, n, "out"), n);
    return info.Env().Undefined();
  }

  // attention({q, k, v, out, kvType, nQueries, pos0, nHeads, nKvHeads, headDim, kvStride, window, scale})
  // Every field is read (getters run) before any buffer pointer is taken; every count is required.
  Napi::Value Attention(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ctx(env);
    if (info.Length() < 1 || !info[0].IsObject()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "attention(args)");
    Napi::Object o = info[0].As<Napi::Object>();
    ie::AttentionArgs a;
    a.n_heads = (int)int_req(o, "nHeads", 1, 1 << 16);
    a.n_kv_heads = (int)int_req(o, "nKvHeads", 1, 1 << 16);
    a.head_dim = (int)int_req(o, "headDim", 1, 1 << 16);
    if (a.n_kv_heads < 1 || a.n_heads % a.n_kv_heads) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "nHeads must be a multiple of nKvHeads");
    a.n_queries = (int)int_opt(o, "nQueries", 1, 1, 1 << 20);
    a.pos0 = (int)int_req(o, "pos0", 0, 1 << 24);
    const int64_t kvw = (int64_t)a.n_kv_heads * a.head_dim;
    a.kv_stride = int_opt(o, "kvStride", kvw, kvw, 1ll << 30);
    a.window = (int)int_opt(o, "window", 0, 0, 1 << 24);
    a.kv_type = (ie::KvType)int_opt(o, "kvType", 0, 0, 1);
    const Napi::Value scale = o.Get("scale");
    if (!scale.IsNumber()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "scale must be a number");
    a.scale = scale.As<Napi::Number>().FloatValue();
    const Napi::Value q = o.Get("q"), k = o.Get("k"), v = o.Get("v"), out = o.Get("out"), sinks = o.Get("sinks");
    // From here on no JavaScript runs.
    const uint64_t width = (uint64_t)a.n_heads * (uint64_t)a.head_dim;  // <= 2^32
    a.q_stride = a.out_stride = (ptrdiff_t)width;
    const uint64_t positions = (uint64_t)a.pos0 + (uint64_t)a.n_queries;  // >= 1
    uint64_t cache_len = 0, rows_len = 0;
    if (!ck_mul(positions - 1, (uint64_t)a.kv_stride, &cache_len) || !ck_add(cache_len, (uint64_t)kvw, &cache_len) || !ck_mul(width, (uint64_t)a.n_queries, &rows_len))
      IE_THROW(env, "KERNELS_BAD_ARGUMENT", "attention sizes overflow");
    auto get_ta = [&](const Napi::Value& val, const char* key, napi_typedarray_type type, uint64_t n) -> void* {
      const TypedView tv = typed_view(env, val, type, key);
      if ((uint64_t)tv.elems < n) IE_THROW(env, "KERNELS_BAD_ARGUMENT", std::string(key) + " has " + std::to_string(tv.elems) + " elements, needs " + std::to_string(n));
      return tv.data;
    };
    const napi_typedarray_type kvt = a.kv_type == ie::KvType::F16 ? napi_uint16_array : napi_float32_array;
    a.q = static_cast<const float*>(get_ta(q, "q", napi_float32_array, rows_len));
    if (!sinks.IsUndefined() && !sinks.IsNull()) a.sinks = static_cast<const float*>(get_ta(sinks, "sinks", napi_float32_array, (uint64_t)a.n_heads));
    a.out = static_cast<float*>(get_ta(out, "out", napi_float32_array, rows_len));
    a.k = get_ta(k, "k", kvt, cache_len);
    a.v = get_ta(v, "v", kvt, cache_len);
    const uint64_t scratch = ie::attention_scratch_floats(a.n_heads, a.n_kv_heads, a.head_dim, (int64_t)a.pos0 + a.n_queries, a.window, a.n_queries);
    if (scratch > ie::kMaxAttentionScratchFloats)
      IE_THROW(env, "KERNELS_BAD_ARGUMENT",
               "attention over " + std::to_string((int64_t)a.pos0 + a.n_queries) + " positions with " + std::to_string(a.n_heads / a.n_kv_heads) + " query heads per KV head needs " +
                   std::to_string(scratch * 4 >> 20) + " MiB of scratch a thread, over the " + std::to_string(ie::kMaxAttentionScratchFloats * 4 >> 20) + " MiB limit");
    ie::attention(ctx(env), a);
    return env.Undefined();
  }

  // mapFile(path, offset, length, advice, hugePages, populate) -> Mapping
  Napi::Value MapFile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "mapFile(path, offset, length, advice, hugePages, populate)");
    const std::string path = info[0].As<Napi::String>().Utf8Value();
    const uint64_t offset = (uint64_t)int_arg(info, 1, 0, 1ll << 53, "offset");
    const uint64_t length = (uint64_t)int_arg(info, 2, 1, 1ll << 53, "length");
    ie::Advice advice = ie::Advice::Normal;
    const std::string adv = info.Length() > 3 && info[3].IsString() ? info[3].As<Napi::String>().Utf8Value() : "normal";
    if (!ie::parse_advice(adv, &advice)) IE_THROW(env, "KERNELS_BAD_OPTION", "advice must be normal, sequential, random or willneed");
    const bool huge = info.Length() > 4 && info[4].ToBoolean();
    const bool populate = info.Length() > 5 && info[5].ToBoolean();
    std::string error;
    auto m = ie::map_file(path, offset, length, advice, huge, populate, &error);
    if (!m) IE_THROW(env, "KERNELS_MAP_FAILED", error);
    AddonData* ad = env.GetInstanceData<AddonData>();
    Napi::Object obj = ad->mapping_ctor.New({construct_token(env)});
    MappingWrap::Unwrap(obj)->Attach(m);
    return obj;
  }

  // allocateMemory(length, hugePages) -> Mapping (zeroed anonymous memory, 2 MiB-aligned)
  Napi::Value AllocateMemory(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const uint64_t length = (uint64_t)int_arg(info, 0, 1, 1ll << 53, "length");
    const bool huge = info.Length() > 1 && info[1].ToBoolean();
    std::string error;
    auto m = ie::allocate_memory(length, huge, &error);
    if (!m) IE_THROW(env, "KERNELS_OUT_OF_MEMORY", error);
    AddonData* ad = env.GetInstanceData<AddonData>();
    Napi::Object obj = ad->mapping_ctor.New({construct_token(env)});
    MappingWrap::Unwrap(obj)->Attach(m);
    return obj;
  }

  // numaBind(mapping) -> {nodes, policy, applied, detail}
  Napi::Value NumaBind(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Context& c = ctx(env);
    if (info.Length() < 1) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "numaBind(mapping)");
    auto m = checked_unwrap<MappingWrap>(env, info[0], &kMappingTag, "Mapping")->mapping();
    if (!m) IE_THROW(env, "KERNELS_CLOSED", "the mapping is closed");
    const int first = c.pool.pinned_cpus().empty() ? 0 : c.pool.pinned_cpus()[0];
    const ie::NumaReport r = ie::numa_bind(c.topo, c.numa, m->base, m->map_len, first);
    Napi::Object o = Napi::Object::New(env);
    o.Set("nodes", r.nodes);
    o.Set("policy", ie::numa_policy_name(r.requested));
    o.Set("applied", r.applied);
    o.Set("detail", r.detail);
    return o;
  }

  // compile({ buffers, params, maxRows, ops }) -> Program. The spec is read into plain structs
  // (read_program); program/compile_op.cc checks every view against the declared maxima, and
  // runs check their params against the same maxima.
  Napi::Value Compile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ctx(env);
    if (info.Length() < 1 || !info[0].IsObject()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "compile(spec)");
    AddonData* ad = env.GetInstanceData<AddonData>();
    Napi::Object obj = ad->program_ctor.New({construct_token(env)});
    ProgramWrap* pw = ProgramWrap::Unwrap(obj);
    pw->owner = Napi::Persistent(Value());
    const ie::ProgramArgs args = read_program(env, info[0].As<Napi::Object>(), pw);
    const std::string err = ie::compile_program(args, &pw->program);
    if (!err.empty()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", err);
    pw->compiled = true;
    return obj;
  }

  // touch(mapping, bytes, stride, startOffset) -> { seconds, next }: the work-touch of the
  // benchmark harness: reads `bytes` bytes of the mapping, one byte every `stride`, wrapping.
  Napi::Value Touch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "touch(mapping, bytes, stride, start)");
    auto m = checked_unwrap<MappingWrap>(env, info[0], &kMappingTag, "Mapping")->mapping();
    if (!m) IE_THROW(env, "KERNELS_CLOSED", "the mapping is closed");
    const int64_t bytes = int_arg(info, 1, 0, 1ll << 40, "bytes");
    const int64_t stride = int_arg(info, 2, 1, 1ll << 30, "stride");
    int64_t at = int_arg(info, 3, 0, 1ll << 53, "start") % (int64_t)m->len;
    const auto t0 = std::chrono::steady_clock::now();
    uint64_t sum = 0;
    // What moves from memory is whole 64-byte lines: count the distinct lines the reads land in.
    int64_t lines = 0, last_line = -1;
    for (int64_t done = 0; done < bytes; done += stride) {
      sum += m->data[at];
      const int64_t line = (int64_t)(reinterpret_cast<uintptr_t>(m->data + at) >> 6);
      if (line != last_line) lines++;
      last_line = line;
      at += stride;
      if (at >= (int64_t)m->len) at -= (int64_t)m->len;
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    o.Set("next", (double)at);
    o.Set("lines", (double)lines);
    o.Set("checksum", (double)sum);
    return o;
  }

  // fmaPeak(seconds) -> GFLOP/s of independent FMAs at the ISA's width on every pool thread.
  Napi::Value FmaPeak(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Context& c = ctx(env);
    if (info.Length() < 1 || !info[0].IsNumber()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "fmaPeak(seconds)");
    const double s = info[0].As<Napi::Number>().DoubleValue();
    if (!(s > 0 && s <= 10)) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "seconds must be in (0, 10]");
    return Napi::Number::New(env, ie::measure_fma_peak(c, s));
  }

  // readBandwidth(buffer: Uint8Array, passes) -> { seconds, variant, checksum }: the fastest pass
  // of the best streaming reader over the buffer, all pool threads reading (mem/read_probe.h).
  Napi::Value ReadBandwidth(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Context& c = ctx(env);
    if (info.Length() < 1 || !info[0].IsTypedArray()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "readBandwidth(Uint8Array, passes)");
    const TypedView tv = typed_view(env, info[0], napi_uint8_array, "readBandwidth's buffer");
    const uint8_t* p = tv.data;
    const size_t n = tv.bytes / 64 * 64;
    const int passes = (int)int_arg(info, 1, 1, 1000, "passes");
    const ie::ReadProbe r = ie::probe_read_bandwidth(c, p, n, passes);
    if (r.bytes == 0) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "readBandwidth needs a buffer of at least 128 bytes");
    Napi::Object o = Napi::Object::New(env);
    o.Set("bytes", (double)r.bytes);
    o.Set("seconds", r.seconds);
    o.Set("variant", r.variant);
    o.Set("checksum", r.checksum);
    return o;
  }
};


// Holds the program (and through it its pinned buffers and its matrices, whose dispose() waits
// for the run) and the context (whose close() waits for the run).
class ProgramWorker : public Napi::AsyncWorker {
 public:
  ProgramWorker(Napi::Env env, ProgramWrap* p, ContextWrap* c)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), p_(p), c_(c), ctx_(&c->ctx(env)), ledger_(env.GetInstanceData<AddonData>()->ledger) {
    p_->busy = true;
    c_->inflight.fetch_add(1);
    for (MatrixWrap* m : p_->matrices) m->acquire();
    self_ = Napi::Persistent(p->Value());
    ledger_->started();
  }
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    std::string err = ie::run_program(*ctx_, p_->program);
    if (!err.empty()) SetError(err);
  }
  void OnOK() override {
    settle_quietly([&] {
      done();
      if (p_->buffers_intact()) deferred_.Resolve(Env().Undefined());
      else deferred_.Reject(coded(Env(), "KERNELS_DETACHED", "a buffer of the program was detached while it ran").Value());
    });
  }
  void OnError(const Napi::Error& e) override {
    settle_quietly([&] {
      done();
      deferred_.Reject(coded(Env(), "KERNELS_BAD_ARGUMENT", e.Message()).Value());
    });
  }

 private:
  // Called once, first in OnOK or OnError (see GemmWorker::done).
  void done() {
    p_->busy = false;
    for (MatrixWrap* m : p_->matrices) m->release_op();
    if (c_->inflight.fetch_sub(1) == 1 && c_->close_requested) c_->release();
    ledger_->settled();
  }
  Napi::Promise::Deferred deferred_;
  ProgramWrap* p_;
  ContextWrap* c_;
  Context* ctx_;
  std::shared_ptr<AsyncLedger> ledger_;
  Napi::ObjectReference self_;
};

Napi::Value ProgramWrap::Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check_alive(env);
  ContextWrap* c = ContextWrap::Unwrap(owner.Value());
  const std::string err = ie::run_program(c->ctx(env), program);
  if (!err.empty()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", err);
  return env.Undefined();
}

Napi::Value ProgramWrap::RunAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check_alive(env);
  ContextWrap* c = ContextWrap::Unwrap(owner.Value());
  c->ctx(env);
  auto* w = new ProgramWorker(env, this, c);
  Napi::Promise pr = w->promise();
  w->Queue();
  return pr;
}

}  // namespace

static Napi::Object ConstantsObject(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
  c.Set("alignment", ie::kAlignment);
  c.Set("q4SymmetricZero", ie::kQ4SymmetricZero);
  Napi::Array g = Napi::Array::New(env);
  for (int i = 0; i < 3; i++) g.Set(i, ie::kGroupSizes[i]);
  c.Set("groupSizes", g);
  Napi::Object wt = Napi::Object::New(env);
  wt.Set("f32", (int)ie::WeightType::F32); wt.Set("f16", (int)ie::WeightType::F16); wt.Set("bf16", (int)ie::WeightType::BF16);
  wt.Set("i8", (int)ie::WeightType::I8); wt.Set("q4", (int)ie::WeightType::Q4);
  wt.Set("q4_k", (int)ie::WeightType::Q4_K); wt.Set("q5_k", (int)ie::WeightType::Q5_K); wt.Set("q6_k", (int)ie::WeightType::Q6_K);
  wt.Set("iq4_nl", (int)ie::WeightType::IQ4_NL); wt.Set("mxfp4", (int)ie::WeightType::MXFP4);
  c.Set("weightTypes", wt);
  Napi::Object bf = Napi::Object::New(env);
  for (const auto& [name, t] : {std::pair<const char*, ie::WeightType>{"q4_k", ie::WeightType::Q4_K}, {"q5_k", ie::WeightType::Q5_K}, {"q6_k", ie::WeightType::Q6_K}, {"iq4_nl", ie::WeightType::IQ4_NL}, {"mxfp4", ie::WeightType::MXFP4}}) {
    Napi::Object f = Napi::Object::New(env);
    f.Set("elems", ie::block_elems(t));
    f.Set("bytes", ie::block_bytes(t));
    bf.Set(name, f);
  }
  c.Set("blockFormats", bf);
  Napi::Object st = Napi::Object::New(env);
  st.Set("f16", (int)ie::ScaleType::F16); st.Set("bf16", (int)ie::ScaleType::BF16); st.Set("f32", (int)ie::ScaleType::F32);
  c.Set("scaleTypes", st);
  Napi::Object kv = Napi::Object::New(env);
  kv.Set("f32", (int)ie::KvType::F32); kv.Set("f16", (int)ie::KvType::F16);
  c.Set("kvTypes", kv);
  // The program's wire enums (program/ops.h, cpu/kernel_table.h, matmul/matmul.h).
  Napi::Object kinds = Napi::Object::New(env);
  for (const ie::OpKindName& k : ie::kOpKindNames) kinds.Set(k.name, (int)k.kind);
  c.Set("opKinds", kinds);
  Napi::Object act = Napi::Object::New(env);
  act.Set("f32", (int)ie::Activations::F32); act.Set("int8", (int)ie::Activations::Int8);
  c.Set("activations", act);
  Napi::Object rope = Napi::Object::New(env);
  rope.Set("adjacent", (int)ie::RopeStyle::Adjacent); rope.Set("rotate_half", (int)ie::RopeStyle::RotateHalf);
  c.Set("ropeStyles", rope);
  c.Set("blockQ4_0Bytes", (int)sizeof(ie::BlockQ4_0));
  c.Set("blockQ8_0Bytes", (int)sizeof(ie::BlockQ8_0));
  return c;
}

// matrixBytes(descriptor) -> the byte size the C++ side computes (tests compare it with @ie/format's).
static Napi::Value MatrixBytes(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsObject()) IE_THROW(info.Env(), "KERNELS_BAD_ARGUMENT", "matrixBytes(descriptor)");
  const ie::MatrixDesc d = parse_desc(info[0].As<Napi::Object>());
  std::string error;
  const uint64_t b = ie::matrix_bytes(d, &error);
  if (!b) IE_THROW(info.Env(), "KERNELS_BAD_MATRIX", error);
  return Napi::Number::New(info.Env(), (double)b);
}

// alignedBytes(n) -> a zero-filled Uint8Array of n bytes starting on a 64-byte boundary. JavaScript's
// own buffers start 16 bytes into a cache line, so every full-vector load of weights held in one
// splits two lines (measured on Zen 5: a far-apart-pair f32 GEMV reads 22 GB/s from such a buffer and
// 34 from an aligned one); weights made in memory (a precision converted at load) live here instead.
static Napi::Value AlignedBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "alignedBytes(byteLength)");
  const double v = info[0].As<Napi::Number>().DoubleValue();
  // 2^32: the longest Uint8Array Node 20 makes (buffer.constants.MAX_LENGTH).
  if (!(v >= 0 && v <= 4294967296.0) || v != std::floor(v)) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "alignedBytes: byteLength must be an integer from 0 to 2^32");
  const size_t n = (size_t)v;
  // One 64-byte header before the bytes keeps the size, for the finalizer to report back to V8 (so
  // the garbage collector counts these buffers when it decides to run).
  const size_t cap = 64 + (n + 63) / 64 * 64;
  auto* base = static_cast<uint8_t*>(std::aligned_alloc(64, cap));
  if (!base) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "alignedBytes: could not allocate " + std::to_string(n) + " bytes");
  std::memcpy(base, &n, sizeof n);
  std::memset(base + 64, 0, n);
  Napi::MemoryManagement::AdjustExternalMemory(env, (int64_t)n);
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, base + 64, n, [](Napi::Env e, void* data) {
    uint8_t* b = static_cast<uint8_t*>(data) - 64;
    size_t len;
    std::memcpy(&len, b, sizeof len);
    std::free(b);
    Napi::MemoryManagement::AdjustExternalMemory(e, -(int64_t)len);
  });
  return Napi::Uint8Array::New(env, n, ab, 0);
}

// addressAlignment(u8) -> the largest power of two up to 4096 that divides the address of the
// array's first byte (the tests check alignedBytes with it).
static Napi::Value AddressAlignment(const Napi::CallbackInfo& info) {
  const TypedView v = typed_view(info.Env(), info.Length() > 0 ? info[0] : Napi::Value(), napi_uint8_array, "addressAlignment's argument");
  const uintptr_t a = reinterpret_cast<uintptr_t>(v.data);
  uintptr_t p = 1;
  while (p < 4096 && a % (p * 2) == 0) p *= 2;
  return Napi::Number::New(info.Env(), (double)p);
}

// attentionMaxPositions(heads, kvHeads, headDim, window, queries) -> the longest context whose
// attention scratch a thread fits its limit (the check compile() and attention() make).
static Napi::Value AttentionMaxPositions(const Napi::CallbackInfo& info) {
  const int64_t heads = int_arg(info, 0, 1, INT32_MAX, "heads"), kv_heads = int_arg(info, 1, 1, INT32_MAX, "kvHeads");
  const int64_t head_dim = int_arg(info, 2, 1, INT32_MAX, "headDim"), window = int_arg(info, 3, 0, INT32_MAX, "window");
  const int64_t queries = int_arg(info, 4, 1, INT32_MAX, "queries");
  return Napi::Number::New(info.Env(), (double)ie::attention_max_positions(heads, kv_heads, head_dim, window, queries));
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* ad = new AddonData();
  exports.Set("Mapping", MappingWrap::Init(env));
  ad->mapping_ctor = Napi::Persistent(exports.Get("Mapping").As<Napi::Function>());
  exports.Set("Matrix", MatrixWrap::Init(env));
  ad->matrix_ctor = Napi::Persistent(exports.Get("Matrix").As<Napi::Function>());
  exports.Set("Program", ProgramWrap::Init(env));
  ad->program_ctor = Napi::Persistent(exports.Get("Program").As<Napi::Function>());
  exports.Set("Context", ContextWrap::Init(env));
  env.SetInstanceData(ad);
  exports.Set("constants", ConstantsObject(env));
  exports.Set("matrixBytes", Napi::Function::New(env, MatrixBytes));
  exports.Set("alignedBytes", Napi::Function::New(env, AlignedBytes));
  exports.Set("addressAlignment", Napi::Function::New(env, AddressAlignment));
  exports.Set("attentionMaxPositions", Napi::Function::New(env, AttentionMaxPositions));
#if defined(__SANITIZE_ADDRESS__)
  exports.Set("sanitized", true);
#else
  exports.Set("sanitized", false);
#endif
  return exports;
}

NODE_API_MODULE(ie_kernels, Init)
