// 2x2 max pooling forward and backward on oneDNN 2.6, through onednn::Op.
#include "tl/max_pool_layer.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.hpp>

#include "tl/error.hpp"
#include "tl/onednn.hpp"

namespace tl {

using namespace onednn;

namespace {

// {N, C, H, W} logical dims, NHWC in memory.
memory::desc nhwc(int n, int c, int h, int w) {
  return {{n, c, h, w}, dt::f32, tag::nhwc};
}

}  // namespace

// --- MaxPoolLayer ---------------------------------------------------------------------------

struct MaxPoolLayer::Impl {
  Pass pass;
  dnnl::stream strm{onednn::engine()};
  Op fwd, bwd;
  AlignedBuffer workspace;
  std::string impl;
};

MaxPoolLayer::MaxPoolLayer(int batch, int h, int w, int c, Pass pass, Scratchpad& scratch)
    : impl_(std::make_unique<Impl>()) {
  if (batch < 1 || h < 2 || w < 2 || c < 1)
    throw Error(fmt::format("max pool layer: bad sizes batch {}, {}x{}x{}", batch, h, w, c));
  Impl& m = *impl_;
  m.pass = pass;
  const int oh = h / 2, ow = w / 2;
  const memory::desc src = nhwc(batch, c, h, w), dst = nhwc(batch, c, oh, ow);
  const memory::dims pad_r = onednn::floor_pool_padding(h, w, oh, ow);
  const auto alg = dnnl::algorithm::pooling_max;
  onednn::call(
      [&] {
        // {N, C, H, W} -> {N, C, H/2, W/2}
        dnnl::pooling_forward::primitive_desc fpd(
            dnnl::pooling_forward::desc(prop_of(pass), alg, src, dst, {2, 2}, {2, 2}, {0, 0},
                                        pad_r),
            onednn::attr(), onednn::engine());
        if (pass == Pass::training) {
          m.fwd = Op(fpd, dnnl::pooling_forward(fpd),
                     {{DNNL_ARG_SRC, src},
                      {DNNL_ARG_DST, dst},
                      {DNNL_ARG_WORKSPACE, fpd.workspace_desc()}},
                     scratch);
          m.workspace.reserve(std::max<size_t>(fpd.workspace_desc().get_size(), 64));
          dnnl::pooling_backward::primitive_desc bpd(
              dnnl::pooling_backward::desc(alg, src, dst, {2, 2}, {2, 2}, {0, 0}, pad_r),
              onednn::attr(), onednn::engine(), fpd);
          m.bwd = Op(bpd, dnnl::pooling_backward(bpd),
                     {{DNNL_ARG_DIFF_DST, dst},
                      {DNNL_ARG_DIFF_SRC, src},
                      {DNNL_ARG_WORKSPACE, fpd.workspace_desc()}},
                     scratch);
          m.impl = fmt::format("pool fwd {}, bwd {}", fpd.impl_info_str(), bpd.impl_info_str());
        } else {
          m.fwd = Op(fpd, dnnl::pooling_forward(fpd), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}},
                     scratch);
          m.impl = fmt::format("pool fwd {}", fpd.impl_info_str());
        }
      },
      "oneDNN could not build the max pool layer {{{}, {}, {}, {}}}", batch, c, h, w);
}

MaxPoolLayer::~MaxPoolLayer() = default;
MaxPoolLayer::MaxPoolLayer(MaxPoolLayer&&) noexcept = default;
MaxPoolLayer& MaxPoolLayer::operator=(MaxPoolLayer&&) noexcept = default;

void MaxPoolLayer::forward(const float* src, float* dst) {
  Impl& m = *impl_;
  onednn::call(
      [&] {
        if (m.pass == Pass::training)
          m.fwd.run(
              m.strm,
              {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}, {DNNL_ARG_WORKSPACE, m.workspace.data()}});
        else
          m.fwd.run(m.strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
      },
      "max pool forward failed");
}

void MaxPoolLayer::backward(const float* diff_dst, float* diff_src) {
  Impl& m = *impl_;
  if (m.pass != Pass::training)
    throw Error("max pool layer: backward on a layer built for inference");
  onednn::call(
      [&] {
        m.bwd.run(m.strm, {{DNNL_ARG_DIFF_DST, diff_dst},
                           {DNNL_ARG_DIFF_SRC, diff_src},
                           {DNNL_ARG_WORKSPACE, m.workspace.data()}});
      },
      "max pool backward failed");
}

std::string MaxPoolLayer::describe() const {
  return impl_->impl;
}

}  // namespace tl
