// The VGG16 layer table and shape inference (no oneDNN here: shapes are cheap to check).
#include "tl/vgg16_spec.hpp"

#include <fmt/format.h>
#include <array>

#include "tl/error.hpp"

namespace tl {
namespace {

using enum LayerKind;
// clang-format off
constexpr std::array<LayerSpec, 18> kLayers = {{
    {"block1_conv1", conv,   3,  64}, {"block1_conv2", conv,  64,  64}, {"block1_pool", pool,  64,  64},
    {"block2_conv1", conv,  64, 128}, {"block2_conv2", conv, 128, 128}, {"block2_pool", pool, 128, 128},
    {"block3_conv1", conv, 128, 256}, {"block3_conv2", conv, 256, 256}, {"block3_conv3", conv, 256, 256},
    {"block3_pool",  pool, 256, 256},
    {"block4_conv1", conv, 256, 512}, {"block4_conv2", conv, 512, 512}, {"block4_conv3", conv, 512, 512},
    {"block4_pool",  pool, 512, 512},
    {"block5_conv1", conv, 512, 512}, {"block5_conv2", conv, 512, 512}, {"block5_conv3", conv, 512, 512},
    {"block5_pool",  pool, 512, 512},
}};
// clang-format on

int channels_after(int index) {
  return index < 0 ? 3 : kLayers[index].cout;
}

}  // namespace

std::span<const LayerSpec> vgg16_layers() {
  return kLayers;
}

std::string layer_names_list() {
  std::string s(kInputLayer);
  for (const auto& l : kLayers) s += ", " + std::string(l.name);
  return s;
}

int layer_index(std::string_view name) {
  if (name == kInputLayer) return -1;
  for (size_t i = 0; i < kLayers.size(); ++i)
    if (kLayers[i].name == name) return static_cast<int>(i);
  throw UsageError(
      fmt::format("unknown VGG16 layer '{}' (accepted: {})", name, layer_names_list()));
}

std::vector<Shape> infer_shapes(Shape in, std::string_view from, std::string_view to) {
  const int first = layer_index(from) + 1, last = layer_index(to);
  if (last < first)
    throw UsageError(fmt::format("layer '{}' does not come after '{}' in VGG16", to, from));
  if (in.n < 1) throw UsageError(fmt::format("batch size {} (must be at least 1)", in.n));
  if (in.c != channels_after(first - 1))
    throw UsageError(fmt::format("input of {} has {} channels, {} expected", kLayers[first].name,
                                 in.c, channels_after(first - 1)));
  if (first == 0 && (in.h < kMinInputSide || in.w < kMinInputSide))
    throw UsageError(fmt::format("input size {}x{} is below VGG16's minimum of {}x{}", in.h, in.w,
                                 kMinInputSide, kMinInputSide));
  std::vector<Shape> shapes;
  Shape s = in;
  for (int i = first; i <= last; ++i) {
    const auto& l = kLayers[i];
    if (l.kind == pool) {
      s.h /= 2;  // floor: an odd side loses its last row/column, as in Keras
      s.w /= 2;
    }
    if (s.h < 1 || s.w < 1)
      throw UsageError(
          fmt::format("input {}x{} at '{}' is too small to reach '{}'", in.h, in.w, from, l.name));
    s.c = l.cout;
    shapes.push_back(s);
  }
  return shapes;
}

double macs_per_image(int h, int w, std::string_view from, std::string_view to) {
  const int first = layer_index(from) + 1;
  const auto shapes = infer_shapes({1, h, w, channels_after(first - 1)}, from, to);
  double macs = 0;
  for (size_t k = 0; k < shapes.size(); ++k) {
    const auto& l = kLayers[first + k];
    if (l.kind == conv) macs += 9.0 * l.cin * l.cout * shapes[k].h * shapes[k].w;
  }
  return macs;
}

}  // namespace tl
