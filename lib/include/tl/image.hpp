// Images in: decode with OpenCV, resize as Keras's load_img does (PIL nearest by default),
// preprocess as Keras's preprocess_input modes, into NHWC float32 rows for the network.
//
//   tl::ImageOptions opt{.height = 224, .width = 224};           // Keras defaults
//   std::vector<float> row(224 * 224 * 3);
//   tl::load_image("cat.jpg", opt, row.data());                  // throws tl::Error on a bad file
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <opencv2/core.hpp>

namespace tl {

// Keras preprocess_input modes (see shared/reference/keras-vgg16.md).
enum class Preprocess {
  caffe,    // RGB->BGR, minus [103.939, 116.779, 123.68] (B, G, R); VGG16's ImageNet weights
  torch,    // /255, minus [0.485, 0.456, 0.406], divided by [0.229, 0.224, 0.225] (RGB)
  tf,       // /127.5 - 1
  rescale,  // /255
  none,     // raw 0..255 RGB
};

enum class ResizeMode {
  nearest,   // Keras load_img default: exactly the source pixel PIL's NEAREST picks
  bilinear,  // cv::INTER_LINEAR
  area,      // cv::INTER_AREA
  crop,      // short side to size/0.875 (bilinear), then the centre size (torchvision preset)
};

Preprocess parse_preprocess(std::string_view s);  // UsageError naming the accepted values
ResizeMode parse_resize(std::string_view s);      // UsageError naming the accepted values
std::string_view to_string(Preprocess p);
std::string_view to_string(ResizeMode r);

struct ImageOptions {
  int height = 224;
  int width = 224;
  ResizeMode resize = ResizeMode::nearest;
  Preprocess preprocess = Preprocess::caffe;
};

// Image file extensions tl-extract reads (lower case, with the dot): .jpg .jpeg .png .bmp
// .ppm .pgm .tif .tiff .webp. `has_image_extension` compares in any case.
bool has_image_extension(const std::filesystem::path& p);

// Images whose header claims more pixels than this are refused before anything is allocated
// (decompression bombs): PIL's DecompressionBombError threshold (2 x Image.MAX_IMAGE_PIXELS),
// so tlkit refuses what Keras's load_img refuses. The environment variable
// TL_MAX_IMAGE_PIXELS, read once, replaces it. Checked for PNG, JPEG, BMP, WebP, PNM and TIFF
// headers; other formats are bounded by OpenCV's own limit (OPENCV_IO_MAX_IMAGE_PIXELS, 2^30).
inline constexpr std::uint64_t kMaxImagePixels = 178'956'970;

// Decode to 8-bit RGB (CV_8UC3, R first). Grayscale and alpha become 3-channel RGB (alpha is
// dropped, as PIL's convert('RGB') does); 16-bit samples are scaled to 8 bits.
// Throws Error naming the file and the reason (unreadable, empty, not an image, truncated).
cv::Mat decode_image(const std::filesystem::path& file);
cv::Mat decode_image(std::span<const std::uint8_t> bytes, std::string_view name);

// Source index for each of `out` destination pixels along one axis, as Pillow's NEAREST
// resize picks it: walk in double precision from scale/2 by scale = in/out, truncate.
std::vector<int> pil_nearest_indices(int in, int out);

// Resize an RGB u8 image to height x width with the mode (a copy even when sizes match).
cv::Mat resize_image(const cv::Mat& rgb, int height, int width, ResizeMode mode);

// Preprocess an RGB u8 image of exactly height x width into dst: [h][w][3] float32 in the
// channel order of the mode (BGR for caffe, RGB otherwise).
void preprocess_image(const cv::Mat& rgb, Preprocess mode, float* dst);

// decode_image + resize_image + preprocess_image; dst holds height*width*3 floats.
void load_image(const std::filesystem::path& file, const ImageOptions& opt, float* dst);

}  // namespace tl
