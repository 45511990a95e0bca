// Dense, ReLU and softmax on oneDNN 2.6 primitives (through onednn::Op), dropout by hand.
#include "tl/head_layers.hpp"

#include <cstdlib>

#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.hpp>

#include "tl/error.hpp"
#include "tl/onednn.hpp"
#include "tl/seeded_random.hpp"

namespace tl {

using namespace onednn;

namespace {

void check_sizes(const char* layer, int batch, int in, int out) {
  if (batch < 1 || in < 1 || out < 1)
    throw Error(fmt::format("{} layer: bad sizes batch {}, in {}, out {}", layer, batch, in, out));
}

// {N, C} row-major f32, as every buffer of the head is.
memory::desc rows_md(int n, int c) {
  return {{n, c}, dt::f32, tag::nc};
}

}  // namespace

// --- DenseLayer ---------------------------------------------------------------------------

struct DenseLayer::Impl {
  int n, in, out;
  Pass pass;
  dnnl::stream strm{onednn::engine()};
  Op fwd, bwd_data, bwd_weights;
  bool has_bwd_data = false;
};

DenseLayer::DenseLayer(int batch, int in, int out, Pass pass, Scratchpad& scratch, bool diff_src)
    : impl_(std::make_unique<Impl>()) {
  check_sizes("dense", batch, in, out);
  Impl& m = *impl_;
  m.n = batch, m.in = in, m.out = out, m.pass = pass;
  // Plain layouts on purpose: the kernel stays in Keras's [in, out] order (oneDNN's {out, in}
  // dims with tag io), which the optimizer updates in place every step and the model file
  // stores; oneDNN's gemm-based inner product takes it directly, so there is no reorder.
  const memory::desc src = rows_md(batch, in), dst = rows_md(batch, out);
  const memory::desc wei({out, in}, dt::f32, tag::io), bias({out}, dt::f32, tag::x);
  onednn::call(
      [&] {
        dnnl::inner_product_forward::primitive_desc fpd(
            dnnl::inner_product_forward::desc(prop_of(pass), src, wei, bias, dst), onednn::attr(),
            onednn::engine());
        m.fwd = Op(fpd, dnnl::inner_product_forward(fpd),
                   {{DNNL_ARG_SRC, src},
                    {DNNL_ARG_WEIGHTS, wei},
                    {DNNL_ARG_BIAS, bias},
                    {DNNL_ARG_DST, dst}},
                   scratch);
        if (pass == Pass::training) {
          if (diff_src) {
            dnnl::inner_product_backward_data::primitive_desc dpd(
                dnnl::inner_product_backward_data::desc(src, wei, dst), onednn::attr(),
                onednn::engine(), fpd);
            m.bwd_data =
                Op(dpd, dnnl::inner_product_backward_data(dpd),
                   {{DNNL_ARG_DIFF_DST, dst}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DIFF_SRC, src}},
                   scratch);
            m.has_bwd_data = true;
          }
          dnnl::inner_product_backward_weights::primitive_desc wpd(
              dnnl::inner_product_backward_weights::desc(src, wei, bias, dst), onednn::attr(),
              onednn::engine(), fpd);
          m.bwd_weights = Op(wpd, dnnl::inner_product_backward_weights(wpd),
                             {{DNNL_ARG_SRC, src},
                              {DNNL_ARG_DIFF_DST, dst},
                              {DNNL_ARG_DIFF_WEIGHTS, wei},
                              {DNNL_ARG_DIFF_BIAS, bias}},
                             scratch);
        }
      },
      "oneDNN could not build the dense layer {{{}, {}}} -> {{{}, {}}}", batch, in, batch, out);
}

DenseLayer::~DenseLayer() = default;
DenseLayer::DenseLayer(DenseLayer&&) noexcept = default;
DenseLayer& DenseLayer::operator=(DenseLayer&&) noexcept = default;
int DenseLayer::batch() const {
  return impl_->n;
}
int DenseLayer::in() const {
  return impl_->in;
}
int DenseLayer::out() const {
  return impl_->out;
}

void DenseLayer::forward(const float* src, const float* kernel, const float* bias, float* dst) {
  Impl& m = *impl_;
  onednn::call(
      [&] {
        m.fwd.run(m.strm, {{DNNL_ARG_SRC, src},
                           {DNNL_ARG_WEIGHTS, kernel},
                           {DNNL_ARG_BIAS, bias},
                           {DNNL_ARG_DST, dst}});
      },
      "dense layer ({} -> {}) forward failed", m.in, m.out);
}

void DenseLayer::backward(const float* src, const float* kernel, const float* diff_dst,
                          float* diff_src, float* diff_kernel, float* diff_bias) {
  Impl& m = *impl_;
  if (m.pass != Pass::training) throw Error("dense layer: backward on a layer built for inference");
  if (diff_src && !m.has_bwd_data)
    throw Error("dense layer: diff_src requested from a layer built without it");
  onednn::call(
      [&] {
        if (diff_src)
          m.bwd_data.run(m.strm, {{DNNL_ARG_DIFF_DST, diff_dst},
                                  {DNNL_ARG_WEIGHTS, kernel},
                                  {DNNL_ARG_DIFF_SRC, diff_src}});
        m.bwd_weights.run(m.strm, {{DNNL_ARG_SRC, src},
                                   {DNNL_ARG_DIFF_DST, diff_dst},
                                   {DNNL_ARG_DIFF_WEIGHTS, diff_kernel},
                                   {DNNL_ARG_DIFF_BIAS, diff_bias}});
      },
      "dense layer ({} -> {}) backward failed", m.in, m.out);
}

std::string DenseLayer::describe() const {
  const Impl& m = *impl_;
  std::string s = fmt::format("dense {}x{}->{}: fwd {}", m.n, m.in, m.out, m.fwd.impl());
  if (m.has_bwd_data) s += fmt::format(", bwd_data {}", m.bwd_data.impl());
  if (m.pass == Pass::training) s += fmt::format(", bwd_weights {}", m.bwd_weights.impl());
  return s;
}

// --- ReluLayer ----------------------------------------------------------------------------

struct ReluLayer::Impl {
  int n, size;
  Pass pass;
  dnnl::stream strm{onednn::engine()};
  Op fwd, bwd;
};

ReluLayer::ReluLayer(int batch, int size, Pass pass, Scratchpad& scratch)
    : impl_(std::make_unique<Impl>()) {
  check_sizes("relu", batch, size, size);
  Impl& m = *impl_;
  m.n = batch, m.size = size, m.pass = pass;
  const memory::desc md = rows_md(batch, size);
  onednn::call(
      [&] {
        dnnl::eltwise_forward::primitive_desc fpd(
            dnnl::eltwise_forward::desc(prop_of(pass), dnnl::algorithm::eltwise_relu, md, 0.f),
            onednn::attr(), onednn::engine());
        m.fwd =
            Op(fpd, dnnl::eltwise_forward(fpd), {{DNNL_ARG_SRC, md}, {DNNL_ARG_DST, md}}, scratch);
        if (pass == Pass::training) {
          dnnl::eltwise_backward::primitive_desc bpd(
              dnnl::eltwise_backward::desc(dnnl::algorithm::eltwise_relu, md, md, 0.f),
              onednn::attr(), onednn::engine(), fpd);
          m.bwd =
              Op(bpd, dnnl::eltwise_backward(bpd),
                 {{DNNL_ARG_SRC, md}, {DNNL_ARG_DIFF_DST, md}, {DNNL_ARG_DIFF_SRC, md}}, scratch);
        }
      },
      "oneDNN could not build the relu layer {{{}, {}}}", batch, size);
}

ReluLayer::~ReluLayer() = default;
ReluLayer::ReluLayer(ReluLayer&&) noexcept = default;
ReluLayer& ReluLayer::operator=(ReluLayer&&) noexcept = default;

void ReluLayer::forward(const float* src, float* dst) {
  onednn::call(
      [&] {
        impl_->fwd.run(impl_->strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
      },
      "relu forward failed");
}

void ReluLayer::backward(const float* src, const float* diff_dst, float* diff_src) {
  if (impl_->pass != Pass::training)
    throw Error("relu layer: backward on a layer built for inference");
  onednn::call(
      [&] {
        impl_->bwd.run(
            impl_->strm,
            {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_SRC, diff_src}});
      },
      "relu backward failed");
}

std::string ReluLayer::describe() const {
  std::string s = fmt::format("relu {}x{}: fwd {}", impl_->n, impl_->size, impl_->fwd.impl());
  if (impl_->pass == Pass::training) s += fmt::format(", bwd {}", impl_->bwd.impl());
  return s;
}

// --- SoftmaxLayer -------------------------------------------------------------------------

struct SoftmaxLayer::Impl {
  int n, classes;
  dnnl::stream strm{onednn::engine()};
  Op fwd;
};

SoftmaxLayer::SoftmaxLayer(int batch, int classes, Scratchpad& scratch)
    : impl_(std::make_unique<Impl>()) {
  check_sizes("softmax", batch, classes, classes);
  impl_->n = batch, impl_->classes = classes;
  const memory::desc md = rows_md(batch, classes);
  onednn::call(
      [&] {
        dnnl::softmax_forward::primitive_desc pd(
            dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference, md, 1), onednn::attr(),
            onednn::engine());
        impl_->fwd =
            Op(pd, dnnl::softmax_forward(pd), {{DNNL_ARG_SRC, md}, {DNNL_ARG_DST, md}}, scratch);
      },
      "oneDNN could not build the softmax layer {{{}, {}}}", batch, classes);
}

SoftmaxLayer::~SoftmaxLayer() = default;
SoftmaxLayer::SoftmaxLayer(SoftmaxLayer&&) noexcept = default;
SoftmaxLayer& SoftmaxLayer::operator=(SoftmaxLayer&&) noexcept = default;

void SoftmaxLayer::forward(const float* src, float* dst) {
  onednn::call(
      [&] {
        impl_->fwd.run(impl_->strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
      },
      "softmax forward failed");
}

std::string SoftmaxLayer::describe() const {
  return fmt::format("softmax {}x{}: {}", impl_->n, impl_->classes, impl_->fwd.impl());
}

// --- dropout ------------------------------------------------------------------------------

void dropout_mask(std::mt19937_64& rng, float rate, std::span<float> mask) {
  if (!(rate >= 0.f && rate < 1.f)) throw Error(fmt::format("dropout rate {} not in [0, 1)", rate));
  const float keep = 1.f / (1.f - rate);
  for (float& m : mask) m = uniform01(rng) < rate ? 0.f : keep;
}

void apply_mask(const float* src, std::span<const float> mask, float* dst) {
  for (size_t i = 0; i < mask.size(); ++i) dst[i] = src[i] * mask[i];
}

}  // namespace tl
