// Convolution and max pooling forward + backward on oneDNN 2.6 (through onednn::Op), and
// Block5: VGG16's top block with trainable weights.
#include "tl/block5.hpp"

#include <algorithm>
#include <cstring>
#include <optional>

#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.hpp>

#include "tl/error.hpp"
#include "tl/machine.hpp"
#include "tl/onednn.hpp"

namespace tl {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;
using onednn::make_reorder;
using onednn::Op;
using onednn::prop_of;

const std::vector<std::string>& block5_layers() {
  static const std::vector<std::string> names{"block5_conv1", "block5_conv2", "block5_conv3"};
  return names;
}

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
        const auto prop = prop_of(pass);
        // {N, cin, H, W} -> {N, cout, H, W}
        dnnl::convolution_forward::primitive_desc fpd(
            dnnl::convolution_forward::desc(prop, dnnl::algorithm::convolution_direct, conv_src,
                                            wei_any, bias, dst, strides, pad, pad),
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
        const auto prop = prop_of(pass);
        // {N, C, H, W} -> {N, C, H/2, W/2}
        dnnl::pooling_forward::primitive_desc fpd(
            dnnl::pooling_forward::desc(prop, alg, src, dst, {2, 2}, {2, 2}, {0, 0}, pad_r),
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

// --- Block5 ---------------------------------------------------------------------------------

namespace {

constexpr int kChannels = 512;

// The layers and activations of one batch size. Never moved once built (the layers point at
// its scratchpad).
struct Block5Plan {
  Block5Plan(int n, const Shape& in, Pass pass, Precision precision) : n(n) {
    const int h = in.h, w = in.w, c = kChannels;
    for (int k = 0; k < 3; ++k)  // {N, 512, h, w} -> {N, 512, h, w}; conv1's input is constant
      convs.emplace_back(n, h, w, c, c, /*relu=*/true, pass, scratch, /*diff_src=*/k > 0,
                         precision);
    pool.emplace(n, h, w, c, pass, scratch);  // {N, 512, h, w} -> {N, 512, h/2, w/2}
    const size_t bytes = sizeof(float) * n * h * w * c;
    for (auto& a : act) a.reserve(bytes);
    if (pass == Pass::training)
      for (auto& d : diff) d.reserve(bytes);
  }
  int n;
  Scratchpad scratch;
  std::vector<ConvLayer> convs;
  std::optional<MaxPoolLayer> pool;
  // act[k]: conv k+1's output; diff[0], diff[1]: gradients ping-pong.
  AlignedBuffer act[3], diff[2];
};

constexpr size_t kMaxPlans = 6;

}  // namespace

struct Block5::Impl {
  Shape in, out;
  Precision precision = Precision::f32;
  std::vector<Param> params;
  PlanCache<std::pair<int, Pass>, Block5Plan> plans{kMaxPlans};

  Block5Plan& plan(int n, Pass pass) {
    if (n < 1) throw Error(fmt::format("block5: batch of {} rows", n));
    return plans.get({n, pass},
                     [&] { return std::make_unique<Block5Plan>(n, in, pass, precision); });
  }

  void run_forward(Block5Plan& p, const float* src, float* dst) {
    const float* x = src;
    for (int k = 0; k < 3; ++k) {
      p.convs[k].set_weights(params[2 * k].value.data(), params[2 * k + 1].value.data());
      p.convs[k].forward(x, p.act[k].floats());
      x = p.act[k].floats();
    }
    p.pool->forward(x, dst);
  }
};

Block5::Block5(const Vgg16Weights& weights, Shape in, Precision precision)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  if (precision == Precision::int8) throw Error("block5: int8 training is not supported");
  if (precision == Precision::bf16) machine().require_training(Precision::bf16, "block5");
  m.precision = precision;
  if (in.c != kChannels || in.h < 2 || in.w < 2)
    throw Error(
        fmt::format("block5: input rows [{}, {}, {}], need [h, w, 512] with h, w >= 2 "
                    "(block4_pool features)",
                    in.h, in.w, in.c));
  m.in = {1, in.h, in.w, kChannels};
  m.out = {1, in.h / 2, in.w / 2, kChannels};
  for (const auto& name : block5_layers()) {
    const ConvWeights& c = weights.conv(name);  // Error naming the layer and the file
    if (c.cin != kChannels || c.cout != kChannels ||
        c.kernel.size() != 9ull * kChannels * kChannels || c.bias.size() != kChannels)
      throw Error(fmt::format("{}: weights from '{}' are {} -> {} channels, block5 has 512 -> 512",
                              name, weights.source, c.cin, c.cout));
    m.params.push_back({name + "/kernel",
                        {3, 3, kChannels, kChannels},
                        c.kernel,
                        std::vector<float>(c.kernel.size(), 0.f),
                        true});
    m.params.push_back(
        {name + "/bias", {kChannels}, c.bias, std::vector<float>(c.bias.size(), 0.f), false});
  }
}

Block5::~Block5() = default;
Block5::Block5(Block5&&) noexcept = default;
Block5& Block5::operator=(Block5&&) noexcept = default;

Shape Block5::input_row() const {
  return impl_->in;
}
Shape Block5::output_row() const {
  return impl_->out;
}
size_t Block5::input_size() const {
  return static_cast<size_t>(impl_->in.per_image());
}
size_t Block5::output_size() const {
  return static_cast<size_t>(impl_->out.per_image());
}
std::vector<Param>& Block5::params() {
  return impl_->params;
}
const std::vector<Param>& Block5::params() const {
  return impl_->params;
}

std::vector<ConvWeights> Block5::conv_weights() const {
  std::vector<ConvWeights> out;
  const auto& ps = impl_->params;
  for (size_t k = 0; k < 3; ++k)
    out.push_back({block5_layers()[k], kChannels, kChannels, ps[2 * k].value, ps[2 * k + 1].value});
  return out;
}

void Block5::forward(const float* src, int n, float* dst) {
  Impl& m = *impl_;
  m.run_forward(m.plan(n, Pass::inference), src, dst);
}

void Block5::train_forward(const float* src, int n, float* dst) {
  Impl& m = *impl_;
  m.run_forward(m.plan(n, Pass::training), src, dst);
}

void Block5::backward(const float* src, int n, const float* diff_dst) {
  Impl& m = *impl_;
  Block5Plan& p = m.plan(n, Pass::training);
  auto& ps = m.params;
  // {N, 512, h/2, w/2} -> {N, 512, h, w}
  p.pool->backward(diff_dst, p.diff[0].floats());
  int cur = 0;
  for (int k = 2; k >= 0; --k) {  // conv3, conv2: to their input too; conv1: weights only
    const float* x = k > 0 ? p.act[k - 1].floats() : src;
    float* dx = k > 0 ? p.diff[1 - cur].floats() : nullptr;
    p.convs[k].backward(x, p.act[k].floats(), p.diff[cur].floats(), dx, ps[2 * k].grad.data(),
                        ps[2 * k + 1].grad.data());
    cur = 1 - cur;
  }
}

Precision Block5::precision() const {
  return impl_->precision;
}

std::string Block5::describe() const {
  std::string s;
  for (const auto& [key, p] : impl_->plans) {
    s += fmt::format("block5 batch {} ({}):\n", key.first,
                     key.second == Pass::training ? "training" : "inference");
    for (size_t k = 0; k < p->convs.size(); ++k)
      s += fmt::format("  {}: {}\n", block5_layers()[k], p->convs[k].describe());
    s += "  block5_pool: " + p->pool->describe() + "\n";
  }
  return s;
}

}  // namespace tl
