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
// CMYK JPEGs come out as RGB (OpenCV's conversion is within 1 of Pillow's); animated PNGs give
// their first frame; GIF is refused (OpenCV 4.6 cannot decode it) with a reason saying so.
// A JPEG that ends before its EOI marker is reported as truncated: libjpeg (inside OpenCV)
// would only warn and fill the missing part with grey, whereas PIL raises.
#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>
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

// --- decompression bombs: the size a header claims, checked before the decoder allocates ---

std::uint32_t be16(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 8) | p[1];
}
std::uint32_t be32(const std::uint8_t* p) {
  return (be16(p) << 16) | be16(p + 2);
}
std::uint32_t le16(const std::uint8_t* p) {
  return (std::uint32_t{p[1]} << 8) | p[0];
}
std::uint32_t le32(const std::uint8_t* p) {
  return (le16(p + 2) << 16) | le16(p);
}

struct Claimed {
  std::uint64_t width = 0, height = 0;
};

// PNG IHDR, JPEG SOFn, BMP, WebP (VP8X, VP8, VP8L), PNM (P1..P6) and TIFF's first IFD; nullopt
// for other formats and for headers too damaged to say (the decoder refuses those).
std::optional<Claimed> claimed_size(std::span<const std::uint8_t> b) {
  const std::size_t n = b.size();
  const std::uint8_t* p = b.data();
  if (n >= 24 && std::memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0 && std::memcmp(p + 12, "IHDR", 4) == 0)
    return Claimed{be32(p + 16), be32(p + 20)};
  if (n >= 4 && p[0] == 0xFF && p[1] == 0xD8) {
    for (std::size_t i = 2; i + 4 <= n;) {
      if (p[i] != 0xFF) return std::nullopt;
      const std::uint8_t m = p[i + 1];
      if (m == 0xFF) {
        ++i;
        continue;
      }
      if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {
        i += 2;
        continue;
      }
      if (m == 0xD9 || m == 0xDA) return std::nullopt;  // EOI or SOS before any SOF
      const std::size_t len = be16(p + i + 2);
      const bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
      if (sof && i + 9 <= n) return Claimed{be16(p + i + 7), be16(p + i + 5)};
      if (len < 2) return std::nullopt;
      i += 2 + len;
    }
    return std::nullopt;
  }
  if (n >= 26 && p[0] == 'B' && p[1] == 'M') {
    if (le32(p + 14) == 12) return Claimed{le16(p + 18), le16(p + 20)};  // OS/2 core header
    const auto h = static_cast<std::int32_t>(le32(p + 22));
    return Claimed{le32(p + 18), static_cast<std::uint64_t>(h < 0 ? -std::int64_t{h} : h)};
  }
  if (n >= 32 && std::memcmp(p, "RIFF", 4) == 0 && std::memcmp(p + 8, "WEBP", 4) == 0) {
    if (std::memcmp(p + 12, "VP8X", 4) == 0)
      return Claimed{1 + (le32(p + 24) & 0xFFFFFF), 1 + (le32(p + 27) & 0xFFFFFF)};
    if (std::memcmp(p + 12, "VP8 ", 4) == 0)
      return Claimed{le16(p + 26) & 0x3FFF, le16(p + 28) & 0x3FFF};
    if (std::memcmp(p + 12, "VP8L", 4) == 0) {
      const std::uint32_t bits = le32(p + 21);
      return Claimed{1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)};
    }
    return std::nullopt;
  }
  if (n >= 3 && p[0] == 'P' && p[1] >= '1' && p[1] <= '6') {
    std::uint64_t v[2] = {0, 0};
    std::size_t i = 2;
    for (auto& x : v) {
      for (;;) {  // whitespace and # comments
        while (i < n && std::isspace(p[i])) ++i;
        if (i < n && p[i] == '#') {
          while (i < n && p[i] != '\n' && p[i] != '\r') ++i;
          continue;
        }
        break;
      }
      if (i >= n || !std::isdigit(p[i])) return std::nullopt;
      for (; i < n && std::isdigit(p[i]) && x < (std::uint64_t{1} << 40); ++i)
        x = x * 10 + (p[i] - '0');
    }
    return Claimed{v[0], v[1]};
  }
  if (n >= 8 && (std::memcmp(p, "II*\0", 4) == 0 || std::memcmp(p, "MM\0*", 4) == 0)) {
    const bool le = p[0] == 'I';
    auto u16 = [&](std::size_t at) { return le ? le16(p + at) : be16(p + at); };
    auto u32 = [&](std::size_t at) { return le ? le32(p + at) : be32(p + at); };
    const std::size_t ifd = u32(4);
    if (ifd > n || n - ifd < 2) return std::nullopt;
    const std::size_t count = u16(ifd);
    Claimed c;
    for (std::size_t e = 0; e < count && ifd + 2 + 12 * (e + 1) <= n; ++e) {
      const std::size_t at = ifd + 2 + 12 * e;
      const std::uint32_t tag = u16(at), type = u16(at + 2);
      const std::uint64_t value = type == 3 ? u16(at + 8) : u32(at + 8);  // SHORT or LONG
      if (tag == 256) c.width = value;
      if (tag == 257) c.height = value;
    }
    if (c.width && c.height) return c;
  }
  return std::nullopt;
}

std::uint64_t max_image_pixels() {
  static const std::uint64_t limit = [] {
    if (const char* v = std::getenv("TL_MAX_IMAGE_PIXELS"); v && *v) {
      std::uint64_t x = 0;
      const auto [end, ec] = std::from_chars(v, v + std::strlen(v), x);
      if (ec == std::errc() && *end == '\0' && x > 0) return x;
    }
    return kMaxImagePixels;
  }();
  return limit;
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
  if (const auto c = claimed_size(bytes);
      c && c->height > 0 && c->width > max_image_pixels() / c->height)
    fail(name, "header claims " + std::to_string(c->width) + "x" + std::to_string(c->height) +
                   " pixels, over the limit of " + std::to_string(max_image_pixels()) +
                   " pixels (a decompression bomb?); set TL_MAX_IMAGE_PIXELS to raise it");
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
    // OpenCV 4.6 has no GIF decoder (Pillow, and OpenCV 4.11, read a GIF's first frame).
    if (bytes.size() >= 6 && (std::memcmp(bytes.data(), "GIF87a", 6) == 0 ||
                              std::memcmp(bytes.data(), "GIF89a", 6) == 0))
      fail(name, "GIF is not supported by this OpenCV (no GIF decoder); convert it to PNG");
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
  if (std::filesystem::is_symlink(file, ec) && !std::filesystem::exists(file, ec))
    fail(name, fmt::format("dangling symbolic link (its target '{}' does not exist)",
                           std::filesystem::read_symlink(file, ec).string()));
  if (const auto st = std::filesystem::status(file, ec);
      !ec && st.type() != std::filesystem::file_type::regular &&
      st.type() != std::filesystem::file_type::not_found)
    fail(name, "not a regular file (a pipe, socket or device is never opened)");
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
