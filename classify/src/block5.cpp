// Block5: VGG16's top block with trainable weights, on ConvLayer and MaxPoolLayer.
#include "tl/block5.hpp"

#include <limits>
#include <optional>

#include <fmt/format.h>

#include "tl/error.hpp"
#include "tl/machine.hpp"
#include "tl/winograd.hpp"

namespace tl {

Precision parse_training_precision(std::string_view s) {
  if (s == "f32") return Precision::f32;
  if (s == "bf16") return Precision::bf16;
  throw UsageError(fmt::format("unknown training precision '{}' (accepted: f32, bf16)", s));
}

const std::vector<std::string>& block5_layers() {
  static const std::vector<std::string> names{"block5_conv1", "block5_conv2", "block5_conv3"};
  return names;
}

namespace {

constexpr int kChannels = 512;

// The layers and activations of one batch size. Never moved once built (the layers point at
// its scratchpad). `wino`: the f32 forward runs on Block5's Winograd layers, not on these.
struct Block5Plan {
  Block5Plan(int n, const Shape& in, Pass pass, Precision precision, bool wino) : n(n), wino(wino) {
    const int h = in.h, w = in.w, c = kChannels;
    // {N, 512, h, w} -> {N, 512, h, w}; conv1's input is constant. Training's backward passes
    // always run on these; the forward does where Winograd does not.
    if (!wino || pass == Pass::training)
      for (int k = 0; k < 3; ++k)
        convs.emplace_back(n, h, w, c, c, /*relu=*/true, pass, scratch, /*diff_src=*/k > 0,
                           precision);
    pool.emplace(n, h, w, c, pass, scratch);  // {N, 512, h, w} -> {N, 512, h/2, w/2}
    const size_t bytes = sizeof(float) * n * h * w * c;
    for (auto& a : act) a.reserve(bytes);
    if (pass == Pass::training)
      for (auto& d : diff) d.reserve(bytes);
  }
  int n;
  bool wino;
  Scratchpad scratch;
  std::vector<ConvLayer> convs;
  std::optional<MaxPoolLayer> pool;
  // act[k]: conv k+1's output; diff[0], diff[1]: gradients ping-pong.
  AlignedBuffer act[3], diff[2];
};

constexpr size_t kMaxPlans = 6;

// The f32 forward's algorithm for `requested` on block4_pool rows `in`.
ConvAlgo forward_algo_for(ConvAlgo requested, const Shape& in) {
  const Machine& m = machine();
  switch (requested) {
    case ConvAlgo::automatic:
      return m.f32_winograd_tlkit.native && std::min(in.h, in.w) >= kBlock5WinogradSide
                 ? ConvAlgo::winograd_tlkit
                 : ConvAlgo::direct;
    case ConvAlgo::direct:
      return ConvAlgo::direct;
    case ConvAlgo::winograd_tlkit:
      if (!m.f32_winograd_tlkit.native)
        throw Error(
            fmt::format("block5: no winograd-tlkit forward here ({})", m.f32_winograd_tlkit.impl));
      return ConvAlgo::winograd_tlkit;
    case ConvAlgo::winograd:
      break;
  }
  throw Error(
      fmt::format("block5: forward convolutions '{}' (accepted: auto, direct, "
                  "winograd-tlkit)",
                  to_string(requested)));
}

}  // namespace

struct Block5::Impl {
  Shape in, out;
  Precision precision = Precision::f32;
  ConvAlgo algo = ConvAlgo::direct;  // the f32 forward's
  // winograd_tlkit: the three convs, any batch; one set for every plan (the transformed
  // kernels take 36 MiB a layer), their weights set at each forward.
  std::vector<WinogradConv> wino;
  std::vector<Param> params;
  PlanCache<std::pair<int, Pass>, Block5Plan> plans{kMaxPlans};

  std::vector<ConvWeights> conv_weights() const {
    std::vector<ConvWeights> out;
    for (size_t k = 0; k < 3; ++k)
      out.push_back(
          {block5_layers()[k], kChannels, kChannels, params[2 * k].value, params[2 * k + 1].value});
    return out;
  }

  Block5Plan& plan(int n, Pass pass) {
    if (n < 1) throw Error(fmt::format("block5: batch of {} rows", n));
    return plans.get({n, pass}, [&] {
      // Winograd computes the f32 forwards only (bf16 training convs read bf16).
      const bool on_wino =
          !wino.empty() && (pass == Pass::inference || precision == Precision::f32);
      return std::make_unique<Block5Plan>(n, in, pass, precision, on_wino);
    });
  }

  void run_forward(Block5Plan& p, const float* src, float* dst) {
    const float* x = src;
    for (int k = 0; k < 3; ++k) {
      const float *kernel = params[2 * k].value.data(), *bias = params[2 * k + 1].value.data();
      if (!p.convs.empty()) p.convs[k].set_weights(kernel, bias);  // forward or backward
      if (p.wino) {
        wino[k].set_weights(kernel, bias);
        wino[k].forward(x, p.n, p.act[k].floats());
      } else {
        p.convs[k].forward(x, p.act[k].floats());
      }
      x = p.act[k].floats();
    }
    p.pool->forward(x, dst);
  }
};

Block5::Block5(const Vgg16Weights& weights, Shape in, Precision precision, ConvAlgo algo)
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
  m.algo = forward_algo_for(algo, in);
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
  if (m.algo == ConvAlgo::winograd_tlkit)
    for (const ConvWeights& c : m.conv_weights())  // NHWC [n, h, w, 512] -> same, any n
      m.wino.emplace_back(
          c, Shape{.n = std::numeric_limits<int>::max(), .h = in.h, .w = in.w, .c = kChannels});
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
  return impl_->conv_weights();
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

ConvAlgo Block5::forward_algo() const {
  return impl_->algo;
}

std::string Block5::describe() const {
  std::string s;
  for (const auto& [key, p] : impl_->plans) {
    s += fmt::format("block5 batch {} ({}):\n", key.first,
                     key.second == Pass::training ? "training" : "inference");
    for (size_t k = 0; k < 3; ++k) {
      std::string what = p->convs.empty() ? "" : p->convs[k].describe();
      if (p->wino) what += (what.empty() ? "" : "; forward ") + impl_->wino[k].describe();
      s += fmt::format("  {}: {}\n", block5_layers()[k], what);
    }
    s += "  block5_pool: " + p->pool->describe() + "\n";
  }
  return s;
}

}  // namespace tl
