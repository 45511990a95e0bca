// 3x3 convolution (+ ReLU) with its backward passes on oneDNN 2.6 primitives, for training
// VGG16's top block (tl::Block5). Activations are plain NHWC float32; the weights live in the
// layout oneDNN chooses, reordered from Keras's HWIO kernel at each set_weights.
//
//   tl::Scratchpad scratch;
//   tl::ConvLayer conv(32, 14, 14, 512, 512, /*relu=*/true, tl::Pass::training, scratch);
//   conv.set_weights(kernel, bias);                  // HWIO [3][3][512][512], [512]
//   conv.forward(x, y);                              // {32, 14, 14, 512} -> {32, 14, 14, 512}
//   conv.backward(x, y, dy, dx, dkernel, dbias);
#pragma once

#include <memory>
#include <string>

#include "tl/layer_plan.hpp"
#include "tl/precision.hpp"

namespace tl {

// The convolutions' arithmetic while training (tl::Precision, f32 or bf16; int8 is not
// trained). bf16: the convs read bf16 copies of their input, of the weights (rounded from the
// f32 master weights at each set_weights) and of the gradient of their output, and accumulate
// in f32 (output, bias, gradients all f32); ReLU, pooling and the optimizer stay f32. Layers
// built for inference always run f32.

// 3x3 convolution, stride 1, pad 1, bias, optional ReLU (a post-op; its backward is oneDNN's
// eltwise backward from the output). src/dst NHWC f32; kernel HWIO [3][3][cin][cout].
class ConvLayer {
 public:
  // `diff_src` = false skips backward data (the first layer, whose input is a constant).
  // `precision` applies to training layers (Pass::training) only.
  ConvLayer(int batch, int h, int w, int cin, int cout, bool relu, Pass pass, Scratchpad& scratch,
            bool diff_src = true, Precision precision = Precision::f32);
  ~ConvLayer();
  ConvLayer(ConvLayer&&) noexcept;
  ConvLayer& operator=(ConvLayer&&) noexcept;

  // Reorders the kernel [3, 3, cin, cout] (HWIO) into oneDNN's layouts; bias [cout] is read
  // at each run from the pointer given here (it must stay valid).
  void set_weights(const float* kernel, const float* bias);
  // {N, cin, H, W} -> {N, cout, H, W} (NHWC)
  void forward(const float* src, float* dst);
  // From the forward's src and dst and d loss / d dst: diff_src {N, cin, H, W} (skipped when
  // null), diff_kernel HWIO and diff_bias [cout] (overwritten). diff_dst is not modified.
  void backward(const float* src, const float* dst, const float* diff_dst, float* diff_src,
                float* diff_kernel, float* diff_bias);
  std::string describe() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tl
