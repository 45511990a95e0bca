// tlkit's own f32 Winograd convolution F(4x4, 3x3) for VGG16's 3x3, stride-1, pad-1 layers,
// for CPUs where oneDNN 2.6 has none (below AVX-512). Vgg16 runs it for --algo winograd where
// oneDNN has no Winograd, and for --algo winograd-tlkit; Block5 for its f32 forward.
//
//   tl::WinogradConv conv(weights.conv("block4_conv2"), {.n = 32, .h = 28, .w = 28, .c = 512});
//   conv.forward(src, n, dst);   // NHWC [n, 28, 28, 512] -> NHWC [n, 28, 28, 512], bias + ReLU
//
// How: each 6x6 input tile (4x4 outputs, tiles overlap by 2) is transformed (B^T d B), the
// 36 transformed positions are multiplied by the transformed kernels (G g G^T, once, in double)
// as 36 matrix products [tiles x C_in] x [C_in x C_out] on oneDNN's matmul, and each result is
// transformed back (A^T m A) with bias and ReLU fused. Tiles go in blocks small enough for the
// transformed data to stay in cache; the transforms run on OpenMP threads (as oneDNN's own
// primitives do) with AVX2+FMA or AVX-512 code chosen from the machine module's ISA.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "tl/vgg16_spec.hpp"
#include "tl/weights.hpp"

namespace tl {

// The transform code that runs for oneDNN's ISA `isa`: "avx512", "avx2", or "" below AVX2
// (where tlkit's Winograd is not offered: the machine module reports it as not native).
std::string_view winograd_code_for(std::string_view isa);

// The tile size: F(m x m, 3x3) computes m x m outputs per (m+2) x (m+2) input tile. F(4x4)
// is what tlkit runs: 1.25-1.6x F(2x2) on every VGG16 layer, F(2x2) 5x more accurate, both
// within the f32 bound (bench/RESULTS.md).
enum class WinogradTile { f2x2, f4x4 };

class WinogradConv {
 public:
  // `in`: the largest input [n, h, w, cin]; forward takes 1..n images of that size.
  // Error naming the layer when the weights' channels do not match `in`, or below AVX2.
  WinogradConv(const ConvWeights& w, Shape in, WinogradTile tile = WinogradTile::f4x4);
  ~WinogradConv();
  WinogradConv(WinogradConv&&) noexcept;
  WinogradConv& operator=(WinogradConv&&) noexcept;

  // The channel counts it takes: multiples of 16 (VGG16's convs past block1_conv1).
  static bool takes(int cin, int cout);

  // Other weights of the same layer (fine-tuning changes them at every step): kernel HWIO
  // [3][3][cin][cout] is transformed again, bias [cout] copied.
  void set_weights(const float* kernel, const float* bias);
  // src [n, h, w, cin] NHWC -> dst [n, h, w, cout] NHWC: conv 3x3 pad 1 + bias, then ReLU.
  void forward(const float* src, int n, float* dst);
  // Tiles per block and the transform code that runs ("avx2", "avx512").
  std::string describe() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tl
