// The VGG16 convolutional base as Keras defines it (VGG16(include_top=False)): one table of
// layer specs, layer names, and shape inference separate from compute.
//
//   auto shapes = tl::infer_shapes({.n = 32, .h = 224, .w = 224, .c = 3}, "input", "block5_pool");
//   // shapes.back() == {32, 7, 7, 512}
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tl {

enum class LayerKind { conv, pool };

// One layer of the base. Convs are 3x3, stride 1, pad 1, bias, ReLU; pools max 2x2 stride 2.
struct LayerSpec {
  std::string_view name;  // Keras's name: "block1_conv1" ... "block5_pool"
  LayerKind kind;
  int cin;   // input channels
  int cout;  // output channels (== cin for pools)
};

// NHWC shape of an activation (Keras's order).
struct Shape {
  int n = 0, h = 0, w = 0, c = 0;
  long long elems() const { return 1LL * n * h * w * c; }
  // The same in double: never overflows, for size checks on hostile dimensions.
  double elems_double() const { return 1.0 * n * h * w * c; }
  long long per_image() const { return 1LL * h * w * c; }
  bool operator==(const Shape&) const = default;
};

// The 18 layers in order: 13 convs and 5 pools.
std::span<const LayerSpec> vgg16_layers();

// The pseudo-layer before the first conv: the preprocessed RGB/BGR image.
inline constexpr std::string_view kInputLayer = "input";

// Position of a layer in vgg16_layers(), or -1 for "input". Throws UsageError naming the
// layer and the accepted names when unknown.
int layer_index(std::string_view name);

// All accepted layer names, comma separated (for help and error messages).
std::string layer_names_list();

// Smallest input side that VGG16 accepts (Keras: 32).
inline constexpr int kMinInputSide = 32;

// Shape of every layer's output from the layer after `from` up to and including `to`,
// given the shape `in` of `from`'s output. Throws UsageError when `to` is not after
// `from`, when the channel count of `in` does not match, or when the image is smaller
// than 32x32 (for from == "input").
std::vector<Shape> infer_shapes(Shape in, std::string_view from, std::string_view to);

// Multiply-accumulates per image of the convs in (from, to], for a `from` output of h x w.
double macs_per_image(int h, int w, std::string_view from, std::string_view to);

}  // namespace tl
