// The N-API surface of @ie/kernels: Context (pool + dispatch table), Matrix (a weight matrix
// over a buffer), Mapping (a read-only mmap). Arguments are validated in TypeScript first;
// everything here is checked again cheaply, and a failed check throws a JS error with a
// `code` instead of touching memory.
#include <napi.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "attention/attention.h"
#include "context.h"
#include "cpu/fma_peak.h"
#include "layout/layout.h"
#include "matrix/matrix.h"
#include "mem/mapping.h"
#include "mem/read_probe.h"
#include "numa/numa.h"
#include "program/program.h"


namespace {

using ie::Context;

Napi::Error coded(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}
#define IE_THROW(env, code, msg) throw coded(env, code, msg)

std::string str_opt(const Napi::Object& o, const char* key, const std::string& dflt) {
  if (!o.Has(key) || o.Get(key).IsUndefined() || o.Get(key).IsNull()) return dflt;
  if (!o.Get(key).IsString()) IE_THROW(o.Env(), "KERNELS_BAD_ARGUMENT", std::string(key) + " must be a string");
  return o.Get(key).As<Napi::String>().Utf8Value();
}

int64_t int_opt(const Napi::Object& o, const char* key, int64_t dflt, int64_t lo, int64_t hi) {
  if (!o.Has(key) || o.Get(key).IsUndefined() || o.Get(key).IsNull()) return dflt;
  const Napi::Value v = o.Get(key);
  if (!v.IsNumber()) IE_THROW(o.Env(), "KERNELS_BAD_ARGUMENT", std::string(key) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= (double)lo && d <= (double)hi) || d != (double)(int64_t)d) IE_THROW(o.Env(), "KERNELS_BAD_ARGUMENT", std::string(key) + " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
  return (int64_t)d;
}

int64_t int_arg(const Napi::CallbackInfo& info, size_t i, int64_t lo, int64_t hi, const char* what) {
  if (info.Length() <= i || !info[i].IsNumber()) IE_THROW(info.Env(), "KERNELS_BAD_ARGUMENT", std::string(what) + " must be a number");
  const double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= (double)lo && d <= (double)hi) || d != (double)(int64_t)d) IE_THROW(info.Env(), "KERNELS_BAD_ARGUMENT", std::string(what) + " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
  return (int64_t)d;
}

// A typed array argument of an exact kind with at least `min_len` elements.
template <typename T>
T* typed_arg(const Napi::CallbackInfo& info, size_t i, napi_typedarray_type type, size_t min_len, const char* what) {
  if (info.Length() <= i || !info[i].IsTypedArray()) IE_THROW(info.Env(), "KERNELS_BAD_ARGUMENT", std::string(what) + " must be a typed array");
  Napi::TypedArray ta = info[i].As<Napi::TypedArray>();
  if (ta.TypedArrayType() != type) IE_THROW(info.Env(), "KERNELS_BAD_ARGUMENT", std::string(what) + " has the wrong element type");
  if (ta.ElementLength() < min_len) IE_THROW(info.Env(), "KERNELS_BAD_ARGUMENT", std::string(what) + " has " + std::to_string(ta.ElementLength()) + " elements, needs " + std::to_string(min_len));
  Napi::ArrayBuffer ab = ta.ArrayBuffer();
  return reinterpret_cast<T*>(static_cast<uint8_t*>(ab.Data()) + ta.ByteOffset());
}

float* f32_arg(const Napi::CallbackInfo& info, size_t i, size_t n, const char* what) { return typed_arg<float>(info, i, napi_float32_array, n, what); }

// A matrix descriptor as the TypeScript side encodes it (nativeDescriptor in matrix-spec.ts).
ie::MatrixDesc parse_desc(const Napi::Object& o) {
  ie::MatrixDesc d;
  d.type = (ie::WeightType)int_opt(o, "type", -1, 0, ie::kWeightTypeCount - 1);
  d.N = int_opt(o, "rows", 0, 1, 1ll << 31);
  d.K = int_opt(o, "cols", 0, 1, 1ll << 31);
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

class MappingWrap : public Napi::ObjectWrap<MappingWrap> {
 public:
  // Largest single JS view: typed arrays index at most 2^32 - 1 elements.
  static constexpr size_t kMaxView = 0xffffffffu;

  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Mapping",
                       {InstanceMethod<&MappingWrap::Close>("close"), InstanceMethod<&MappingWrap::View>("view"), InstanceAccessor<&MappingWrap::Buffer>("buffer"),
                        InstanceAccessor<&MappingWrap::Length>("length"), InstanceAccessor<&MappingWrap::HugePages>("hugePages"), InstanceAccessor<&MappingWrap::HugePagesDetail>("hugePagesDetail")});
  }
  MappingWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<MappingWrap>(info) {}

  void Attach(std::shared_ptr<ie::Mapping> m) { mapping_ = std::move(m); }
  std::shared_ptr<ie::Mapping> mapping() const { return mapping_; }

 private:
  // An ArrayBuffer over [offset, offset + length) of the mapping; it keeps the mapping alive.
  Napi::ArrayBuffer make_view(Napi::Env env, size_t offset, size_t length) {
    auto* hold = new std::shared_ptr<ie::Mapping>(mapping_);
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, mapping_->data + offset, length, [](Napi::Env, void*, std::shared_ptr<ie::Mapping>* h) { delete h; }, hold);
    views_.push_back(Napi::Weak(ab));
    return ab;
  }
  Napi::Value View(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!mapping_) IE_THROW(env, "KERNELS_CLOSED", "the mapping is closed");
    const int64_t off = int_arg(info, 0, 0, (int64_t)mapping_->len, "offset");
    const int64_t len = int_arg(info, 1, 0, (int64_t)kMaxView, "length");
    if ((uint64_t)off + (uint64_t)len > mapping_->len) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "the view [" + std::to_string(off) + ", +" + std::to_string(len) + ") lies outside the " + std::to_string(mapping_->len) + "-byte mapping");
    return make_view(env, (size_t)off, (size_t)len);
  }
  Napi::Value Buffer(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!mapping_) return env.Null();
    if (mapping_->len > kMaxView) IE_THROW(env, "KERNELS_MAP_TOO_LARGE", "the mapping is " + std::to_string(mapping_->len) + " bytes, more than one JavaScript view can hold; use view(offset, length)");
    if (whole_.IsEmpty() || whole_.Value().IsDetached()) whole_ = Napi::Weak(make_view(env, 0, mapping_->len));
    return whole_.Value();
  }
  Napi::Value Length(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), mapping_ ? (double)mapping_->len : 0); }
  Napi::Value HugePages(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), mapping_ && mapping_->huge_pages); }
  Napi::Value HugePagesDetail(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), mapping_ ? mapping_->huge_pages_detail : "closed"); }
  // Detaches every JS view now (they become empty); the memory is unmapped once no Matrix uses it.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    for (auto& w : views_) {
      if (w.IsEmpty()) continue;
      Napi::ArrayBuffer ab = w.Value();
      if (!ab.IsEmpty() && !ab.IsDetached()) ab.Detach();
    }
    views_.clear();
    whole_.Reset();
    mapping_.reset();
    return info.Env().Undefined();
  }
  std::shared_ptr<ie::Mapping> mapping_;
  Napi::Reference<Napi::ArrayBuffer> whole_;
  std::vector<Napi::Reference<Napi::ArrayBuffer>> views_;
};

// ---------------------------------------------------------------- Matrix

class MatrixWrap : public Napi::ObjectWrap<MatrixWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Matrix", {InstanceAccessor<&MatrixWrap::Rows>("rows"), InstanceAccessor<&MatrixWrap::Cols>("cols"), InstanceMethod<&MatrixWrap::Dispose>("dispose")});
  }
  MatrixWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<MatrixWrap>(info) {}

  ie::MatrixPlan plan;
  Napi::Reference<Napi::ArrayBuffer> buffer;  // keeps a plain ArrayBuffer alive
  size_t byte_offset = 0;
  std::shared_ptr<ie::Mapping> mapping;       // keeps a mapped region mapped
  bool disposed = false;

  // Re-derives the data pointer: a plain ArrayBuffer may have been detached since.
  const ie::MatrixPlan& bound(Napi::Env env) {
    if (disposed) IE_THROW(env, "KERNELS_CLOSED", "the matrix was disposed");
    if (mapping) return plan;
    Napi::ArrayBuffer ab = buffer.Value();
    if (ab.IsDetached() || ab.ByteLength() < byte_offset + plan.d.bytes) IE_THROW(env, "KERNELS_DETACHED", "the matrix's buffer was detached or shrunk");
    plan.bind(static_cast<const uint8_t*>(ab.Data()) + byte_offset);
    return plan;
  }

 private:
  // Lets go of the buffer (or mapping) now instead of at garbage collection.
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    disposed = true;
    buffer.Reset();
    mapping.reset();
    return info.Env().Undefined();
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
  ProgramWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ProgramWrap>(info) {}

  Napi::ObjectReference owner;                  // the ContextWrap object
  std::vector<Napi::Reference<Napi::Value>> keep;  // buffers, params, matrices
  std::vector<MatrixWrap*> matrices;
  std::vector<Napi::Reference<Napi::ArrayBuffer>> buffers;
  std::vector<size_t> buffer_bytes;
  ie::Program program;
  bool busy = false;

  // Buffers and matrices must still be what they were at compile time.
  void check_alive(Napi::Env env) {
    if (busy) IE_THROW(env, "KERNELS_BUSY", "the program is already running");
    for (size_t i = 0; i < buffers.size(); i++) {
      Napi::ArrayBuffer ab = buffers[i].Value();
      if (ab.IsDetached() || ab.ByteLength() < buffer_bytes[i]) IE_THROW(env, "KERNELS_DETACHED", "a buffer of the program was detached");
    }
    for (MatrixWrap* m : matrices)
      if (m->disposed) IE_THROW(env, "KERNELS_CLOSED", "a matrix of the program was disposed");
  }

 private:
  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)program.ops.size()); }
  Napi::Value Run(const Napi::CallbackInfo& info);
  Napi::Value RunAsync(const Napi::CallbackInfo& info);
};

// ---------------------------------------------------------------- Context

struct AddonData {
  Napi::FunctionReference mapping_ctor, matrix_ctor, program_ctor;
};

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
                        InstanceMethod<&ContextWrap::MapFile>("mapFile"), InstanceMethod<&ContextWrap::NumaBind>("numaBind"), InstanceMethod<&ContextWrap::ReadBandwidth>("readBandwidth"), InstanceMethod<&ContextWrap::FmaPeak>("fmaPeak"),
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
  }

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
    Context& c = ctx(env);
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsTypedArray()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "matrix(descriptor, Uint8Array)");
    const ie::MatrixDesc d = parse_desc(info[0].As<Napi::Object>());
    if (d.bytes < 1) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "bytes must be at least 1");
    Napi::TypedArray ta = info[1].As<Napi::TypedArray>();
    if (ta.TypedArrayType() != napi_uint8_array) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "matrix data must be a Uint8Array");
    if (ta.ByteLength() != d.bytes) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "matrix data is " + std::to_string(ta.ByteLength()) + " bytes, the descriptor says " + std::to_string(d.bytes));
    std::string error;
    ie::MatrixPlan plan;
    if (!ie::plan_matrix(d, &plan, &error)) IE_THROW(env, "KERNELS_BAD_MATRIX", error);
    Napi::ArrayBuffer ab = ta.ArrayBuffer();
    const uint8_t* base = static_cast<const uint8_t*>(ab.Data()) + ta.ByteOffset();
    const size_t align = (size_t)ie::weight_elem_bytes(d.type);
    if (reinterpret_cast<uintptr_t>(base) % (align < 4 ? 4 : align) != 0 && d.type != ie::WeightType::I8 && d.type != ie::WeightType::Q4) IE_THROW(env, "KERNELS_MISALIGNED", "matrix data must be aligned to its element size");
    AddonData* ad = env.GetInstanceData<AddonData>();
    Napi::Object obj = ad->matrix_ctor.New({});
    MatrixWrap* m = MatrixWrap::Unwrap(obj);
    m->plan = std::move(plan);
    m->byte_offset = ta.ByteOffset();
    m->buffer = Napi::Persistent(ab);
    // A view into one of this process's mappings keeps that mapping alive on its own.
    if (info.Length() > 2 && info[2].IsObject()) {
      MappingWrap* mw = MappingWrap::Unwrap(info[2].As<Napi::Object>());
      auto mp = mw->mapping();
      if (mp && base >= mp->data && base + d.bytes <= mp->data + mp->len) m->mapping = mp;
    }
    m->plan.bind(base);
    (void)c;
    return obj;
  }

  MatrixWrap* matrix_arg(const Napi::CallbackInfo& info, size_t i) {
    if (info.Length() <= i || !info[i].IsObject()) IE_THROW(info.Env(), "KERNELS_BAD_ARGUMENT", "expected a Matrix");
    Napi::Object o = info[i].As<Napi::Object>();
    AddonData* ad = info.Env().GetInstanceData<AddonData>();
    if (!o.InstanceOf(ad->matrix_ctor.Value())) IE_THROW(info.Env(), "KERNELS_BAD_ARGUMENT", "expected a Matrix");
    return MatrixWrap::Unwrap(o);
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

  class GemmWorker : public Napi::AsyncWorker {
   public:
    GemmWorker(Napi::Env env, ContextWrap* owner, MatrixWrap* m, const float* X, int M, float* Y, std::vector<Napi::Reference<Napi::Value>> keep)
        : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), owner_(owner), m_(m), X_(X), M_(M), Y_(Y), keep_(std::move(keep)) {
      owner_->inflight.fetch_add(1);
    }
    Napi::Promise promise() { return deferred_.Promise(); }
    void Execute() override { ie::gemm(owner_->ctx(Env()), m_->plan, X_, M_, Y_); }
    void OnOK() override {
      done();
      deferred_.Resolve(Env().Undefined());
    }
    void OnError(const Napi::Error& e) override {
      done();
      deferred_.Reject(e.Value());
    }

   private:
    void done() {
      if (owner_->inflight.fetch_sub(1) == 1 && owner_->close_requested) owner_->release();
    }
    Napi::Promise::Deferred deferred_;
    ContextWrap* owner_;
    MatrixWrap* m_;
    const float* X_;
    int M_;
    float* Y_;
    std::vector<Napi::Reference<Napi::Value>> keep_;
  };

  // Same as gemm, on a libuv worker thread; resolves when Y is written. X and Y must not be
  // transferred or resized until the promise settles.
  Napi::Value GemmAsync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ctx(env);
    MatrixWrap* m = matrix_arg(info, 0);
    const auto& p = m->bound(env);
    const int M = (int)int_arg(info, 2, 1, 1 << 20, "M");
    const float* X = f32_arg(info, 1, (size_t)p.d.K * M, "X");
    float* Y = f32_arg(info, 3, (size_t)p.d.N * M, "Y");
    std::vector<Napi::Reference<Napi::Value>> keep;
    keep.push_back(Napi::Persistent(info[0]));
    keep.push_back(Napi::Persistent(info[1]));
    keep.push_back(Napi::Persistent(info[3]));
    keep.push_back(Napi::Persistent(Value().As<Napi::Value>()));
    auto* w = new GemmWorker(env, this, m, X, M, Y, std::move(keep));
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
  Napi::Value Attention(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Context& c = ctx(env);
    if (info.Length() < 1 || !info[0].IsObject()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "attention(args)");
    Napi::Object o = info[0].As<Napi::Object>();
    ie::AttentionArgs a;
    a.n_heads = (int)int_opt(o, "nHeads", 0, 1, 1 << 16);
    a.n_kv_heads = (int)int_opt(o, "nKvHeads", 0, 1, 1 << 16);
    a.head_dim = (int)int_opt(o, "headDim", 0, 1, 1 << 16);
    if (a.n_heads % a.n_kv_heads) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "nHeads must be a multiple of nKvHeads");
    a.n_queries = (int)int_opt(o, "nQueries", 1, 1, 1 << 20);
    a.pos0 = (int)int_opt(o, "pos0", 0, 0, 1 << 24);
    a.kv_stride = int_opt(o, "kvStride", (int64_t)a.n_kv_heads * a.head_dim, (int64_t)a.n_kv_heads * a.head_dim, 1ll << 30);
    a.window = (int)int_opt(o, "window", 0, 0, 1 << 24);
    a.kv_type = (ie::KvType)int_opt(o, "kvType", 0, 0, 1);
    if (!o.Get("scale").IsNumber()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "scale must be a number");
    a.scale = o.Get("scale").As<Napi::Number>().FloatValue();
    const size_t width = (size_t)a.n_heads * a.head_dim;
    a.q_stride = a.out_stride = (ptrdiff_t)width;
    auto get_ta = [&](const char* key, napi_typedarray_type type, size_t n) -> void* {
      Napi::Value v = o.Get(key);
      if (!v.IsTypedArray()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", std::string(key) + " must be a typed array");
      Napi::TypedArray ta = v.As<Napi::TypedArray>();
      if (ta.TypedArrayType() != type) IE_THROW(env, "KERNELS_BAD_ARGUMENT", std::string(key) + " has the wrong element type");
      if (ta.ElementLength() < n) IE_THROW(env, "KERNELS_BAD_ARGUMENT", std::string(key) + " has " + std::to_string(ta.ElementLength()) + " elements, needs " + std::to_string(n));
      return static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    };
    const size_t positions = (size_t)a.pos0 + a.n_queries;
    const size_t cache_len = (positions - 1) * a.kv_stride + (size_t)a.n_kv_heads * a.head_dim;
    const napi_typedarray_type kvt = a.kv_type == ie::KvType::F16 ? napi_uint16_array : napi_float32_array;
    a.q = static_cast<const float*>(get_ta("q", napi_float32_array, width * a.n_queries));
    if (o.Has("sinks") && !o.Get("sinks").IsUndefined()) a.sinks = static_cast<const float*>(get_ta("sinks", napi_float32_array, (size_t)a.n_heads));
    a.out = static_cast<float*>(get_ta("out", napi_float32_array, width * a.n_queries));
    a.k = get_ta("k", kvt, cache_len);
    a.v = get_ta("v", kvt, cache_len);
    ie::attention(c, a);
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
    Napi::Object obj = ad->mapping_ctor.New({});
    MappingWrap::Unwrap(obj)->Attach(m);
    return obj;
  }

  // numaBind(mapping) -> {nodes, policy, applied, detail}
  Napi::Value NumaBind(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Context& c = ctx(env);
    AddonData* ad = env.GetInstanceData<AddonData>();
    if (info.Length() < 1 || !info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(ad->mapping_ctor.Value())) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "numaBind(mapping)");
    auto m = MappingWrap::Unwrap(info[0].As<Napi::Object>())->mapping();
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

  // compile({ buffers, params, maxRows, ops }) -> Program. Every view is bounds-checked here
  // against the declared maxima; runs check their params against the same maxima.
  Napi::Value Compile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ctx(env);
    if (info.Length() < 1 || !info[0].IsObject()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "compile(spec)");
    Napi::Object spec = info[0].As<Napi::Object>();
    AddonData* ad = env.GetInstanceData<AddonData>();
    Napi::Object obj = ad->program_ctor.New({});
    ProgramWrap* pw = ProgramWrap::Unwrap(obj);
    pw->owner = Napi::Persistent(Value());
    ie::Program& prog = pw->program;
    prog.max_rows = int_opt(spec, "maxRows", 1, 1, 1 << 16);
    if (!spec.Get("params").IsTypedArray() || spec.Get("params").As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "params must be an Int32Array");
    Napi::TypedArray params = spec.Get("params").As<Napi::TypedArray>();
    prog.params = reinterpret_cast<int32_t*>(static_cast<uint8_t*>(params.ArrayBuffer().Data()) + params.ByteOffset());
    prog.params_len = (int)params.ElementLength();
    pw->keep.push_back(Napi::Persistent(spec.Get("params")));
    pw->buffers.push_back(Napi::Persistent(params.ArrayBuffer()));
    pw->buffer_bytes.push_back(params.ByteOffset() + params.ByteLength());
    if (!spec.Get("buffers").IsArray()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "buffers must be an array of typed arrays");
    Napi::Array bufs = spec.Get("buffers").As<Napi::Array>();
    struct Buf { uint8_t* base; size_t len; int elem; };
    std::vector<Buf> table;
    for (uint32_t i = 0; i < bufs.Length(); i++) {
      Napi::Value v = bufs.Get(i);
      if (!v.IsTypedArray()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "buffers[" + std::to_string(i) + "] must be a typed array");
      Napi::TypedArray ta = v.As<Napi::TypedArray>();
      const auto t = ta.TypedArrayType();
      if (t != napi_float32_array && t != napi_uint16_array) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "buffers[" + std::to_string(i) + "] must be a Float32Array or Uint16Array");
      table.push_back({static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), ta.ElementLength(), t == napi_float32_array ? 4 : 2});
      pw->keep.push_back(Napi::Persistent(v));
      pw->buffers.push_back(Napi::Persistent(ta.ArrayBuffer()));
      pw->buffer_bytes.push_back(ta.ByteOffset() + ta.ByteLength());
    }
    if (!spec.Get("ops").IsArray()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "ops must be an array");
    Napi::Array ops = spec.Get("ops").As<Napi::Array>();
    auto slot = [&](Napi::Object o, const char* key, const std::string& where) -> int {
      const int64_t s = int_opt(o, key, -1, -1, prog.params_len - 1);
      (void)where;
      return (int)s;
    };
    for (uint32_t i = 0; i < ops.Length(); i++) {
      const std::string where = "ops[" + std::to_string(i) + "]";
      if (!ops.Get(i).IsObject()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + " must be an object");
      Napi::Object o = ops.Get(i).As<Napi::Object>();
      ie::Op op;
      op.kind = (ie::OpKind)int_opt(o, "kind", -1, 0, ie::kOpKindCount - 1);
      op.n = int_opt(o, "n", 0, 0, 1ll << 30);
      op.heads = (int)int_opt(o, "heads", 0, 0, 1 << 16);
      op.kv_heads = (int)int_opt(o, "kvHeads", 0, 0, 1 << 16);
      op.head_dim = (int)int_opt(o, "headDim", 0, 0, 1 << 16);
      op.style = (int)int_opt(o, "style", 0, 0, 1);
      op.window = (int)int_opt(o, "window", 0, 0, 1 << 24);
      op.kv_type = (ie::KvType)int_opt(o, "kvType", 0, 0, 1);
      op.activations = (ie::Activations)int_opt(o, "activations", 0, 0, 1);
      op.last_row_only = int_opt(o, "lastRowOnly", 0, 0, 1) == 1;
      op.capacity = int_opt(o, "capacity", 0, 0, 1ll << 24);
      op.m_slot = slot(o, "mSlot", where);
      op.pos_slot = slot(o, "posSlot", where);
      op.ids_slot = slot(o, "idsSlot", where);
      op.out_slot = slot(o, "outSlot", where);
      if (o.Has("eps")) op.eps = o.Get("eps").ToNumber().FloatValue();
      if (o.Has("scale")) op.scale = o.Get("scale").ToNumber().FloatValue();
      if (o.Has("matrix") && o.Get("matrix").IsObject()) {
        Napi::Object mo = o.Get("matrix").As<Napi::Object>();
        if (!mo.InstanceOf(ad->matrix_ctor.Value())) IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + ".matrix must be a Matrix");
        MatrixWrap* m = MatrixWrap::Unwrap(mo);
        m->bound(env);
        op.matrix = &m->plan;
        pw->matrices.push_back(m);
        pw->keep.push_back(Napi::Persistent(o.Get("matrix")));
      }
      // A view [buffer, offset, stride] that must hold `rows` rows of `width` elements of `elem` bytes.
      auto view = [&](const char* key, int64_t rows, int64_t width, int elem) -> ie::View {
        ie::View v;
        if (!o.Get(key).IsArray()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + "." + key + " must be [buffer, offset, stride]");
        Napi::Array a = o.Get(key).As<Napi::Array>();
        const int64_t b = a.Get(0u).ToNumber().Int64Value(), off = a.Get(1u).ToNumber().Int64Value(), stride = a.Get(2u).ToNumber().Int64Value();
        if (b < 0 || b >= (int64_t)table.size()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + "." + key + ": no buffer " + std::to_string(b));
        const Buf& t = table[(size_t)b];
        if (t.elem != elem) IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + "." + key + ": buffer " + std::to_string(b) + " has the wrong element type");
        if (off < 0 || stride < 0 || width < 0 || rows < 1 || (uint64_t)off + (uint64_t)(rows - 1) * (uint64_t)stride + (uint64_t)width > t.len)
          IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + "." + key + ": " + std::to_string(rows) + " rows of " + std::to_string(width) + " (stride " + std::to_string(stride) + ", offset " + std::to_string(off) + ") do not fit buffer " + std::to_string(b) + " (" + std::to_string(t.len) + " elements)");
        v.base = t.base + off * elem;
        v.stride = stride;
        v.elem = elem;
        return v;
      };
      const int64_t R = prog.max_rows;
      const int kvElem = op.kv_type == ie::KvType::F16 ? 2 : 4;
      auto need_matrix = [&] {
        if (!op.matrix) IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + " needs a matrix");
      };
      switch (op.kind) {
        case ie::OpKind::Embed:
          need_matrix();
          if (op.ids_slot < 0 || op.ids_slot + R > prog.params_len) IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + ": idsSlot must leave maxRows params");
          op.out = view("out", R, op.matrix->d.K, 4);
          break;
        case ie::OpKind::RmsNorm:
          op.a = view("a", R, op.n, 4);
          op.b = view("b", 1, op.n, 4);
          op.out = view("out", R, op.n, 4);
          break;
        case ie::OpKind::MatMul:
          need_matrix();
          op.a = view("a", R, op.matrix->d.K, 4);
          op.out = view("out", op.last_row_only ? 1 : R, op.matrix->d.N, 4);
          if (!op.last_row_only && R > 1 && (op.a.stride != op.matrix->d.K || op.out.stride != op.matrix->d.N)) IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + ": batched matmul rows must be contiguous (stride K in, N out)");
          break;
        case ie::OpKind::Add:
        case ie::OpKind::SwiGlu:
          op.a = view("a", R, op.n, 4);
          op.b = view("b", R, op.n, 4);
          op.out = view("out", R, op.n, 4);
          break;
        case ie::OpKind::Rope:
          if (op.head_dim < 2 || op.head_dim % 2 || op.heads < 1) IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + ": rope needs heads and an even headDim");
          op.out = view("out", R, (int64_t)op.heads * op.head_dim, 4);
          op.a = view("a", 1, op.capacity * (op.head_dim / 2), 4);  // cos table
          op.b = view("b", 1, op.capacity * (op.head_dim / 2), 4);  // sin table
          break;
        case ie::OpKind::Store:
          op.a = view("a", R, op.n, 4);
          op.out = view("out", op.capacity, op.n, kvElem);
          break;
        case ie::OpKind::Attention: {
          if (op.heads < 1 || op.kv_heads < 1 || op.head_dim < 1 || op.heads % op.kv_heads) IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + ": attention needs heads, kvHeads (dividing heads) and headDim");
          const int64_t width = (int64_t)op.heads * op.head_dim, kvw = (int64_t)op.kv_heads * op.head_dim;
          op.a = view("a", R, width, 4);
          op.b = view("b", op.capacity, kvw, kvElem);
          op.c = view("c", op.capacity, kvw, kvElem);
          op.out = view("out", R, width, 4);
          if (op.b.stride != op.c.stride || op.b.stride < kvw) IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + ": K and V caches need the same row stride, at least kvHeads*headDim");
          if (o.Has("sinks") && !o.Get("sinks").IsUndefined()) op.sinks = view("sinks", 1, op.heads, 4).row<float>(0);
          break;
        }
        case ie::OpKind::Moe: {
          // Three arrays of one Matrix per expert: gate and up [F, D], down [D, F].
          auto experts = [&](const char* key, std::vector<const ie::MatrixPlan*>* out) {
            if (!o.Get(key).IsArray()) IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + "." + key + " must be an array of Matrix");
            Napi::Array a = o.Get(key).As<Napi::Array>();
            for (uint32_t j = 0; j < a.Length(); j++) {
              Napi::Value mv = a.Get(j);
              if (!mv.IsObject() || !mv.As<Napi::Object>().InstanceOf(ad->matrix_ctor.Value())) IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + "." + key + "[" + std::to_string(j) + "] must be a Matrix");
              MatrixWrap* m = MatrixWrap::Unwrap(mv.As<Napi::Object>());
              m->bound(env);
              out->push_back(&m->plan);
              pw->matrices.push_back(m);
              pw->keep.push_back(Napi::Persistent(mv));
            }
          };
          experts("gates", &op.moe.gate);
          experts("ups", &op.moe.up);
          experts("downs", &op.moe.down);
          const size_t E = op.moe.gate.size();
          if (E < 1 || op.moe.up.size() != E || op.moe.down.size() != E) IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + ": gates, ups and downs need one Matrix per expert each");
          const int64_t D = op.moe.gate[0]->d.K, F = op.moe.gate[0]->d.N;
          for (size_t e = 0; e < E; e++) {
            const auto& g = op.moe.gate[e]->d;
            const auto& u = op.moe.up[e]->d;
            const auto& d = op.moe.down[e]->d;
            if (g.N != F || g.K != D || u.N != F || u.K != D || d.N != D || d.K != F) IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + ": expert " + std::to_string(e) + " has a matrix of another shape (gate and up [F, D], down [D, F])");
          }
          op.n = (int64_t)E;
          op.moe.top_k = (int)int_opt(o, "topK", 0, 1, (int64_t)E);
          op.moe.alpha = o.Get("alpha").ToNumber().FloatValue();
          op.moe.limit = o.Get("limit").ToNumber().FloatValue();
          if (!std::isfinite(op.moe.alpha) || !(op.moe.limit > 0)) IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + ": alpha must be finite and limit positive");
          op.a = view("a", R, D, 4);
          op.b = view("b", R, (int64_t)E, 4);
          op.out = view("out", R, D, 4);
          op.moe.gate_bias = view("gateBias", (int64_t)E, F, 4);
          op.moe.up_bias = view("upBias", (int64_t)E, F, 4);
          op.moe.down_bias = view("downBias", (int64_t)E, D, 4);
          op.moe.xs = view("xs", R, D, 4);
          op.moe.gs = view("gs", R, F, 4);
          op.moe.us = view("us", R, F, 4);
          op.moe.ys = view("ys", R, D, 4);
          if (op.moe.xs.stride != D || op.moe.gs.stride != F || op.moe.us.stride != F || op.moe.ys.stride != D) IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + ": MoE scratch rows must be contiguous (xs, ys stride D; gs, us stride F)");
          break;
        }
        case ie::OpKind::Argmax:
          if (op.out_slot < 0) IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + ": argmax needs outSlot");
          op.a = view("a", 1, op.n, 4);
          break;
      }
      if ((op.kind == ie::OpKind::Rope || op.kind == ie::OpKind::Store || op.kind == ie::OpKind::Attention) && op.capacity < 1) IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + " needs a capacity");
      if (op.n < 0 || ((op.kind == ie::OpKind::RmsNorm || op.kind == ie::OpKind::Add || op.kind == ie::OpKind::SwiGlu || op.kind == ie::OpKind::Store || op.kind == ie::OpKind::Argmax) && op.n < 1)) IE_THROW(env, "KERNELS_BAD_ARGUMENT", where + " needs n >= 1");
      prog.ops.push_back(op);
    }
    return obj;
  }

  // touch(mapping, bytes, stride, startOffset) -> { seconds, next }: the work-touch of the
  // benchmark harness: reads `bytes` bytes of the mapping, one byte every `stride`, wrapping.
  Napi::Value Touch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    AddonData* ad = env.GetInstanceData<AddonData>();
    if (info.Length() < 1 || !info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(ad->mapping_ctor.Value())) IE_THROW(env, "KERNELS_BAD_ARGUMENT", "touch(mapping, bytes, stride, start)");
    auto m = MappingWrap::Unwrap(info[0].As<Napi::Object>())->mapping();
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
    Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
    const uint8_t* p = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    const size_t n = ta.ByteLength() / 64 * 64;
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


class ProgramWorker : public Napi::AsyncWorker {
 public:
  ProgramWorker(Napi::Env env, ProgramWrap* p, ContextWrap* c) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), p_(p), c_(c) {
    p_->busy = true;
    c_->inflight.fetch_add(1);
    self_ = Napi::Persistent(p->Value());
  }
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    std::string err = ie::run_program(c_->ctx(Env()), p_->program);
    if (!err.empty()) SetError(err);
  }
  void OnOK() override {
    done();
    deferred_.Resolve(Env().Undefined());
  }
  void OnError(const Napi::Error& e) override {
    done();
    deferred_.Reject(coded(Env(), "KERNELS_BAD_ARGUMENT", e.Message()).Value());
  }

 private:
  void done() {
    p_->busy = false;
    if (c_->inflight.fetch_sub(1) == 1 && c_->close_requested) c_->release();
  }
  Napi::Promise::Deferred deferred_;
  ProgramWrap* p_;
  ContextWrap* c_;
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
#if defined(__SANITIZE_ADDRESS__)
  exports.Set("sanitized", true);
#else
  exports.Set("sanitized", false);
#endif
  return exports;
}

NODE_API_MODULE(ie_kernels, Init)
