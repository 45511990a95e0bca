// Image decoding: file bytes -> 8-bit RGB (CV_8UC3, R first), as PIL's open(...).convert('RGB')
// hands it to Keras, with every failure reported as a tl::Error naming the file.
//
// Decoding uses cv::imdecode with IMREAD_UNCHANGED, so, like Keras's load_img, the EXIF
// orientation is not applied. Conversion to RGB:
//   1 channel (gray)        -> R = G = B = gray
//   2 channels (gray+alpha) -> gray, alpha dropped
//   3 channels (BGR)        -> RGB
//   4 channels (BGRA)       -> RGB, alpha dropped without compositing (PIL's convert('RGB'))
//   16-bit samples          -> the high byte (v >> 8). This is what Pillow does for 16-bit
//                              RGB(A) PNGs (raw mode "RGB;16B"). Pillow turns 16-bit gray into
//                              mode "I" and convert('RGB') then clips at 255; we keep v >> 8
//                              there too rather than saturate the image.
// A JPEG that ends before its EOI marker is reported as truncated: libjpeg (inside OpenCV)
// would only warn and fill the missing part with grey, whereas PIL raises.
#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "tl/error.hpp"
#include "tl/image.hpp"

namespace tl {
namespace {

[[noreturn]] void fail(std::string_view name, std::string_view why) {
  throw Error("image '" + std::string(name) + "': " + std::string(why));
}

// True when `b` is a JPEG whose data stops before the EOI marker. Walks the marker segments
// and the entropy-coded data of every scan; anything malformed other than a premature end is
// left to the decoder (false).
bool jpeg_truncated(std::span<const std::uint8_t> b) {
  const std::size_t n = b.size();
  if (n < 2 || b[0] != 0xFF || b[1] != 0xD8) return false;  // not a JPEG
  std::size_t i = 2;
  for (;;) {
    if (i >= n) return true;
    if (b[i] != 0xFF) return false;     // not at a marker: corrupt, not truncated
    while (i < n && b[i] == 0xFF) ++i;  // fill bytes
    if (i >= n) return true;
    const std::uint8_t marker = b[i++];
    if (marker == 0xD9) return false;                                    // EOI
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // no length field
    if (i + 2 > n) return true;
    const std::size_t len = (std::size_t{b[i]} << 8) | b[i + 1];
    if (len < 2) return false;
    if (i + len > n) return true;
    i += len;
    if (marker != 0xDA) continue;
    // SOS: entropy-coded data up to the next marker other than a stuffed 0xFF00 or an RSTn.
    for (;;) {
      const auto* ff = std::find(b.data() + i, b.data() + n, std::uint8_t{0xFF});
      i = static_cast<std::size_t>(ff - b.data());
      if (i + 1 >= n) return true;
      const std::uint8_t next = b[i + 1];
      if (next == 0x00 || (next >= 0xD0 && next <= 0xD7)) {
        i += 2;
      } else if (next == 0xFF) {
        i += 1;
      } else {
        break;  // a real marker starts at i
      }
    }
  }
}

// 16-bit samples to their high byte; other depths pass through.
cv::Mat to_8bit(const cv::Mat& m, std::string_view name) {
  if (m.depth() == CV_8U) return m;
  if (m.depth() != CV_16U) {
    fail(name, "unsupported sample type (only 8-bit and 16-bit images are read)");
  }
  cv::Mat out(m.rows, m.cols, CV_MAKETYPE(CV_8U, m.channels()));
  const int n = m.cols * m.channels();
  for (int y = 0; y < m.rows; ++y) {
    const auto* src = m.ptr<std::uint16_t>(y);
    auto* dst = out.ptr<std::uint8_t>(y);
    for (int x = 0; x < n; ++x) dst[x] = static_cast<std::uint8_t>(src[x] >> 8);
  }
  return out;
}

cv::Mat to_rgb(const cv::Mat& m8, std::string_view name) {
  cv::Mat rgb;
  switch (m8.channels()) {
    case 1:
      cv::cvtColor(m8, rgb, cv::COLOR_GRAY2RGB);
      break;
    case 2: {
      cv::Mat gray;
      cv::extractChannel(m8, gray, 0);
      cv::cvtColor(gray, rgb, cv::COLOR_GRAY2RGB);
      break;
    }
    case 3:
      cv::cvtColor(m8, rgb, cv::COLOR_BGR2RGB);
      break;
    case 4:
      cv::cvtColor(m8, rgb, cv::COLOR_BGRA2RGB);
      break;
    default:
      fail(name, "unsupported channel count " + std::to_string(m8.channels()));
  }
  return rgb;
}

}  // namespace

bool has_image_extension(const std::filesystem::path& p) {
  static constexpr std::array<std::string_view, 9> kExtensions = {
      ".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp"};
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return std::find(kExtensions.begin(), kExtensions.end(), ext) != kExtensions.end();
}

cv::Mat decode_image(std::span<const std::uint8_t> bytes, std::string_view name) {
  if (bytes.empty()) fail(name, "file is empty");
  if (jpeg_truncated(bytes)) fail(name, "truncated JPEG (data ends before the end marker)");
  cv::Mat decoded;
  try {
    // imdecode only reads the buffer; the Mat header needs a non-const pointer.
    const cv::Mat buf(1, static_cast<int>(bytes.size()), CV_8U,
                      const_cast<std::uint8_t*>(bytes.data()));
    decoded = cv::imdecode(buf, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    fail(name, "cannot decode (" + e.msg + ")");
  }
  if (decoded.empty() || decoded.dims != 2) {
    fail(name, "cannot decode (not an image or truncated)");
  }
  try {
    return to_rgb(to_8bit(decoded, name), name);
  } catch (const cv::Exception& e) {
    fail(name, "cannot convert to RGB (" + e.msg + ")");
  }
}

cv::Mat decode_image(const std::filesystem::path& file) {
  const std::string name = file.string();
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) fail(name, "is a directory");
  errno = 0;
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    const int err = errno;
    fail(name, err != 0 ? "cannot open (" + std::generic_category().message(err) + ")"
                        : std::string("cannot open"));
  }
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  in.seekg(0, std::ios::beg);
  if (size < 0 || !in) fail(name, "cannot read (size unknown)");
  if (size > static_cast<std::streamoff>(INT32_MAX)) fail(name, "file too large (over 2 GiB)");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size)) {
    fail(name, "cannot read (I/O error or file changed while reading)");
  }
  return decode_image(bytes, name);
}

}  // namespace tl
