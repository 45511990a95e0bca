// Resizing an RGB u8 image to the network's input size.
//
//   nearest  Pillow's NEAREST exactly (Keras load_img's default). Pillow resizes with
//            ImagingScaleAffine: per axis, start at scale/2 with scale = in/out in double and
//            add scale once per output pixel, truncating to the source index. The repeated
//            addition matters: (i + 0.5) * scale differs for some sizes (640 -> 150), and
//            OpenCV's INTER_NEAREST / INTER_NEAREST_EXACT differ too (640 -> 150, 4032 -> 224).
//   bilinear cv::resize INTER_LINEAR.
//   area     cv::resize INTER_AREA.
//   crop     torchvision's ImageNet preset generalised to any target h x w: scale the image
//            (INTER_LINEAR, aspect kept) so that it covers round(h/0.875) x round(w/0.875),
//            the binding side exactly and the other truncated as torchvision does, then take
//            the centre h x w, offsets rounded half to even like Python's round(). For 224x224
//            this is Resize(256) + CenterCrop(224). torchvision antialiases when shrinking,
//            INTER_LINEAR does not, so pixels differ from torchvision's, sizes and offsets not.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <opencv2/imgproc.hpp>

#include "tl/error.hpp"
#include "tl/image.hpp"

namespace tl {
namespace {

constexpr std::array<std::pair<std::string_view, ResizeMode>, 4> kResizeNames = {{
    {"nearest", ResizeMode::nearest},
    {"bilinear", ResizeMode::bilinear},
    {"area", ResizeMode::area},
    {"crop", ResizeMode::crop},
}};

// Largest intermediate image crop will allocate (3 bytes a pixel): an extreme aspect ratio
// would otherwise ask for gigabytes.
constexpr std::int64_t kMaxCropPixels = std::int64_t{1} << 28;

cv::Mat resize_nearest(const cv::Mat& rgb, int height, int width) {
  const std::vector<int> ys = pil_nearest_indices(rgb.rows, height);
  const std::vector<int> xs = pil_nearest_indices(rgb.cols, width);
  cv::Mat dst(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y) {
    const auto* src = rgb.ptr<cv::Vec3b>(ys[y]);
    auto* out = dst.ptr<cv::Vec3b>(y);
    for (int x = 0; x < width; ++x) out[x] = src[xs[x]];
  }
  return dst;
}

cv::Mat resize_cv(const cv::Mat& rgb, int height, int width, int interpolation) {
  if (rgb.rows == height && rgb.cols == width) return rgb.clone();
  cv::Mat dst;
  cv::resize(rgb, dst, cv::Size(width, height), 0, 0, interpolation);
  return dst;
}

cv::Mat resize_crop(const cv::Mat& rgb, int height, int width) {
  const auto cover_h = static_cast<std::int64_t>(std::lround(height / 0.875));
  const auto cover_w = static_cast<std::int64_t>(std::lround(width / 0.875));
  const std::int64_t in_h = rgb.rows;
  const std::int64_t in_w = rgb.cols;
  std::int64_t new_h = 0;
  std::int64_t new_w = 0;
  if (cover_h * in_w >= cover_w * in_h) {  // height binds: cover_h / in_h >= cover_w / in_w
    new_h = cover_h;
    new_w = cover_h * in_w / in_h;  // >= cover_w
  } else {
    new_w = cover_w;
    new_h = cover_w * in_h / in_w;  // >= cover_h
  }
  if (new_h * new_w > kMaxCropPixels) {
    throw Error("resize_image: crop of a " + std::to_string(in_h) + "x" + std::to_string(in_w) +
                " image needs a " + std::to_string(new_h) + "x" + std::to_string(new_w) +
                " intermediate (aspect ratio too extreme)");
  }
  const cv::Mat scaled =
      resize_cv(rgb, static_cast<int>(new_h), static_cast<int>(new_w), cv::INTER_LINEAR);
  const int top = static_cast<int>(std::nearbyint(static_cast<double>(new_h - height) / 2.0));
  const int left = static_cast<int>(std::nearbyint(static_cast<double>(new_w - width) / 2.0));
  return scaled(cv::Rect(left, top, width, height)).clone();
}

}  // namespace

ResizeMode parse_resize(std::string_view s) {
  for (const auto& [name, mode] : kResizeNames) {
    if (s == name) return mode;
  }
  throw UsageError("unknown resize mode '" + std::string(s) +
                   "' (accepted: nearest, bilinear, area, crop)");
}

std::string_view to_string(ResizeMode r) {
  for (const auto& [name, mode] : kResizeNames) {
    if (r == mode) return name;
  }
  return "unknown";
}

std::vector<int> pil_nearest_indices(int in, int out) {
  if (in < 1 || out < 1) {
    throw Error("pil_nearest_indices: sizes must be positive (in " + std::to_string(in) + ", out " +
                std::to_string(out) + ")");
  }
  std::vector<int> idx(static_cast<std::size_t>(out));
  const double scale = static_cast<double>(in) / out;
  double pos = scale * 0.5;
  for (int& i : idx) {
    i = std::min(static_cast<int>(pos), in - 1);  // pos > 0, so the cast truncates
    pos += scale;
  }
  return idx;
}

cv::Mat resize_image(const cv::Mat& rgb, int height, int width, ResizeMode mode) {
  if (rgb.empty() || rgb.type() != CV_8UC3 || rgb.dims != 2) {
    throw Error("resize_image: want a non-empty 8-bit 3-channel image");
  }
  if (height < 1 || width < 1) {
    throw Error("resize_image: target size " + std::to_string(height) + "x" +
                std::to_string(width) + " must be positive");
  }
  try {
    switch (mode) {
      case ResizeMode::nearest:
        return resize_nearest(rgb, height, width);
      case ResizeMode::bilinear:
        return resize_cv(rgb, height, width, cv::INTER_LINEAR);
      case ResizeMode::area:
        return resize_cv(rgb, height, width, cv::INTER_AREA);
      case ResizeMode::crop:
        return resize_crop(rgb, height, width);
    }
  } catch (const cv::Exception& e) {
    throw Error("resize_image: OpenCV failed (" + e.msg + ")");
  }
  throw Error("resize_image: unknown resize mode");
}

}  // namespace tl
