// VGG16's top block trained on cached block4_pool features: block5_conv1..3 (+ ReLU) and
// block5_pool on ConvLayer and MaxPoolLayer (the f32 forward on tlkit's WinogradConv where
// that is faster), with their weights as trainable Params (Keras's HWIO kernels).
//
// Activations are plain NHWC float32 (Keras's order, as the feature cache stores them); only
// the weights live in the layout oneDNN chooses (format any), reordered from the Params at
// each forward. Layers are built for one batch size; Block5 keeps one plan per batch size.
//
//   tl::Vgg16Weights w = tl::load_weights("random:1", tl::block5_layers());
//   tl::Block5 b5(w, {.h = 14, .w = 14, .c = 512});      // block4_pool rows [14, 14, 512]
//   b5.train_forward(rows, n, out);                     // {n, 14, 14, 512} -> {n, 7, 7, 512}
//   b5.backward(rows, n, diff_out);                     // fills every Param::grad
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tl/conv_layer.hpp"
#include "tl/dense_head.hpp"
#include "tl/head_layers.hpp"
#include "tl/max_pool_layer.hpp"
#include "tl/vgg16.hpp"
#include "tl/vgg16_spec.hpp"
#include "tl/weights.hpp"

namespace tl {

// "block5_conv1", "block5_conv2", "block5_conv3": the layers fine-tuning loads and trains.
const std::vector<std::string>& block5_layers();

// The layer before block5: fine-tuning reads features cached there.
inline constexpr const char* kFinetuneFeatureLayer = "block4_pool";

// The precisions block5 trains in: "f32" or "bf16" (int8 is not trained); UsageError naming
// the accepted values otherwise.
Precision parse_training_precision(std::string_view s);

// The smallest block5 map (block4_pool rows of side h, w >= this) on which ConvAlgo::automatic
// runs block5's f32 forward on tlkit's Winograd (bench/RESULTS.md, issue 19).
inline constexpr int kBlock5WinogradSide = 4;

// block5_conv1 -> block5_conv2 -> block5_conv3 (ReLU each) -> block5_pool.
class Block5 {
 public:
  // `weights` must hold the three block5 convs (Error naming the layer and the file
  // otherwise); `in` is one block4_pool row [h, w, 512] with h, w >= 2. `precision`: the
  // training convs' (train_forward, backward); forward() is always f32. bf16 on a CPU
  // without bf16 convolutions: Error. `algo`: the f32 forward convolutions' (the backward
  // passes are oneDNN's direct ones whatever it is): automatic = tlkit's Winograd where it
  // runs (AVX2 and up) and is faster (maps of at least kBlock5WinogradSide), else direct;
  // direct; winograd_tlkit (Error below AVX2). Others: Error.
  Block5(const Vgg16Weights& weights, Shape in, Precision precision = Precision::f32,
         ConvAlgo algo = ConvAlgo::automatic);
  ~Block5();
  Block5(Block5&&) noexcept;
  Block5& operator=(Block5&&) noexcept;

  Shape input_row() const;   // [h, w, 512]
  Shape output_row() const;  // [h/2, w/2, 512]
  size_t input_size() const;
  size_t output_size() const;

  // "block5_conv1/kernel" {3, 3, 512, 512} (HWIO), "block5_conv1/bias" {512}, ... conv3.
  std::vector<Param>& params();
  const std::vector<Param>& params() const;
  // The current weights as ConvWeights (for the model file and tl::Vgg16).
  std::vector<ConvWeights> conv_weights() const;

  // Inference: {n, h, w, 512} -> {n, h/2, w/2, 512}.
  void forward(const float* src, int n, float* dst);
  // Training forward (keeps the activations of this batch for backward).
  void train_forward(const float* src, int n, float* dst);
  // After train_forward(src, n, ...): d loss / d output {n, h/2, w/2, 512} -> every
  // Param::grad. src must be the rows train_forward read.
  void backward(const float* src, int n, const float* diff_dst);

  Precision precision() const;
  // The f32 forward's convolutions: ConvAlgo::direct or ConvAlgo::winograd_tlkit.
  ConvAlgo forward_algo() const;
  std::string describe() const;  // the oneDNN implementations of the plans built so far

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tl
