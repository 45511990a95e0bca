// Block5: VGG16's top block with trainable weights, on ConvLayer and MaxPoolLayer.
#include "tl/block5.hpp"

#include <optional>

#include <fmt/format.h>

#include "tl/error.hpp"
#include "tl/machine.hpp"

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
