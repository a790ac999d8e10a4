// v8::ArrayBuffer::GetBackingStore returns a std::shared_ptr laid out as in the C++ library Node
// was built with: GNU libstdc++ on every Linux Node, glibc and musl alike. Built with GCC (the
// glibc addon), this file uses the same library and holds the std::shared_ptr. Built with libc++
// (the musl prebuild's zig toolchain), std::shared_ptr is another type with another control block,
// and the function's mangled name does not say what it returns: so V8's two classes are declared
// here with only the members used, the store is received in a struct laid out as libstdc++'s
// shared_ptr (the pointer, then the control block: vtable, use count, weak count), and it is
// released as libstdc++ releases it. `scripts/prebuild-zig.mjs --test` builds this path for glibc
// and runs the addon's tests on it under Node.
#include "napi/backing_store.h"

#include <cstring>

#if defined(_LIBCPP_VERSION)

namespace ie::gnu {

// libstdc++'s _Sp_counted_base: a vtable (complete and deleting destructors, _M_dispose,
// _M_destroy, _M_get_deleter), then the use and weak counts.
struct GnuControlBlock {
  void (**vtable)(GnuControlBlock*);
  int use, weak;
};

// libstdc++'s std::shared_ptr<T>. Non-trivial (a destructor), so that it is returned as
// std::shared_ptr is: through memory the caller provides.
template <class T>
struct GnuSharedPtr {
  T* ptr = nullptr;
  GnuControlBlock* ctrl = nullptr;
  GnuSharedPtr() = default;
  GnuSharedPtr(const GnuSharedPtr&) = delete;
  // _Sp_counted_base<_S_atomic>::_M_release: the last use disposes of the object, the last
  // reference (weak ones included) frees the control block.
  ~GnuSharedPtr() {
    if (!ctrl) return;
    if (__atomic_fetch_add(&ctrl->use, -1, __ATOMIC_ACQ_REL) == 1) {
      ctrl->vtable[2](ctrl);
      if (__atomic_fetch_add(&ctrl->weak, -1, __ATOMIC_ACQ_REL) == 1) ctrl->vtable[3](ctrl);
    }
  }
};

}  // namespace ie::gnu

namespace v8 {
class BackingStore {
 public:
  void* Data() const;
  bool IsResizableByUserJavaScript() const;
};
class ArrayBuffer {
 public:
  ie::gnu::GnuSharedPtr<BackingStore> GetBackingStore();
};
}  // namespace v8

namespace ie {
struct BackingStoreRef::Held {
  gnu::GnuSharedPtr<v8::BackingStore> store;
  v8::BackingStore* get() const { return store.ptr; }
};
namespace {
// napi_value is a v8::Local<v8::Value>: a pointer that V8's member functions take as `this`.
v8::ArrayBuffer* v8_array_buffer(napi_value v) { return reinterpret_cast<v8::ArrayBuffer*>(v); }
}  // namespace
}  // namespace ie

#else
#include <v8.h>

namespace ie {
struct BackingStoreRef::Held {
  std::shared_ptr<v8::BackingStore> store;
  v8::BackingStore* get() const { return store.get(); }
};
namespace {
// napi_value is a v8::Local<v8::Value> (node's js_native_api_v8.h converts the same way).
v8::ArrayBuffer* v8_array_buffer(napi_value nv) {
  v8::Local<v8::Value> l;
  static_assert(sizeof(l) == sizeof(nv), "napi_value is a v8::Local");
  std::memcpy(static_cast<void*>(&l), &nv, sizeof(nv));
  return *l.As<v8::ArrayBuffer>();
}
}  // namespace
}  // namespace ie
#endif

namespace ie {

BackingStoreRef BackingStoreRef::of(napi_value arraybuffer) {
  BackingStoreRef r;
  r.held_.reset(new Held{v8_array_buffer(arraybuffer)->GetBackingStore()});
  return r;
}
BackingStoreRef::BackingStoreRef() noexcept = default;
BackingStoreRef::BackingStoreRef(BackingStoreRef&&) noexcept = default;
BackingStoreRef& BackingStoreRef::operator=(BackingStoreRef&&) noexcept = default;
BackingStoreRef::~BackingStoreRef() = default;

void* BackingStoreRef::data() const { return held_ ? held_->get()->Data() : nullptr; }
bool BackingStoreRef::resizable(napi_value arraybuffer) {
  const Held h{v8_array_buffer(arraybuffer)->GetBackingStore()};
  return h.get()->IsResizableByUserJavaScript();
}

}  // namespace ie
