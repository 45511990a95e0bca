// tl-extract --preview FILE.png: what --augment's settings do, as a picture.
//
//   tl::ExtractConfig cfg = ...;              // images, list, size, resize, augment
//   tl::PreviewSummary p = tl::write_augment_preview(cfg, "preview.png", std::cerr);
//
// One grid row per image (the first images of the list that decode), each row the image at
// the network size followed by its first augmented copies (made at --augment-at's stage, then
// at the network size), exactly as tl-extract feeds them to the network (before preprocessing).
// Nothing is extracted; no weights are needed.
#pragma once

#include <filesystem>
#include <iosfwd>

#include "tl/extract.hpp"

namespace tl {

struct PreviewSummary {
  int images = 0;             // grid rows
  int copies = 0;             // copies per row (the original comes first)
  int height = 0, width = 0;  // the PNG's size in pixels
};

// Writes a grid of `images` images x (1 + min(K, copies)) tiles of the network size. Throws
// UsageError without --augment, Error naming the file when it cannot be written or no image
// of the list can be read.
PreviewSummary write_augment_preview(const ExtractConfig& cfg, const std::filesystem::path& png,
                                     std::ostream& log, int images = 4, int copies = 8);

}  // namespace tl
