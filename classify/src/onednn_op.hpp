// Internal: the one helper through which tl::classify runs oneDNN. An Op is a primitive plus
// its argument memories, described once from the primitive descriptor and bound to the
// caller's buffers at each run; the scratchpad (user mode) is the layers' shared Scratchpad.
#pragma once

#include <initializer_list>
#include <string>
#include <unordered_map>
#include <utility>

#include <oneapi/dnnl/dnnl.hpp>

#include "tl/head_layers.hpp"

namespace tl::detail {

inline const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// Attributes every primitive of the head is built with.
inline dnnl::primitive_attr user_scratchpad_attr() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

class Op {
 public:
  Op() = default;
  // `args`: each argument the primitive reads or writes, with its memory descriptor.
  template <typename PrimitiveDesc, typename Primitive>
  Op(const PrimitiveDesc& pd, Primitive prim,
     std::initializer_list<std::pair<int, dnnl::memory::desc>> args, Scratchpad& scratch)
      : prim_(std::move(prim)), scratch_(&scratch), impl_(pd.impl_info_str()) {
    for (const auto& [arg, md] : args)
      args_.emplace(arg, dnnl::memory(md, cpu_engine(), DNNL_MEMORY_NONE));
    const dnnl::memory::desc sp = pd.scratchpad_desc();
    if (sp.get_size() > 0) {
      scratch.reserve(sp.get_size());
      args_.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory(sp, cpu_engine(), DNNL_MEMORY_NONE));
    }
  }

  // Binds each argument to a buffer and executes; returns when the results are written.
  void run(dnnl::stream& strm, std::initializer_list<std::pair<int, const void*>> buffers) {
    for (const auto& [arg, ptr] : buffers) args_.at(arg).set_data_handle(const_cast<void*>(ptr));
    if (auto it = args_.find(DNNL_ARG_SCRATCHPAD); it != args_.end())
      it->second.set_data_handle(scratch_->data());
    prim_.execute(strm, args_);
    strm.wait();
  }

  const std::string& impl() const { return impl_; }

 private:
  dnnl::primitive prim_;
  std::unordered_map<int, dnnl::memory> args_;
  Scratchpad* scratch_ = nullptr;
  std::string impl_;
};

}  // namespace tl::detail
