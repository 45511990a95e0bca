// int8's scale policy and the measurement of its ranges (tl/int8_quantization.hpp).
#include "tl/int8_quantization.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "tl/error.hpp"
#include "tl/machine.hpp"

namespace tl {
namespace {

// The largest u8 activation.
constexpr float kU8Max = 255.f;

// The largest s8 weight of a layer. Without VNNI oneDNN multiplies u8 x s8 pairs into s16
// sums that saturate (vpmaddubsw: 2 x 255 x 127 > 32767), which doubled int8's error;
// 7-bit weights (2 x 255 x 63 < 32767) cannot saturate. s8 images need nothing: oneDNN
// shifts them to u8 and halves the weights itself. Measured against 7-bit activations
// (tests/test_vgg16.cpp, kInt8Bounds): 7-bit weights lose less.
float s8_weight_max(bool u8_src) {
  return u8_src && machine().int8_seven_bit_weights() ? 63.f : 127.f;
}

}  // namespace

Int8Scales::Int8Scales(const Int8Calibration* c, std::string_view from) : c_(c), from_(from) {
  if (!c_) throw UsageError("precision int8 needs a calibration (tl-extract --calibrate N)");
}

float Int8Scales::input() const {
  if (c_->from != from_)
    throw Error(fmt::format("int8 calibration was measured from '{}', the net starts at '{}'",
                            c_->from, from_));
  const float range = layer_index(from_) < 0 ? 127.f : kU8Max;
  return c_->input > 0 ? range / c_->input : 1.f;
}

float Int8Scales::output(std::string_view layer) const {
  const auto it = c_->outputs.find(std::string(layer));
  if (it == c_->outputs.end())
    throw Error(fmt::format("int8 calibration has no range for layer {}", layer));
  return it->second > 0 ? kU8Max / it->second : 1.f;
}

std::vector<float> Int8Scales::weights(const ConvWeights& w, bool u8_src) {
  std::vector<float> scale(w.cout, 1.f);
  for (int o = 0; o < w.cout; ++o) {  // HWIO: output channel o is every cout-th value
    float mx = 0;
    for (size_t k = o; k < w.kernel.size(); k += w.cout) mx = std::max(mx, std::abs(w.kernel[k]));
    scale[o] = mx > 0 ? s8_weight_max(u8_src) / mx : 1.f;
  }
  return scale;
}

Int8Calibration calibrate_int8(const Vgg16Weights& weights, const NetConfig& cfg,
                               const float* images, int n) {
  Int8Calibration c;
  c.from = cfg.from;
  c.images = n;
  const int first = layer_index(cfg.from) + 1, last = layer_index(cfg.to);
  // One f32 net per layer, chained: every layer's output is seen.
  std::vector<Vgg16> nets;
  std::string prev = cfg.from;
  int h = cfg.height, w = cfg.width;
  // Small batches: 18 nets each hold their own activation buffers.
  const int batch = std::min(cfg.batch, 4);
  for (int i = first; i <= last; ++i) {
    NetConfig one = cfg;
    one.batch = batch;
    one.precision = Precision::f32;
    // --algo is an f32 choice the int8 net ignores: the ranges are measured with it where
    // oneDNN has it (as before), with direct convolutions elsewhere.
    if (!machine().runs(Precision::f32, one.algo)) one.algo = ConvAlgo::direct;
    one.calibration = nullptr;
    one.from = prev;
    one.to = std::string(vgg16_layers()[i].name);
    one.height = h;
    one.width = w;
    nets.emplace_back(weights, one);
    h = nets.back().output_shape().h;
    w = nets.back().output_shape().w;
    prev = one.to;
  }
  const size_t in_row = nets.front().input_shape().per_image();
  for (size_t k = 0; k < in_row * n; ++k) c.input = std::max(c.input, std::abs(images[k]));
  std::vector<float> a, b;
  for (int start = 0; start < n; start += batch) {
    const int m = std::min(batch, n - start);
    a.assign(images + start * in_row, images + (start + m) * in_row);
    for (auto& net : nets) {
      b.resize(static_cast<size_t>(m) * net.output_shape().per_image());
      net.forward(a.data(), m, b.data());
      float& mx = c.outputs[net.config().to];
      for (float v : b) mx = std::max(mx, v);
      std::swap(a, b);
    }
  }
  return c;
}

NetConfig with_ranges_from(const Vgg16Weights& weights, NetConfig cfg, const float* images, int n) {
  NetConfig f32 = cfg;
  f32.precision = Precision::f32;
  cfg.calibration = std::make_shared<Int8Calibration>(calibrate_int8(weights, f32, images, n));
  return cfg;
}

}  // namespace tl
