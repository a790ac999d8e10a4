// A held reference to an ArrayBuffer's backing store: while one lives, the buffer's memory stays
// allocated whatever JavaScript does to the buffer (transfer, detach, drop). N-API has no such
// handle, so this is the one place the addon reaches into V8 (backing_store.cc says how).
#pragma once
#include <node_api.h>

#include <memory>

namespace ie {

class BackingStoreRef {
 public:
  BackingStoreRef() noexcept;
  // The store of `arraybuffer`, a napi_value known to be an ArrayBuffer.
  static BackingStoreRef of(napi_value arraybuffer);
  BackingStoreRef(BackingStoreRef&&) noexcept;
  BackingStoreRef& operator=(BackingStoreRef&&) noexcept;
  ~BackingStoreRef();

  void* data() const;
  // Whether JavaScript can resize `arraybuffer` (it could shrink under a kernel). Holds nothing.
  static bool resizable(napi_value arraybuffer);

 private:
  struct Held;
  std::unique_ptr<Held> held_;
};

}  // namespace ie
