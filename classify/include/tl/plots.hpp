// Pictures of a training run and of an evaluation, drawn with OpenCV alone (no plotting
// library): the loss and accuracy curves of TrainResult::history, and a confusion matrix as a
// heat map. Both are written as PNG on a white background, readable at 100% zoom.
//
//   tl::TrainResult r = tl::train(head, train_src, &val_src, opt);
//   tl::plot_training_curves(r.history, "curves.png", "fashion-mnist, block5_pool, avg");
//   tl::ConfusionMatrix cm = tl::confusion_matrix(labels, pred, classes);
//   tl::plot_confusion_matrix(cm, class_names, "confusion.png", "fashion-mnist, test set");
//
// Text is drawn with OpenCV's Hershey fonts, which have glyphs for printable ASCII only: every
// other character of a title or a class name is drawn as '?' (see ascii_for_hershey).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "tl/metrics.hpp"
#include "tl/trainer.hpp"

namespace tl {

struct Rgb {
  std::uint8_t r = 0, g = 0, b = 0;
};
inline constexpr Rgb kTrainColour{31, 119, 180};       // training curves (matplotlib tab:blue)
inline constexpr Rgb kValidationColour{255, 127, 14};  // validation curves (tab:orange)

inline constexpr int kCurvesWidth = 1200;
inline constexpr int kCurvesHeight = 500;

// A kCurvesWidth x kCurvesHeight picture: loss per epoch in the left half, accuracy per epoch
// in the right half, each with the training curve and, where any record has_val, the
// validation curve; a legend in the emptiest corner of each panel, a dashed line at the last
// epoch marked `best`, and `title` on top. Points are marked up to 60 epochs (so one epoch
// shows as a dot). NaN and infinite values leave a gap in their curve and do not count for
// the axis range. Throws Error naming `png` if the file cannot be written.
void plot_training_curves(const std::vector<EpochRecord>& history, const std::filesystem::path& png,
                          const std::string& title);

// Where plot_confusion_matrix draws: a width x height picture in which cell (truth t,
// predicted p) is the square of side `cell` whose top-left corner is
// (matrix_x + p * cell, matrix_y + t * cell).
struct ConfusionLayout {
  int width = 0, height = 0;
  int matrix_x = 0, matrix_y = 0;
  int cell = 0;
};
inline constexpr int kMaxPlotClasses = 2000;  // one pixel per cell at most

// The layout for `classes` classes named `class_names` (empty: named by index). Cells are
// 64 px for up to 10 classes, shrinking to 28 px at 23..50 classes and then to 1400 / classes
// (at least 1 px); the picture is at least 700 x 700. Throws Error for classes outside
// [1, kMaxPlotClasses] or a name count other than 0 or `classes`.
ConfusionLayout confusion_layout(int classes, const std::vector<std::string>& class_names);

// The confusion matrix as a heat map: rows are the true class ("true", names down the left),
// columns the predicted class ("predicted", names along the bottom, turned to read upwards).
// A cell's shade is its share of its row (the recall of the diagonal cell; colour bar on the
// right) and its count is written in it: exactly, or as 12.3k / 12k where the digits do not
// fit, and not at all where the cell is too small for the text. Names longer than the margin allows
// keep their start and end around "..."; below 12 px per cell only every k-th name is written.
// The title is `title` followed by the accuracy (trace / total). Throws Error for a matrix
// whose counts are not classes x classes, for the cases of confusion_layout, and naming `png`
// if the file cannot be written.
void plot_confusion_matrix(const ConfusionMatrix& cm, const std::vector<std::string>& class_names,
                           const std::filesystem::path& png, const std::string& title);

// Text as the Hershey fonts can draw it: printable ASCII is kept; each other character (one
// UTF-8 sequence, a stray byte of 0x80..0xFF, or a control character) becomes one '?'.
std::string ascii_for_hershey(std::string_view text);

}  // namespace tl
