// What tlkit's oneDNN layers share that needs no oneDNN header (so public layer headers can
// use it): the pass a layer is built for, the aligned buffers it runs on, the scratchpad that
// layers run in turn share, and the cache of plans (layers built for one batch size).
//
//   tl::Scratchpad scratch;                     // layers reserve their need when built
//   tl::AlignedBuffer act(sizeof(float) * n * c);
//   tl::PlanCache<int, MyPlan> plans(8);        // at most 8 batch sizes built at once
//   MyPlan& p = plans.get(n, [&] { return std::make_unique<MyPlan>(n); });
#pragma once

#include <cstddef>
#include <cstdlib>
#include <map>
#include <memory>

namespace tl {

// Inference builds forward_inference primitives only; training builds forward_training ones
// plus the backward primitives (which need the training forward as their hint).
enum class Pass { inference, training };

// A 64-byte aligned buffer allocated once and grown only on demand (contents are not kept);
// oneDNN memories alias it. Throws Error when the allocation fails.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(std::size_t bytes) { reserve(bytes); }
  void reserve(std::size_t bytes);  // never shrinks
  void* data() const { return data_.get(); }
  float* floats() const { return reinterpret_cast<float*>(data_.get()); }
  std::size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(std::byte* p) const { std::free(p); }
  };
  std::unique_ptr<std::byte[], Free> data_;
  std::size_t size_ = 0;
};

// The oneDNN scratchpad (scratchpad_mode::user) of several layers that run one after another.
// Layers reserve their need when built and read data() at every execution, so growing it later
// is safe.
using Scratchpad = AlignedBuffer;

// Plans by key (batch size, pass, ...), built on first use. Beyond `limit` plans the cache is
// emptied and rebuilt on demand: a plan holds primitives and activation buffers, so the limit
// bounds memory when batch sizes vary. Plans never move once built (layers point into them).
template <typename Key, typename Plan>
class PlanCache {
 public:
  explicit PlanCache(std::size_t limit) : limit_(limit) {}
  template <typename Make>
  Plan& get(const Key& key, Make&& make) {
    if (auto it = plans_.find(key); it != plans_.end()) return *it->second;
    if (plans_.size() >= limit_) plans_.clear();
    return *plans_.emplace(key, make()).first->second;
  }
  void clear() { plans_.clear(); }
  auto begin() const { return plans_.begin(); }
  auto end() const { return plans_.end(); }

 private:
  std::size_t limit_;
  std::map<Key, std::unique_ptr<Plan>> plans_;
};

}  // namespace tl
