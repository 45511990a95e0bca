// Data augmentation as Keras's ImageDataGenerator does it (get_random_transform +
// apply_transform), drawn per copy from (seed, image path, copy index) so that every
// augmented row can be recomputed — in any order, on any thread, after a resume.
//
//   tl::AugmentOptions a;                     // --augment 4 --rotation 40 --horizontal-flip
//   a.copies = 4;
//   a.rotation = 40;
//   a.horizontal_flip = true;
//   a.validate();                             // UsageError naming the option
//   cv::Mat rgb = ...;                        // the decoded image (a.at = source), RGB u8
//   for (int c = 1; c <= a.copies; ++c) {
//     tl::AugmentParams p = tl::draw_augment(a, "cats/cat001.jpg", c, rgb.rows, rgb.cols);
//     cv::Mat copy = tl::apply_augment(rgb, p, a);   // same size, RGB u8; then resized
//   }
//
// The draw rule, the matrix and every difference from Keras are in docs/FORMAT.md
// ("Augmented rows"). In short: parameters in Keras's units, composed as Keras composes
// them (rotation · shift · shear · zoom, about the image centre, in (row, col) coordinates),
// one cv::warpAffine (bilinear) per copy, then channel shift, flips and brightness; all of it
// at the decoded image's own resolution before the resize to the network size (--augment-at
// source, the default), or on the resized image as flow_from_directory does (network).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <opencv2/core.hpp>

#include "tl/image.hpp"

namespace tl {

// Keras's fill_mode, as OpenCV border modes: nearest -> BORDER_REPLICATE (aaa|abcd|ddd),
// constant -> BORDER_CONSTANT (fill value), reflect -> BORDER_REFLECT (dcba|abcd|dcba, scipy's
// 'reflect'), wrap -> BORDER_WRAP (abcd|abcd|abcd, period = size).
enum class FillMode { nearest, constant, reflect, wrap };
FillMode parse_fill_mode(std::string_view s);  // UsageError naming the accepted values
std::string_view to_string(FillMode f);

// Where the copies are made (--augment-at, stored as the `augment_at` attribute): `source` =
// on the decoded image at its own resolution, then resized to the network size; `network` =
// on the image already resized to the network size (Keras flow_from_directory's order:
// load_img(target_size=...) resizes, then random_transform). A file without the attribute
// was made before the option existed, at `network`.
enum class AugmentStage { source, network };
AugmentStage parse_augment_stage(std::string_view s);  // UsageError naming the accepted values
std::string_view to_string(AugmentStage s);

// The draw rule's version, stored as the `augment_rule` attribute.
inline constexpr const char* kAugmentRule = "tlkit-augment-1";

// tl-extract's augmentation options (Keras ImageDataGenerator argument in brackets).
struct AugmentOptions {
  int copies = 0;                   // --augment K: augmented copies per image (0 = off)
  std::uint64_t seed = 0;           // --seed (< 2^63, stored as int64)
  double rotation = 0;              // --rotation DEG [rotation_range]: theta ~ U(-DEG, DEG)
  double width_shift = 0;           // --width-shift F [width_shift_range]: ty ~ U(-F, F) * width
  double height_shift = 0;          // --height-shift F [height_shift_range]: tx ~ U(-F, F) * height
  double shear = 0;                 // --shear DEG [shear_range]: shear ~ U(-DEG, DEG) degrees
  double zoom_lo = 1, zoom_hi = 1;  // --zoom F or LO,HI [zoom_range]: zx, zy ~ U(LO, HI)
  bool horizontal_flip = false;     // --horizontal-flip: columns reversed with probability 1/2
  bool vertical_flip = false;       // --vertical-flip: rows reversed with probability 1/2
  double brightness_lo = 0, brightness_hi = 0;  // --brightness LO,HI (0,0 = off)
  double channel_shift = 0;                // --channel-shift X [channel_shift_range]: s ~ U(-X, X)
  FillMode fill = FillMode::nearest;       // --fill [fill_mode]
  double fill_value = 0;                   // --fill-value [cval], 0..255, with --fill constant
  AugmentStage at = AugmentStage::source;  // --augment-at: the resolution the copies are made at

  bool enabled() const { return copies > 0; }
  bool brightness() const { return brightness_hi > 0; }
  // Whether any option changes a copy (a copy equal to its original is refused).
  bool any_transform() const;
  // UsageError naming the first bad option: ranges out of bounds, transforms without
  // --augment, --augment without a transform, --fill-value without --fill constant.
  void validate() const;
  // "" when `o` draws the same copies; else the first difference, naming the option:
  // "--rotation: the file has 40, this run asks for 30".
  std::string difference(const AugmentOptions& o) const;
  // One line for logs: "4 copies per image: rotation 40, horizontal flip, fill nearest, at
  // source resolution, seed 0".
  std::string describe() const;
};

// One copy's parameters, in Keras's get_random_transform units for an image of
// height x width (the image the copy is made from: see AugmentStage): degrees, pixels, factors.
struct AugmentParams {
  double theta = 0;  // rotation, degrees
  double tx = 0;     // shift along rows (height), pixels: Keras's tx
  double ty = 0;     // shift along columns (width), pixels: Keras's ty
  double shear = 0;  // degrees
  double zx = 1;     // zoom of rows (Keras's zx)
  double zy = 1;     // zoom of columns (Keras's zy)
  bool flip_horizontal = false, flip_vertical = false;
  double channel_shift = 0;  // added to every channel (0 when off)
  double brightness = 1;     // PIL ImageEnhance.Brightness factor (1 and unused when off)
};

// The 10 uniforms of a copy, u_k in [0, 1), k = 0..9 (docs/FORMAT.md, "Augmented rows"):
// SplitMix64 seeded with mix64(mix64(mix64(seed) ^ fnv1a64(path)) ^ copy); u_k from its
// (k+1)-th output, top 53 bits.
std::array<double, 10> augment_uniforms(std::uint64_t seed, std::string_view path, int copy);

// The parameters of copy `copy` (1..K) of the image stored as `path` (as in /paths), for an
// image of height x width. Pure: the same arguments give the same parameters. The uniforms do
// not depend on the size: only the shifts, fractions of height and width, scale with it.
AugmentParams draw_augment(const AugmentOptions& o, std::string_view path, int copy, int height,
                           int width);

// Keras's transform matrix for an image of height x width, in (row, col) index coordinates:
// the output pixel (r, c) samples the input at M * (r, c, 1). Rows 0 and 1 of
// offset(centre) * R(theta) * T(tx, ty) * Shear * Zoom(zx, zy) * offset(-centre), centre
// ((height-1)/2, (width-1)/2).
cv::Matx23d augment_matrix(const AugmentParams& p, int height, int width);

// The copy: warp (one cv::warpAffine, bilinear, the fill mode), then channel shift, flips and
// brightness, in Keras's apply_transform order. rgb: CV_8UC3; returns a new image of its size.
cv::Mat apply_augment(const cv::Mat& rgb, const AugmentParams& p, const AugmentOptions& o);

// Decodes `file` and appends to `out` the image resized to opt.height x opt.width
// (opt.resize) and its copies 1..copies (drawn for `path`, the name stored in /paths), all RGB
// u8 of that size, original first. a.at = source: each copy is drawn for the decoded image's
// size, made from it (apply_augment) and then resized like the original; a.at = network:
// drawn for the network size and made from the resized original (Keras's
// flow_from_directory order). Throws Error naming the file (at source also for a side of 32767
// pixels or more, which OpenCV's warp does not take).
void load_augmented(const std::filesystem::path& file, std::string_view path,
                    const ImageOptions& opt, const AugmentOptions& a, int copies,
                    std::vector<cv::Mat>& out);

}  // namespace tl
