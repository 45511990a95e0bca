// The one toolkit through which tlkit runs oneDNN (the VGG16 net, the head layers, block5):
// the CPU engine, Op (a primitive plus its argument memories), attribute and padding helpers,
// the prop_kind of a Pass, and `call`, which turns dnnl::error into tl::Error naming the layer.
// Needs oneDNN's headers: include it from sources that link DNNL::dnnl, never from a public API.
//
//   tl::Scratchpad scratch;
//   dnnl::eltwise_forward::primitive_desc pd(
//       dnnl::eltwise_forward::desc(tl::onednn::prop_of(pass), dnnl::algorithm::eltwise_relu,
//                                   md, 0.f),
//       tl::onednn::attr(), tl::onednn::engine());
//   tl::onednn::Op relu(pd, dnnl::eltwise_forward(pd), {{DNNL_ARG_SRC, md}, {DNNL_ARG_DST, md}},
//                       scratch);
//   tl::onednn::call([&] { relu.run(strm, {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, y}}); },
//                    "relu forward failed");   // Error "relu forward failed: <oneDNN's text>"
#pragma once

#include <initializer_list>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.hpp>

#include "tl/error.hpp"
#include "tl/layer_plan.hpp"

namespace tl::onednn {

// Short names for what every layer file describes: `using namespace tl::onednn;` in a source.
using memory = dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

// The one CPU engine every primitive and memory of tlkit is built on.
const dnnl::engine& engine();

// Attributes of every tlkit primitive: the user scratchpad, and a fused ReLU when asked.
dnnl::primitive_attr attr(bool relu = false);

// forward_training for Pass::training, forward_inference otherwise.
dnnl::prop_kind prop_of(Pass pass);

// Right padding of a 2x2, stride-2 max pool so that oneDNN's (H - 2 + pr) / 2 + 1 output rows
// equal Keras's floor(H / 2): {out_h * 2 - in_h, out_w * 2 - in_w} (0 or -1 each).
dnnl::memory::dims floor_pool_padding(int in_h, int in_w, int out_h, int out_w);

// Runs f() and returns what it returns; a dnnl::error becomes tl::Error("<what>: <oneDNN's
// text>"), `what` formatted only then (steady-state calls allocate nothing).
template <typename F, typename... Args>
decltype(auto) call(F&& f, fmt::format_string<Args...> what, Args&&... args) {
  try {
    return std::forward<F>(f)();
  } catch (const dnnl::error& e) {
    throw Error(fmt::format("{}: {}", fmt::format(what, std::forward<Args>(args)...), e.what()));
  }
}

class Op {
 public:
  Op() = default;
  // `args`: each argument the primitive reads or writes, with its memory descriptor; the
  // scratchpad (user mode) is `scratch`, reserved here and read at every run.
  template <typename PrimitiveDesc, typename Primitive>
  Op(const PrimitiveDesc& pd, Primitive prim,
     std::initializer_list<std::pair<int, dnnl::memory::desc>> args, Scratchpad& scratch)
      : prim_(std::move(prim)), scratch_(&scratch), impl_(pd.impl_info_str()) {
    for (const auto& [arg, md] : args)
      args_.emplace(arg, dnnl::memory(md, engine(), DNNL_MEMORY_NONE));
    const dnnl::memory::desc sp = pd.scratchpad_desc();
    if (sp.get_size() > 0) {
      scratch.reserve(sp.get_size());
      args_.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory(sp, engine(), DNNL_MEMORY_NONE));
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

// A reorder between two layouts (or types) of one tensor, built once.
Op make_reorder(const dnnl::memory::desc& from, const dnnl::memory::desc& to, Scratchpad& scratch);

}  // namespace tl::onednn
