// 3x3 convolution (+ ReLU) forward and backward on oneDNN 2.6, through onednn::Op.
#include "tl/conv_layer.hpp"

#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.hpp>

#include "tl/error.hpp"
#include "tl/onednn.hpp"

namespace tl {

using namespace onednn;

namespace {

// {N, C, H, W} logical dims, NHWC in memory.
memory::desc nhwc(int n, int c, int h, int w, dt type = dt::f32) {
  return {{n, c, h, w}, type, tag::nhwc};
}

}  // namespace

// --- ConvLayer ------------------------------------------------------------------------------

struct ConvLayer::Impl {
  int n, h, w, cin, cout;
  bool relu, has_bwd_data = false, bf16 = false;
  Pass pass;
  dnnl::stream strm{onednn::engine()};
  Op fwd, relu_bwd, bwd_data, bwd_weights;
  Op kernel_to_fwd, kernel_to_bwd, diff_kernel_out;  // HWIO <-> oneDNN's layouts
  bool same_bwd_weights = true;                      // bwd data reads the forward's layout
  AlignedBuffer wei_fwd, wei_bwd, diff_wei, diff_pre;
  // bf16: the input (kept from forward for backward weights) and d pre-activation, rounded.
  Op src_to_bf16, diff_to_bf16;
  AlignedBuffer src_bf16, diff_bf16;
  const float* bias = nullptr;
  std::string impl;
};

ConvLayer::ConvLayer(int batch, int h, int w, int cin, int cout, bool relu, Pass pass,
                     Scratchpad& scratch, bool diff_src, Precision precision)
    : impl_(std::make_unique<Impl>()) {
  if (batch < 1 || h < 1 || w < 1 || cin < 1 || cout < 1)
    throw Error(fmt::format("conv layer: bad sizes batch {}, {}x{}, {} -> {} channels", batch, h, w,
                            cin, cout));
  Impl& m = *impl_;
  m.n = batch, m.h = h, m.w = w, m.cin = cin, m.cout = cout, m.relu = relu, m.pass = pass;
  m.bf16 = precision == Precision::bf16 && pass == Pass::training;
  // f32 mode: every tensor f32. bf16: the convs read bf16 (conv_src, conv_dd, the weights)
  // and write f32 (dst, diff_src, diff weights, bias and its gradient).
  const dt ct = m.bf16 ? dt::bf16 : dt::f32;
  const memory::desc src = nhwc(batch, cin, h, w), dst = nhwc(batch, cout, h, w);
  const memory::desc conv_src = nhwc(batch, cin, h, w, ct), conv_dd = nhwc(batch, cout, h, w, ct);
  const memory::desc wei_any({cout, cin, 3, 3}, ct, tag::any);
  const memory::desc diff_wei_any({cout, cin, 3, 3}, dt::f32, tag::any);
  const memory::desc wei_user({cout, cin, 3, 3}, dt::f32, tag::hwio);
  const memory::desc bias({cout}, dt::f32, tag::x);
  const memory::dims strides{1, 1}, pad{1, 1};
  onednn::call(
      [&] {
        // {N, cin, H, W} -> {N, cout, H, W}
        dnnl::convolution_forward::primitive_desc fpd(
            dnnl::convolution_forward::desc(prop_of(pass), dnnl::algorithm::convolution_direct,
                                            conv_src, wei_any, bias, dst, strides, pad, pad),
            onednn::attr(relu), onednn::engine());
        m.fwd = Op(fpd, dnnl::convolution_forward(fpd),
                   {{DNNL_ARG_SRC, conv_src},
                    {DNNL_ARG_WEIGHTS, fpd.weights_desc()},
                    {DNNL_ARG_BIAS, bias},
                    {DNNL_ARG_DST, dst}},
                   scratch);
        m.impl = fmt::format("conv fwd {}", fpd.impl_info_str());
        m.wei_fwd.reserve(fpd.weights_desc().get_size());
        m.kernel_to_fwd = make_reorder(wei_user, fpd.weights_desc(), scratch);
        if (m.bf16) {
          m.src_to_bf16 = make_reorder(src, conv_src, scratch);
          m.src_bf16.reserve(conv_src.get_size());
          m.diff_to_bf16 = make_reorder(dst, conv_dd, scratch);
          m.diff_bf16.reserve(conv_dd.get_size());
          m.impl +=
              fmt::format(" (bf16 src and weights, f32 dst; f32 -> bf16 {})", m.src_to_bf16.impl());
        }
        if (pass == Pass::training) {
          if (relu) {  // d dst -> d (pre-activation), from the output: dst > 0 where src > 0
            const auto alg = dnnl::algorithm::eltwise_relu_use_dst_for_bwd;
            dnnl::eltwise_forward::primitive_desc hint(
                dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training, alg, dst, 0.f, 0.f),
                onednn::attr(), onednn::engine());
            dnnl::eltwise_backward::primitive_desc rpd(
                dnnl::eltwise_backward::desc(alg, dst, dst, 0.f, 0.f), onednn::attr(),
                onednn::engine(), hint);
            m.relu_bwd = Op(
                rpd, dnnl::eltwise_backward(rpd),
                {{DNNL_ARG_DST, dst}, {DNNL_ARG_DIFF_DST, dst}, {DNNL_ARG_DIFF_SRC, dst}}, scratch);
            m.diff_pre.reserve(dst.get_size());
            m.impl += fmt::format(", relu bwd {}", rpd.impl_info_str());
          }
          if (diff_src) {  // {N, cout, H, W} -> {N, cin, H, W}
            dnnl::convolution_backward_data::primitive_desc dpd(
                dnnl::convolution_backward_data::desc(dnnl::algorithm::convolution_direct, src,
                                                      wei_any, conv_dd, strides, pad, pad),
                onednn::attr(), onednn::engine(), fpd);
            m.bwd_data = Op(dpd, dnnl::convolution_backward_data(dpd),
                            {{DNNL_ARG_DIFF_DST, conv_dd},
                             {DNNL_ARG_WEIGHTS, dpd.weights_desc()},
                             {DNNL_ARG_DIFF_SRC, src}},
                            scratch);
            m.has_bwd_data = true;
            m.same_bwd_weights = dpd.weights_desc() == fpd.weights_desc();
            if (!m.same_bwd_weights) {
              m.wei_bwd.reserve(dpd.weights_desc().get_size());
              m.kernel_to_bwd = make_reorder(wei_user, dpd.weights_desc(), scratch);
            }
            m.impl += fmt::format(", bwd data {}", dpd.impl_info_str());
          }
          // {N, cout, H, W} -> kernel, bias
          dnnl::convolution_backward_weights::primitive_desc wpd(
              dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct,
                                                       conv_src, diff_wei_any, bias, conv_dd,
                                                       strides, pad, pad),
              onednn::attr(), onednn::engine(), fpd);
          m.bwd_weights = Op(wpd, dnnl::convolution_backward_weights(wpd),
                             {{DNNL_ARG_SRC, conv_src},
                              {DNNL_ARG_DIFF_DST, conv_dd},
                              {DNNL_ARG_DIFF_WEIGHTS, wpd.diff_weights_desc()},
                              {DNNL_ARG_DIFF_BIAS, bias}},
                             scratch);
          m.diff_wei.reserve(wpd.diff_weights_desc().get_size());
          m.diff_kernel_out = make_reorder(wpd.diff_weights_desc(), wei_user, scratch);
          m.impl += fmt::format(", bwd weights {}", wpd.impl_info_str());
        }
      },
      "oneDNN could not build the conv layer {{{}, {}, {}, {}}} -> {} channels", batch, cin, h, w,
      cout);
}

ConvLayer::~ConvLayer() = default;
ConvLayer::ConvLayer(ConvLayer&&) noexcept = default;
ConvLayer& ConvLayer::operator=(ConvLayer&&) noexcept = default;

void ConvLayer::set_weights(const float* kernel, const float* bias) {
  Impl& m = *impl_;
  onednn::call(
      [&] {
        m.kernel_to_fwd.run(m.strm, {{DNNL_ARG_FROM, kernel}, {DNNL_ARG_TO, m.wei_fwd.data()}});
        if (m.has_bwd_data && !m.same_bwd_weights)
          m.kernel_to_bwd.run(m.strm, {{DNNL_ARG_FROM, kernel}, {DNNL_ARG_TO, m.wei_bwd.data()}});
      },
      "conv layer: weights reorder failed");
  m.bias = bias;
}

void ConvLayer::forward(const float* src, float* dst) {
  Impl& m = *impl_;
  if (!m.bias) throw Error("conv layer: forward before set_weights");
  onednn::call(
      [&] {
        const void* x = src;
        if (m.bf16) {  // {N, cin, H, W} f32 -> bf16, kept for backward weights
          m.src_to_bf16.run(m.strm, {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, m.src_bf16.data()}});
          x = m.src_bf16.data();
        }
        m.fwd.run(m.strm, {{DNNL_ARG_SRC, x},
                           {DNNL_ARG_WEIGHTS, m.wei_fwd.data()},
                           {DNNL_ARG_BIAS, m.bias},
                           {DNNL_ARG_DST, dst}});
      },
      "conv layer ({} -> {}) forward failed", m.cin, m.cout);
}

void ConvLayer::backward(const float* src, const float* dst, const float* diff_dst, float* diff_src,
                         float* diff_kernel, float* diff_bias) {
  Impl& m = *impl_;
  if (m.pass != Pass::training) throw Error("conv layer: backward on a layer built for inference");
  if (diff_src && !m.has_bwd_data)
    throw Error("conv layer: diff_src requested from a layer built without it");
  onednn::call(
      [&] {
        const float* dpre = diff_dst;
        if (m.relu) {  // {N, cout, H, W} -> {N, cout, H, W}
          m.relu_bwd.run(m.strm, {{DNNL_ARG_DST, dst},
                                  {DNNL_ARG_DIFF_DST, diff_dst},
                                  {DNNL_ARG_DIFF_SRC, m.diff_pre.data()}});
          dpre = m.diff_pre.floats();
        }
        const void *x = src, *dd = dpre;
        if (m.bf16) {  // {N, cout, H, W} f32 -> bf16; src's bf16 copy is the forward's
          m.diff_to_bf16.run(m.strm, {{DNNL_ARG_FROM, dpre}, {DNNL_ARG_TO, m.diff_bf16.data()}});
          x = m.src_bf16.data();
          dd = m.diff_bf16.data();
        }
        m.bwd_weights.run(m.strm, {{DNNL_ARG_SRC, x},
                                   {DNNL_ARG_DIFF_DST, dd},
                                   {DNNL_ARG_DIFF_WEIGHTS, m.diff_wei.data()},
                                   {DNNL_ARG_DIFF_BIAS, diff_bias}});
        m.diff_kernel_out.run(m.strm,
                              {{DNNL_ARG_FROM, m.diff_wei.data()}, {DNNL_ARG_TO, diff_kernel}});
        if (diff_src)
          m.bwd_data.run(
              m.strm, {{DNNL_ARG_DIFF_DST, dd},
                       {DNNL_ARG_WEIGHTS, m.same_bwd_weights ? m.wei_fwd.data() : m.wei_bwd.data()},
                       {DNNL_ARG_DIFF_SRC, diff_src}});
      },
      "conv layer ({} -> {}) backward failed", m.cin, m.cout);
}

std::string ConvLayer::describe() const {
  return impl_->impl;
}

}  // namespace tl
