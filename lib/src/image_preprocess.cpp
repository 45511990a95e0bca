// Keras preprocess_input modes on an RGB u8 image, bit for bit as Keras computes them on a
// float32 array: every step is one float32 operation with the constant rounded to float32,
// in Keras's order (see shared/reference/keras-vgg16.md):
//   caffe    x[..., ::-1] - [103.939, 116.779, 123.68]            (BGR out)
//   torch    ((x / 255) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
//   tf       (x / 127.5) - 1
//   rescale  x * float32(1/255): ImageDataGenerator(rescale=1./255) and Rescaling(1./255)
//            multiply, which differs from x / 255 in the last bit for about half the values
//   none     x
// A u8 channel has 256 values, so each mode becomes three 256-entry tables built with those
// operations; the per-pixel loop only looks values up.
#include <array>
#include <cstdint>
#include <string>
#include <utility>

#include "tl/error.hpp"
#include "tl/image.hpp"

namespace tl {
namespace {

constexpr std::array<std::pair<std::string_view, Preprocess>, 5> kPreprocessNames = {{
    {"caffe", Preprocess::caffe},
    {"torch", Preprocess::torch},
    {"tf", Preprocess::tf},
    {"rescale", Preprocess::rescale},
    {"none", Preprocess::none},
}};

// For each destination channel: the RGB source channel and the value of every u8 sample.
struct ChannelTables {
  std::array<int, 3> src{0, 1, 2};
  std::array<std::array<float, 256>, 3> lut{};
};

ChannelTables make_tables(Preprocess mode) {
  static constexpr std::array<float, 3> kCaffeMeanBgr = {103.939f, 116.779f, 123.68f};
  static constexpr std::array<float, 3> kTorchMean = {0.485f, 0.456f, 0.406f};
  static constexpr std::array<float, 3> kTorchStd = {0.229f, 0.224f, 0.225f};
  ChannelTables t;
  if (mode == Preprocess::caffe) t.src = {2, 1, 0};
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      const float x = static_cast<float>(v);
      float y = x;
      switch (mode) {
        case Preprocess::caffe:
          y = x - kCaffeMeanBgr[c];
          break;
        case Preprocess::torch:
          y = x / 255.0f;
          y = y - kTorchMean[c];
          y = y / kTorchStd[c];
          break;
        case Preprocess::tf:
          y = x / 127.5f;
          y = y - 1.0f;
          break;
        case Preprocess::rescale:
          y = x * static_cast<float>(1.0 / 255.0);
          break;
        case Preprocess::none:
          break;
      }
      t.lut[c][v] = y;
    }
  }
  return t;
}

}  // namespace

Preprocess parse_preprocess(std::string_view s) {
  for (const auto& [name, mode] : kPreprocessNames) {
    if (s == name) return mode;
  }
  throw UsageError("unknown preprocessing mode '" + std::string(s) +
                   "' (accepted: caffe, torch, tf, rescale, none)");
}

std::string_view to_string(Preprocess p) {
  for (const auto& [name, mode] : kPreprocessNames) {
    if (p == mode) return name;
  }
  return "unknown";
}

void preprocess_image(const cv::Mat& rgb, Preprocess mode, float* dst) {
  if (rgb.empty() || rgb.type() != CV_8UC3 || rgb.dims != 2) {
    throw Error("preprocess_image: want a non-empty 8-bit 3-channel image");
  }
  if (dst == nullptr) throw Error("preprocess_image: null destination");
  const ChannelTables t = make_tables(mode);
  for (int y = 0; y < rgb.rows; ++y) {
    const auto* src = rgb.ptr<std::uint8_t>(y);
    for (int x = 0; x < rgb.cols; ++x, src += 3, dst += 3) {
      dst[0] = t.lut[0][src[t.src[0]]];
      dst[1] = t.lut[1][src[t.src[1]]];
      dst[2] = t.lut[2][src[t.src[2]]];
    }
  }
}

void load_image(const std::filesystem::path& file, const ImageOptions& opt, float* dst) {
  const cv::Mat rgb = decode_image(file);
  cv::Mat sized = rgb;
  const bool identity =
      rgb.rows == opt.height && rgb.cols == opt.width && opt.resize != ResizeMode::crop;
  if (!identity) {
    try {
      sized = resize_image(rgb, opt.height, opt.width, opt.resize);
    } catch (const Error& e) {
      throw Error("image '" + file.string() + "': " + e.what());
    }
  }
  preprocess_image(sized, opt.preprocess, dst);
}

}  // namespace tl
