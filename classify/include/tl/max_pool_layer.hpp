// 2x2 max pooling (Keras's MaxPooling2D, floor) with its backward pass on oneDNN 2.6, for
// training VGG16's top block (tl::Block5). Activations are plain NHWC float32.
//
//   tl::Scratchpad scratch;
//   tl::MaxPoolLayer pool(32, 14, 14, 512, tl::Pass::training, scratch);
//   pool.forward(x, y);              // {32, 14, 14, 512} -> {32, 7, 7, 512}
//   pool.backward(dy, dx);           // each gradient to its window's maximum
#pragma once

#include <memory>
#include <string>

#include "tl/layer_plan.hpp"

namespace tl {

// Max pooling 2x2 stride 2, floor (Keras's MaxPooling2D), with the training workspace.
class MaxPoolLayer {
 public:
  MaxPoolLayer(int batch, int h, int w, int c, Pass pass, Scratchpad& scratch);
  ~MaxPoolLayer();
  MaxPoolLayer(MaxPoolLayer&&) noexcept;
  MaxPoolLayer& operator=(MaxPoolLayer&&) noexcept;
  // {N, C, H, W} -> {N, C, H/2, W/2} (NHWC); in training keeps where each maximum came from.
  void forward(const float* src, float* dst);
  // {N, C, H/2, W/2} -> {N, C, H, W}: each gradient to its window's maximum (training only).
  void backward(const float* diff_dst, float* diff_src);
  std::string describe() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tl
