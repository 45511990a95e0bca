// libFuzzer target: the image-loading wrapper, as load_image runs it on a file's bytes:
// decode_image (OpenCV imdecode + our truncation check, 16-bit and channel conversions),
// resize_image and preprocess_image. The first three bytes pick the target height and width
// (1..64) and the resize and preprocessing modes; the rest is the image file.
#include <vector>

#include "fuzz_util.hpp"
#include "tl/error.hpp"
#include "tl/image.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  const int height = 1 + data[0] % 64, width = 1 + data[1] % 64;
  const auto resize = static_cast<tl::ResizeMode>(data[2] % 4);
  const auto preprocess = static_cast<tl::Preprocess>((data[2] >> 2) % 5);
  try {
    const cv::Mat rgb = tl::decode_image(std::span(data + 3, size - 3), "fuzz");
    const cv::Mat sized = tl::resize_image(rgb, height, width, resize);
    if (sized.rows != height || sized.cols != width || sized.type() != CV_8UC3) __builtin_trap();
    std::vector<float> row(static_cast<std::size_t>(height) * width * 3);
    tl::preprocess_image(sized, preprocess, row.data());
  } catch (const tl::Error&) {
  }
  return 0;
}
