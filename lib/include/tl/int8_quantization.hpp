// int8 quantisation of the VGG16 net, apart from the net: u8 activations with one scale per
// tensor from measured ranges, s8 weights with one scale per output channel (the scale policy
// Vgg16 builds its int8 primitives with), and the measurement of the ranges.
//
//   tl::Int8Calibration c = tl::calibrate_int8(weights, cfg, images, n);   // f32, layer by layer
//   tl::Int8Scales s(&c, cfg.from);
//   float q = x * s.output("block1_conv1");                 // u8 value of block1_conv1's output
#pragma once

#include <string_view>
#include <vector>

#include "tl/int8_calibration.hpp"
#include "tl/vgg16.hpp"
#include "tl/weights.hpp"

namespace tl {

class Int8Scales {
 public:
  // `c`: the ranges of every layer from `from` on; UsageError when null (int8 needs one).
  Int8Scales(const Int8Calibration* c, std::string_view from);
  // Scale of the net's input: s8 (|x| <= 127) for images, u8 for post-ReLU features. Error
  // when the ranges were measured from another layer.
  float input() const;
  // u8 scale of a layer's output: q = x * 255 / max. Error when the layer has no range.
  float output(std::string_view layer) const;
  // One s8 scale per output channel: the channel's largest |weight| maps to the largest s8
  // weight (127, or 63 where 7-bit weights are needed: Machine::int8_seven_bit_weights).
  static std::vector<float> weights(const ConvWeights& w, bool u8_src);

 private:
  const Int8Calibration* c_;
  std::string from_;
};

// Measures int8 ranges by running the layers of `cfg` (from..to, f32) one at a time over
// `n` preprocessed images (NHWC, as Vgg16::forward takes them), cfg.batch at a time.
Int8Calibration calibrate_int8(const Vgg16Weights& weights, const NetConfig& cfg,
                               const float* images, int n);

// `cfg` (precision int8) with ranges measured on `n` of the very images it will run, NHWC as
// Vgg16::forward takes them: for benchmarks and tl-forward, which have no image list.
NetConfig with_ranges_from(const Vgg16Weights& weights, NetConfig cfg, const float* images, int n);

}  // namespace tl
