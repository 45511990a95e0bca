// The VGG16 convolutional base on oneDNN primitives.
//
// A Vgg16 is built once for (layers from..to, batch, input size, precision) and then run
// many times: primitives, weights in oneDNN's chosen layout and activation buffers are all
// created in the constructor, so forward() allocates nothing. Activations stay in oneDNN's
// layout between layers: one reorder in (NHWC f32) and one out (NHWC f32, Keras's order).
//
//   tl::Vgg16 net(tl::load_weights("random:1"),
//                 {.batch = 32, .height = 224, .width = 224, .to = "block5_pool"});
//   std::vector<float> out(net.output_shape().elems());
//   net.forward(images.data(), 32, out.data());   // images: [32][224][224][3] preprocessed
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "tl/int8_calibration.hpp"
#include "tl/precision.hpp"
#include "tl/vgg16_spec.hpp"
#include "tl/weights.hpp"

namespace tl {

struct NetConfig {
  int batch = 1;
  int height = 224;  // size of the `from` layer's output (the image for "input")
  int width = 224;
  std::string from = std::string(kInputLayer);  // run the layers after this one ...
  std::string to = "block5_pool";               // ... up to and including this one
  Precision precision = Precision::f32;
  ConvAlgo algo = ConvAlgo::direct;
  // Required for Precision::int8: the ranges of every layer from `from` to `to`.
  std::shared_ptr<const Int8Calibration> calibration{};
};

class Vgg16 {
 public:
  // Throws UsageError for bad layer names or sizes, for a precision or algorithm with no
  // native oneDNN kernel on this CPU (tl::machine()), Error when a layer's weights are missing
  // or oneDNN cannot build a primitive (the message names the layer).
  Vgg16(const Vgg16Weights& weights, const NetConfig& config);
  ~Vgg16();
  Vgg16(Vgg16&&) noexcept;
  Vgg16& operator=(Vgg16&&) noexcept;
  Vgg16(const Vgg16&) = delete;
  Vgg16& operator=(const Vgg16&) = delete;

  const NetConfig& config() const;
  Shape input_shape() const;   // [batch, height, width, channels of `from`]
  Shape output_shape() const;  // [batch, oh, ow, channels of `to`]

  // src: n rows of input_shape() per-image NHWC float32; dst: n rows of output_shape()
  // per-image NHWC float32. 1 <= n <= batch (a short last batch is padded internally).
  void forward(const float* src, int n, float* dst);

  // input_shape() of a net built for `config`, without building it. UsageError for a bad layer.
  static Shape input_shape_of(const NetConfig& config);

  // Multiply-accumulates per image of the layers this net runs.
  double macs_per_image() const;

  // A lower bound of the bytes a net built for `config` holds, from the shapes alone (nothing
  // is allocated, no weights needed): the two ping-pong activation buffers (each the largest
  // activation, input included), the f32 staging rows and the f32 weights of its layers.
  // oneDNN's scratchpad and blocked-layout padding come on top. Saturates at SIZE_MAX.
  // Throws UsageError for bad layer names or sizes (as infer_shapes).
  static std::size_t estimate_bytes(const NetConfig& config);
  // The oneDNN implementation chosen for each layer, e.g. "block1_conv1: brgconv:avx512_core".
  std::string describe() const;
  // The convolution algorithm that runs: winograd_tlkit when some layer runs tlkit's Winograd,
  // winograd when some layer runs oneDNN's (never the first: 3 input channels), else direct
  // (always for bf16 and int8).
  ConvAlgo algo_used() const;

  struct Impl;  // defined in vgg16.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tl
