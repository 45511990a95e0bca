// tl-extract --preview: a grid PNG of the first images and their first augmented copies.
#include "tl/augment_preview.hpp"

#include <algorithm>
#include <ostream>
#include <vector>

#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "tl/error.hpp"
#include "tl/image_augment.hpp"
#include "tl/image_list.hpp"
#include "tl/output_file.hpp"

namespace tl {

PreviewSummary write_augment_preview(const ExtractConfig& cfg, const std::filesystem::path& png,
                                     std::ostream& log, int images, int copies) {
  if (!cfg.augment.enabled())
    throw UsageError("--preview: needs --augment K and the transforms to show");
  cfg.augment.validate();
  if (images < 1 || copies < 1) throw UsageError("--preview: at least one image and one copy");
  const ImageList list =
      cfg.list.empty() ? list_images(cfg.images) : read_image_list(cfg.list, cfg.images);
  ImageOptions opt = cfg.image;
  opt.height = cfg.net.height;
  opt.width = cfg.net.width;
  const int k = std::min(copies, cfg.augment.copies);
  std::vector<cv::Mat> rows;  // [images] x {h, (1 + k) * w} RGB u8
  for (const auto& e : list.entries) {
    if (static_cast<int>(rows.size()) == images) break;
    std::vector<cv::Mat> tiles;
    try {
      load_augmented(list.full_path(e), e.path, opt, cfg.augment, k, tiles);
    } catch (const Error& ex) {
      log << "note: --preview: skipped " << ex.what() << "\n";
      continue;
    }
    cv::Mat row;
    cv::hconcat(tiles, row);
    rows.push_back(row);
  }
  if (rows.empty())
    throw Error(fmt::format("--preview: none of the {} images could be read", list.entries.size()));
  cv::Mat grid, bgr;
  cv::vconcat(rows, grid);
  cv::cvtColor(grid, bgr, cv::COLOR_RGB2BGR);
  std::vector<uchar> bytes;
  bool ok = false;
  try {
    ok = cv::imencode(".png", bgr, bytes);
  } catch (const cv::Exception& ex) {
    throw Error(fmt::format("--preview: cannot encode '{}': {}", png.string(), ex.msg));
  }
  if (!ok) throw Error(fmt::format("--preview: cannot encode '{}'", png.string()));
  write_file_atomically(
      png, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  PreviewSummary s{static_cast<int>(rows.size()), k, grid.rows, grid.cols};
  log << fmt::format("preview: '{}' ({} image{} x (original + {} cop{}), {}x{} each; {})\n",
                     png.string(), s.images, s.images == 1 ? "" : "s", k, k == 1 ? "y" : "ies",
                     opt.height, opt.width, cfg.augment.describe());
  return s;
}

}  // namespace tl
