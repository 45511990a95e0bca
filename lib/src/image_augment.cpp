// Keras ImageDataGenerator augmentation: a counter-based draw per copy, Keras's transform
// matrix, one cv::warpAffine, then channel shift, flips and brightness (apply_transform order),
// at the source resolution or at the network size (--augment-at).
#include "tl/image_augment.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <opencv2/imgproc.hpp>

#include "tl/error.hpp"

namespace tl {
namespace {

constexpr std::array<std::pair<std::string_view, FillMode>, 4> kFillNames = {{
    {"nearest", FillMode::nearest},
    {"constant", FillMode::constant},
    {"reflect", FillMode::reflect},
    {"wrap", FillMode::wrap},
}};

constexpr std::array<std::pair<std::string_view, AugmentStage>, 2> kStageNames = {{
    {"source", AugmentStage::source},
    {"network", AugmentStage::network},
}};

constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ull;

// SplitMix64's output function.
std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::uint64_t fnv1a64(std::string_view bytes) {
  std::uint64_t h = 0xCBF29CE484222325ull;
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001B3ull;
  }
  return h;
}

int border_of(FillMode f) {
  switch (f) {
    case FillMode::nearest:
      return cv::BORDER_REPLICATE;
    case FillMode::constant:
      return cv::BORDER_CONSTANT;
    case FillMode::reflect:
      return cv::BORDER_REFLECT;  // scipy 'reflect' repeats the edge: dcba|abcd (not _101)
    case FillMode::wrap:
      return cv::BORDER_WRAP;
  }
  throw Error("unknown fill mode");
}

bool finite_in(double v, double lo, double hi) {
  return std::isfinite(v) && v >= lo && v <= hi;
}

std::string on_off(bool b) {
  return b ? "on" : "off";
}

}  // namespace

FillMode parse_fill_mode(std::string_view s) {
  for (const auto& [name, mode] : kFillNames)
    if (s == name) return mode;
  throw UsageError(
      fmt::format("unknown fill mode '{}' (accepted: nearest, constant, reflect, wrap)", s));
}

std::string_view to_string(FillMode f) {
  for (const auto& [name, mode] : kFillNames)
    if (f == mode) return name;
  return "unknown";
}

AugmentStage parse_augment_stage(std::string_view s) {
  for (const auto& [name, stage] : kStageNames)
    if (s == name) return stage;
  throw UsageError(fmt::format("unknown stage '{}' (accepted: source, network)", s));
}

std::string_view to_string(AugmentStage s) {
  for (const auto& [name, stage] : kStageNames)
    if (s == stage) return name;
  return "unknown";
}

bool AugmentOptions::any_transform() const {
  return rotation > 0 || width_shift > 0 || height_shift > 0 || shear > 0 || zoom_lo != 1 ||
         zoom_hi != 1 || horizontal_flip || vertical_flip ||
         (brightness() && !(brightness_lo == 1 && brightness_hi == 1)) || channel_shift > 0;
}

void AugmentOptions::validate() const {
  if (copies < 0 || copies > 1000)
    throw UsageError(fmt::format("--augment: {} (augmented copies per image, 0..1000)", copies));
  if (seed >> 63) throw UsageError(fmt::format("--seed: {} (must be below 2^63)", seed));
  if (!finite_in(rotation, 0, 360))
    throw UsageError(fmt::format("--rotation: {} (degrees, in [0, 360])", rotation));
  if (!finite_in(width_shift, 0, 1) || width_shift == 1)
    throw UsageError(
        fmt::format("--width-shift: {} (a fraction of the width, in [0, 1))", width_shift));
  if (!finite_in(height_shift, 0, 1) || height_shift == 1)
    throw UsageError(
        fmt::format("--height-shift: {} (a fraction of the height, in [0, 1))", height_shift));
  if (!finite_in(shear, 0, 90) || shear == 90)
    throw UsageError(fmt::format("--shear: {} (degrees, in [0, 90))", shear));
  if (!(std::isfinite(zoom_lo) && std::isfinite(zoom_hi) && zoom_lo > 0 && zoom_lo <= zoom_hi &&
        zoom_hi <= 100))
    throw UsageError(fmt::format(
        "--zoom: [{}, {}] (F in [0, 1) gives [1-F, 1+F]; or LO,HI with 0 < LO <= HI <= 100)",
        zoom_lo, zoom_hi));
  if (!(std::isfinite(brightness_lo) && std::isfinite(brightness_hi) && brightness_lo >= 0 &&
        brightness_lo <= brightness_hi && brightness_hi <= 100 &&
        (brightness_hi > 0 || brightness_lo == 0)))
    throw UsageError(fmt::format("--brightness: {},{} (LO,HI with 0 <= LO <= HI, HI > 0)",
                                 brightness_lo, brightness_hi));
  if (!finite_in(channel_shift, 0, 255))
    throw UsageError(fmt::format("--channel-shift: {} (in [0, 255])", channel_shift));
  if (!finite_in(fill_value, 0, 255))
    throw UsageError(fmt::format("--fill-value: {} (in [0, 255])", fill_value));
  if (fill_value != 0 && fill != FillMode::constant)
    throw UsageError(fmt::format("--fill-value: goes with --fill constant (this run has --fill {})",
                                 to_string(fill)));
  if (copies == 0) {
    const std::pair<bool, const char*> given[] = {
        {rotation > 0, "--rotation"},
        {width_shift > 0, "--width-shift"},
        {height_shift > 0, "--height-shift"},
        {shear > 0, "--shear"},
        {zoom_lo != 1 || zoom_hi != 1, "--zoom"},
        {horizontal_flip, "--horizontal-flip"},
        {vertical_flip, "--vertical-flip"},
        {brightness(), "--brightness"},
        {channel_shift > 0, "--channel-shift"},
        {fill != FillMode::nearest, "--fill"},
        {fill_value != 0, "--fill-value"},
        {at != AugmentStage::source, "--augment-at"},
    };
    for (const auto& [on, name] : given)
      if (on)
        throw UsageError(fmt::format(
            "{}: needs --augment K (the number of augmented copies written per image)", name));
    return;
  }
  if (!any_transform())
    throw UsageError(fmt::format(
        "--augment {}: no transform given (--rotation, --width-shift, --height-shift, --shear, "
        "--zoom, --horizontal-flip, --vertical-flip, --brightness, --channel-shift): every copy "
        "would equal its original",
        copies));
}

std::string AugmentOptions::difference(const AugmentOptions& o) const {
  auto diff = [](const char* what, const auto& mine, const auto& theirs) -> std::string {
    if (mine == theirs) return "";
    return fmt::format("{}: the file has {}, this run asks for {}", what, mine, theirs);
  };
  if (copies == 0 && o.copies == 0) return "";
  for (const std::string& d : {
           diff("--augment", copies, o.copies),
           diff("--seed", seed, o.seed),
           diff("--rotation", rotation, o.rotation),
           diff("--width-shift", width_shift, o.width_shift),
           diff("--height-shift", height_shift, o.height_shift),
           diff("--shear", shear, o.shear),
           diff("--zoom", fmt::format("{},{}", zoom_lo, zoom_hi),
                fmt::format("{},{}", o.zoom_lo, o.zoom_hi)),
           diff("--horizontal-flip", on_off(horizontal_flip), on_off(o.horizontal_flip)),
           diff("--vertical-flip", on_off(vertical_flip), on_off(o.vertical_flip)),
           diff("--brightness",
                brightness() ? fmt::format("{},{}", brightness_lo, brightness_hi) : "off",
                o.brightness() ? fmt::format("{},{}", o.brightness_lo, o.brightness_hi) : "off"),
           diff("--channel-shift", channel_shift, o.channel_shift),
           diff("--fill", to_string(fill), to_string(o.fill)),
           diff("--fill-value", fill_value, o.fill_value),
           diff("--augment-at", to_string(at), to_string(o.at)),
       })
    if (!d.empty()) return d;
  return "";
}

std::string AugmentOptions::describe() const {
  if (copies == 0) return "no augmentation";
  std::vector<std::string> parts;
  if (rotation > 0) parts.push_back(fmt::format("rotation {}", rotation));
  if (width_shift > 0) parts.push_back(fmt::format("width shift {}", width_shift));
  if (height_shift > 0) parts.push_back(fmt::format("height shift {}", height_shift));
  if (shear > 0) parts.push_back(fmt::format("shear {}", shear));
  if (zoom_lo != 1 || zoom_hi != 1) parts.push_back(fmt::format("zoom {}..{}", zoom_lo, zoom_hi));
  if (horizontal_flip) parts.push_back("horizontal flip");
  if (vertical_flip) parts.push_back("vertical flip");
  if (brightness()) parts.push_back(fmt::format("brightness {}..{}", brightness_lo, brightness_hi));
  if (channel_shift > 0) parts.push_back(fmt::format("channel shift {}", channel_shift));
  parts.push_back(fill == FillMode::constant ? fmt::format("fill constant {}", fill_value)
                                             : fmt::format("fill {}", to_string(fill)));
  parts.push_back(at == AugmentStage::source ? "at source resolution" : "at network size");
  parts.push_back(fmt::format("seed {}", seed));
  return fmt::format("{} cop{} per image: {}", copies, copies == 1 ? "y" : "ies",
                     fmt::join(parts, ", "));
}

std::array<double, 10> augment_uniforms(std::uint64_t seed, std::string_view path, int copy) {
  const std::uint64_t state =
      mix64(mix64(mix64(seed) ^ fnv1a64(path)) ^ static_cast<std::uint64_t>(copy));
  std::array<double, 10> u{};
  for (std::size_t k = 0; k < u.size(); ++k)
    u[k] = static_cast<double>(mix64(state + (k + 1) * kGolden) >> 11) * 0x1.0p-53;
  return u;
}

AugmentParams draw_augment(const AugmentOptions& o, std::string_view path, int copy, int height,
                           int width) {
  const auto u = augment_uniforms(o.seed, path, copy);
  auto sym = [](double range, double v) { return -range + 2 * range * v; };  // U(-range, range)
  AugmentParams p;
  p.theta = sym(o.rotation, u[0]);
  p.tx = sym(o.height_shift, u[1]) * height;
  p.ty = sym(o.width_shift, u[2]) * width;
  p.shear = sym(o.shear, u[3]);
  p.zx = o.zoom_lo + (o.zoom_hi - o.zoom_lo) * u[4];
  p.zy = o.zoom_lo + (o.zoom_hi - o.zoom_lo) * u[5];
  p.flip_horizontal = o.horizontal_flip && u[6] < 0.5;
  p.flip_vertical = o.vertical_flip && u[7] < 0.5;
  p.channel_shift = sym(o.channel_shift, u[8]);
  p.brightness =
      o.brightness() ? o.brightness_lo + (o.brightness_hi - o.brightness_lo) * u[9] : 1.0;
  return p;
}

cv::Matx23d augment_matrix(const AugmentParams& p, int height, int width) {
  const double deg = std::numbers::pi / 180;
  const double t = p.theta * deg, s = p.shear * deg;
  const cv::Matx33d rotation(std::cos(t), -std::sin(t), 0, std::sin(t), std::cos(t), 0, 0, 0, 1);
  const cv::Matx33d shift(1, 0, p.tx, 0, 1, p.ty, 0, 0, 1);
  const cv::Matx33d shear(1, -std::sin(s), 0, 0, std::cos(s), 0, 0, 0, 1);
  const cv::Matx33d zoom(p.zx, 0, 0, 0, p.zy, 0, 0, 0, 1);
  const double cr = height / 2.0 - 0.5, cc = width / 2.0 - 0.5;
  const cv::Matx33d offset(1, 0, cr, 0, 1, cc, 0, 0, 1), reset(1, 0, -cr, 0, 1, -cc, 0, 0, 1);
  const cv::Matx33d m = offset * rotation * shift * shear * zoom * reset;
  return cv::Matx23d(m(0, 0), m(0, 1), m(0, 2), m(1, 0), m(1, 1), m(1, 2));
}

cv::Mat apply_augment(const cv::Mat& rgb, const AugmentParams& p, const AugmentOptions& o) {
  if (rgb.empty() || rgb.type() != CV_8UC3 || rgb.dims != 2)
    throw Error("apply_augment: want a non-empty 8-bit 3-channel image");
  // (row, col) -> OpenCV's (x, y) = (col, row): swap both the inputs and the outputs.
  const cv::Matx23d m = augment_matrix(p, rgb.rows, rgb.cols);
  const cv::Matx23d xy(m(1, 1), m(1, 0), m(1, 2), m(0, 1), m(0, 0), m(0, 2));
  cv::Mat out;
  try {
    if (xy == cv::Matx23d(1, 0, 0, 0, 1, 0))
      out = rgb.clone();
    else
      cv::warpAffine(rgb, out, xy, rgb.size(), cv::INTER_LINEAR | cv::WARP_INVERSE_MAP,
                     border_of(o.fill), cv::Scalar::all(std::round(o.fill_value)));
  } catch (const cv::Exception& e) {
    throw Error("apply_augment: OpenCV failed (" + e.msg + ")");
  }
  if (p.channel_shift != 0) {  // Keras: + intensity, clipped to the image's own min and max
    double lo = 0, hi = 0;
    cv::minMaxLoc(out.reshape(1), &lo, &hi);
    const std::size_t n = out.total() * 3;
    std::uint8_t* v = out.ptr<std::uint8_t>(0);
    for (std::size_t i = 0; i < n; ++i)
      v[i] = static_cast<std::uint8_t>(std::lround(std::clamp(v[i] + p.channel_shift, lo, hi)));
  }
  if (p.flip_horizontal) cv::flip(out, out, 1);  // columns reversed
  if (p.flip_vertical) cv::flip(out, out, 0);    // rows reversed
  if (o.brightness()) {  // PIL ImageEnhance.Brightness: blend with black, truncated, clipped
    const float b = static_cast<float>(p.brightness);
    const std::size_t n = out.total() * 3;
    std::uint8_t* v = out.ptr<std::uint8_t>(0);
    for (std::size_t i = 0; i < n; ++i) {
      const float x = b * static_cast<float>(v[i]);
      v[i] = x >= 255.0f ? std::uint8_t{255} : static_cast<std::uint8_t>(x);
    }
  }
  return out;
}

void load_augmented(const std::filesystem::path& file, std::string_view path,
                    const ImageOptions& opt, const AugmentOptions& a, int copies,
                    std::vector<cv::Mat>& out) {
  const cv::Mat rgb = decode_image(file);
  try {
    if (a.at == AugmentStage::source && copies > 0 &&
        std::max(rgb.rows, rgb.cols) >= std::numeric_limits<std::int16_t>::max())
      throw Error(fmt::format(
          "{}x{} is too large to augment at its own resolution (OpenCV's warp takes sides below "
          "{}); --augment-at network transforms it after the resize to the network size",
          rgb.rows, rgb.cols, std::numeric_limits<std::int16_t>::max()));
    const cv::Mat sized = resize_image(rgb, opt.height, opt.width, opt.resize);
    out.push_back(sized);
    for (int c = 1; c <= copies; ++c) {
      if (a.at == AugmentStage::network) {  // resize, then transform (flow_from_directory)
        out.push_back(apply_augment(sized, draw_augment(a, path, c, sized.rows, sized.cols), a));
      } else {  // transform at the decoded size, then resize as the original was
        const cv::Mat copy = apply_augment(rgb, draw_augment(a, path, c, rgb.rows, rgb.cols), a);
        out.push_back(resize_image(copy, opt.height, opt.width, opt.resize));
      }
    }
  } catch (const Error& e) {
    throw Error("image '" + file.string() + "': " + e.what());
  }
}

}  // namespace tl
