// Internal: a 64-byte aligned float/byte buffer allocated once and grown only on demand.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>

#include <fmt/format.h>

#include "tl/error.hpp"

namespace tl::detail {

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes) { reserve(bytes); }

  // Grows to at least `bytes` (contents are not kept); never shrinks.
  void reserve(size_t bytes) {
    if (bytes <= size_) return;
    bytes = (bytes + 63) / 64 * 64;
    data_.reset(static_cast<std::byte*>(std::aligned_alloc(64, bytes)));
    if (!data_) throw Error(fmt::format("out of memory allocating {} bytes", bytes));
    size_ = bytes;
  }
  void* data() const { return data_.get(); }
  float* floats() const { return reinterpret_cast<float*>(data_.get()); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(std::byte* p) const { std::free(p); }
  };
  std::unique_ptr<std::byte[], Free> data_;
  size_t size_ = 0;
};

}  // namespace tl::detail
