// The oneDNN toolkit's out-of-line parts (tl/onednn.hpp) and AlignedBuffer (tl/layer_plan.hpp).
#include "tl/onednn.hpp"

#include <fmt/format.h>

#include "tl/error.hpp"
#include "tl/layer_plan.hpp"

namespace tl {

void AlignedBuffer::reserve(std::size_t bytes) {
  if (bytes <= size_) return;
  bytes = (bytes + 63) / 64 * 64;
  data_.reset(static_cast<std::byte*>(std::aligned_alloc(64, bytes)));
  if (!data_) throw Error(fmt::format("out of memory allocating {} bytes", bytes));
  size_ = bytes;
}

namespace onednn {

const dnnl::engine& engine() {
  static const dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::primitive_attr attr(bool relu) {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (relu) {
    dnnl::post_ops po;
    po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    a.set_post_ops(po);
  }
  return a;
}

dnnl::prop_kind prop_of(Pass pass) {
  return pass == Pass::training ? dnnl::prop_kind::forward_training
                                : dnnl::prop_kind::forward_inference;
}

dnnl::memory::dims floor_pool_padding(int in_h, int in_w, int out_h, int out_w) {
  return {out_h * 2 - in_h, out_w * 2 - in_w};
}

Op make_reorder(const dnnl::memory::desc& from, const dnnl::memory::desc& to, Scratchpad& scratch) {
  dnnl::reorder::primitive_desc pd(engine(), from, engine(), to, attr());
  return Op(pd, dnnl::reorder(pd), {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}}, scratch);
}

}  // namespace onednn
}  // namespace tl
