// tl::plot_training_curves and tl::plot_confusion_matrix read back with cv::imread: the PNGs
// have the documented size, the curves are drawn in their colours in the right panel, the
// confusion matrix is shaded by its counts, and odd values, odd names and unwritable paths
// behave as documented.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "test_util.hpp"
#include "tl/error.hpp"
#include "tl/metrics.hpp"
#include "tl/plots.hpp"
#include "tl/trainer.hpp"

namespace tl {
namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// A plausible run: loss falling, accuracy rising, validation a little worse.
std::vector<EpochRecord> history(int epochs, bool with_val) {
  std::vector<EpochRecord> h;
  for (int e = 1; e <= epochs; ++e) {
    EpochRecord r;
    r.epoch = e;
    r.loss = 0.2 + 1.8 / e;
    r.accuracy = 0.95 - 0.5 / e;
    r.has_val = with_val;
    r.val_loss = with_val ? 0.3 + 1.6 / e + 0.004 * e : 0;
    r.val_accuracy = with_val ? 0.9 - 0.45 / e : 0;
    r.best = with_val && e == epochs / 2;
    h.push_back(r);
  }
  return h;
}

// Pixels of `img` in columns [x0, x1) within `tol` of `c` in every channel.
int count_colour(const cv::Mat& img, Rgb c, int x0, int x1, int tol = 10) {
  int n = 0;
  for (int y = 0; y < img.rows; ++y)
    for (int x = x0; x < x1; ++x) {
      const cv::Vec3b p = img.at<cv::Vec3b>(y, x);
      n +=
          std::abs(p[0] - c.b) <= tol && std::abs(p[1] - c.g) <= tol && std::abs(p[2] - c.r) <= tol;
    }
  return n;
}

cv::Mat read_png(const std::filesystem::path& p) {
  cv::Mat img = cv::imread(p.string(), cv::IMREAD_COLOR);
  EXPECT_FALSE(img.empty()) << p << " does not decode";
  return img;
}

cv::Mat plot_curves(const testing::TempDir& dir, const std::vector<EpochRecord>& h,
                    const std::string& name) {
  plot_training_curves(h, dir / name, "run " + name);
  return read_png(dir / name);
}

constexpr int kHalf = kCurvesWidth / 2;  // the loss panel is the left half

// --- training curves ------------------------------------------------------------------------

TEST(TrainingCurves, WritesPngOfDocumentedSize) {
  testing::TempDir dir;
  const cv::Mat img = plot_curves(dir, history(30, true), "curves.png");
  EXPECT_EQ(img.cols, kCurvesWidth);
  EXPECT_EQ(img.rows, kCurvesHeight);
  EXPECT_EQ(img.at<cv::Vec3b>(2, 2), cv::Vec3b(255, 255, 255)) << "white background";
}

TEST(TrainingCurves, PathWithoutPngExtensionStillGetsPng) {
  testing::TempDir dir;
  plot_training_curves(history(5, false), dir / "curves", "no extension");
  const std::string bytes = testing::read_bytes(dir / "curves");
  ASSERT_GE(bytes.size(), 8u);
  EXPECT_EQ(bytes.substr(1, 3), "PNG");
}

// The legend shows the colour too, so compare with a run whose losses are all NaN (legend
// only): the curve must add many pixels of its own colour to the loss panel.
TEST(TrainingCurves, TrainAndValidationLossAreDrawnInTheLossPanel) {
  testing::TempDir dir;
  auto h = history(30, true);
  auto no_loss = h;
  for (auto& e : no_loss) e.loss = e.val_loss = kNan;
  const cv::Mat full = plot_curves(dir, h, "full.png");
  const cv::Mat legend_only = plot_curves(dir, no_loss, "legend_only.png");
  EXPECT_GT(count_colour(full, kTrainColour, 0, kHalf),
            count_colour(legend_only, kTrainColour, 0, kHalf) + 300);
  EXPECT_GT(count_colour(full, kValidationColour, 0, kHalf),
            count_colour(legend_only, kValidationColour, 0, kHalf) + 300);
  // the accuracy panel was left alone
  EXPECT_GT(count_colour(legend_only, kTrainColour, kHalf, kCurvesWidth), 300);
}

TEST(TrainingCurves, NoValidationColourWithoutValidation) {
  testing::TempDir dir;
  const cv::Mat img = plot_curves(dir, history(30, false), "train_only.png");
  EXPECT_GT(count_colour(img, kTrainColour, 0, kHalf), 300);
  EXPECT_GT(count_colour(img, kTrainColour, kHalf, kCurvesWidth), 300);
  EXPECT_EQ(count_colour(img, kValidationColour, 0, kCurvesWidth), 0);
}

TEST(TrainingCurves, OneEpochIsDrawnAsADot) {
  testing::TempDir dir;
  auto one = history(1, true);
  auto none = one;
  none[0].loss = kNan;
  const cv::Mat dot = plot_curves(dir, one, "one.png");
  const cv::Mat legend_only = plot_curves(dir, none, "one_nan.png");
  EXPECT_EQ(dot.cols, kCurvesWidth);
  EXPECT_GT(count_colour(dot, kTrainColour, 0, kHalf),
            count_colour(legend_only, kTrainColour, 0, kHalf) + 20);
}

TEST(TrainingCurves, NanInfFlatHugeAndEmptyHistoriesDraw) {
  testing::TempDir dir;
  auto gaps = history(40, true);
  gaps[3].loss = kNan;
  gaps[10].val_loss = kInf;
  gaps[11].val_loss = -kInf;
  gaps[20].accuracy = kNan;
  gaps[21].val_accuracy = kNan;
  auto all_nan = history(10, true);
  for (auto& e : all_nan) e.loss = e.accuracy = e.val_loss = e.val_accuracy = kNan;
  auto flat = history(20, true);
  for (auto& e : flat) e.loss = e.val_loss = 0.5, e.accuracy = e.val_accuracy = 1.0;
  auto zeros = history(3, false);
  for (auto& e : zeros) e.loss = e.accuracy = 0;
  auto huge = history(8, true);
  huge[0].loss = 1e300;
  huge[1].loss = -1e300;
  huge[2].val_loss = std::numeric_limits<double>::max();
  huge[3].accuracy = std::numeric_limits<double>::denorm_min();
  auto tiny_range = history(6, false);
  for (size_t i = 0; i < tiny_range.size(); ++i) tiny_range[i].loss = 1.0 + 1e-13 * i;
  auto unnumbered = history(5, false);
  for (auto& e : unnumbered) e.epoch = 0;
  const std::vector<std::pair<std::string, std::vector<EpochRecord>>> cases = {
      {"gaps", gaps},
      {"all_nan", all_nan},
      {"flat", flat},
      {"zeros", zeros},
      {"huge", huge},
      {"tiny_range", tiny_range},
      {"unnumbered", unnumbered},
      {"empty", {}},
      {"long", history(500, true)}};
  for (const auto& [name, h] : cases) {
    SCOPED_TRACE(name);
    const cv::Mat img = plot_curves(dir, h, name + ".png");
    EXPECT_EQ(img.cols, kCurvesWidth);
    EXPECT_EQ(img.rows, kCurvesHeight);
  }
}

TEST(TrainingCurves, UnwritablePathThrowsNamingIt) {
  testing::TempDir dir;
  const auto missing = dir / "no_such_folder" / "curves.png";
  EXPECT_HAS(testing::error_of([&] { plot_training_curves(history(3, true), missing, "x"); }),
             missing.string());
  // a folder is not a file either
  EXPECT_HAS(testing::error_of([&] { plot_training_curves(history(3, true), dir.path(), "x"); }),
             dir.path().string());
}

// --- confusion matrix -----------------------------------------------------------------------

const std::vector<std::string> kFashion = {"tshirt_top", "trouser",   "pullover", "dress",
                                           "coat",       "sandal",    "shirt",    "sneaker",
                                           "bag",        "ankle_boot"};

// Mostly right; class 3 has many hits; cell (3, 5) stays zero.
ConfusionMatrix matrix(int classes) {
  ConfusionMatrix cm{classes, std::vector<std::int64_t>(static_cast<size_t>(classes) * classes)};
  for (int t = 0; t < classes; ++t)
    for (int p = 0; p < classes; ++p)
      cm.counts[static_cast<size_t>(t) * classes + p] = t == p ? 80 + t : (t + 2 * p) % 7 == 0;
  if (classes > 3) cm.counts[3 * static_cast<size_t>(classes) + 3] = 950;
  if (classes > 5) cm.counts[3 * static_cast<size_t>(classes) + 5] = 0;
  return cm;
}

// Mean brightness (sum of channels) of the 3 x 3 pixels inside a cell's top-left corner, away
// from the centred count.
int corner_brightness(const cv::Mat& img, const ConfusionLayout& l, int t, int p) {
  int sum = 0;
  for (int dy = 2; dy < 5; ++dy)
    for (int dx = 2; dx < 5; ++dx) {
      const cv::Vec3b v =
          img.at<cv::Vec3b>(l.matrix_y + t * l.cell + dy, l.matrix_x + p * l.cell + dx);
      sum += v[0] + v[1] + v[2];
    }
  return sum / 9;
}

TEST(ConfusionMatrixPlot, WritesPngOfLayoutSizeAtLeast700) {
  testing::TempDir dir;
  plot_confusion_matrix(matrix(10), kFashion, dir / "cm.png", "fashion");
  const cv::Mat img = read_png(dir / "cm.png");
  const ConfusionLayout l = confusion_layout(10, kFashion);
  EXPECT_EQ(img.cols, l.width);
  EXPECT_EQ(img.rows, l.height);
  EXPECT_GE(l.width, 700);
  EXPECT_GE(l.height, 700);
  EXPECT_GE(l.cell * 10, 500) << "10 classes get big cells";
  EXPECT_GE(l.matrix_x, 0);
  EXPECT_LE(l.matrix_x + 10 * l.cell, l.width);
  EXPECT_LE(l.matrix_y + 10 * l.cell, l.height);
}

TEST(ConfusionMatrixPlot, CellWithManyHitsIsDarkerThanAZeroCell) {
  testing::TempDir dir;
  plot_confusion_matrix(matrix(10), kFashion, dir / "cm.png", "fashion");
  const cv::Mat img = read_png(dir / "cm.png");
  const ConfusionLayout l = confusion_layout(10, kFashion);
  const int hit = corner_brightness(img, l, 3, 3), zero = corner_brightness(img, l, 3, 5);
  EXPECT_LT(hit, 300) << "dark blue";
  EXPECT_GT(zero, 720) << "almost white";
  // and a zero cell of another row is as light
  EXPECT_NEAR(corner_brightness(img, l, 0, 1), zero, 15);
}

TEST(ConfusionMatrixPlot, ManyClassesLongAndNonAsciiNamesDraw) {
  testing::TempDir dir;
  int previous_cell = 1000;
  for (int classes : {1, 2, 10, 50, 60, 300, 2000}) {
    SCOPED_TRACE(classes);
    std::vector<std::string> names;
    for (int c = 0; c < classes; ++c)
      names.push_back(c % 3 == 0   ? fmt::format("a_very_long_class_name_that_goes_on_and_on_{}", c)
                      : c % 3 == 1 ? fmt::format("caf\xc3\xa9_\xe6\x97\xa5\xe6\x9c\xac_{}", c)
                                   : fmt::format("c{}", c));
    const auto png = dir / fmt::format("cm{}.png", classes);
    plot_confusion_matrix(matrix(classes), names, png, "\xce\xb1 many classes");
    const cv::Mat img = read_png(png);
    const ConfusionLayout l = confusion_layout(classes, names);
    EXPECT_EQ(img.cols, l.width);
    EXPECT_EQ(img.rows, l.height);
    EXPECT_LE(l.width, 3000);
    EXPECT_LE(l.cell, previous_cell) << "more classes, smaller cells";
    if (classes <= 50) {
      EXPECT_GE(l.cell, 28) << "up to 50 classes keep legible counts";
    }
    previous_cell = l.cell;
  }
}

TEST(ConfusionMatrixPlot, EmptyMatrixAndIndexNamesDraw) {
  testing::TempDir dir;
  ConfusionMatrix empty{4, std::vector<std::int64_t>(16, 0)};
  plot_confusion_matrix(empty, {}, dir / "empty.png", "");
  EXPECT_GE(read_png(dir / "empty.png").cols, 700);
  ConfusionMatrix big = matrix(5);
  big.counts[0] = 123456789012;
  plot_confusion_matrix(big, {}, dir / "big.png", "big counts");
  EXPECT_GE(read_png(dir / "big.png").cols, 700);
}

TEST(ConfusionMatrixPlot, BadShapesAndPathsThrow) {
  testing::TempDir dir;
  EXPECT_HAS(testing::error_of([&] {
               plot_confusion_matrix(matrix(10), {"a", "b"}, dir / "x.png", "");
             }),
             "2 class names");
  ConfusionMatrix short_counts = matrix(3);
  short_counts.counts.pop_back();
  EXPECT_HAS(testing::error_of([&] { plot_confusion_matrix(short_counts, {}, dir / "x.png", ""); }),
             "8 counts");
  EXPECT_HAS(testing::error_of([&] { confusion_layout(0, {}); }), "0 classes");
  const auto missing = dir / "missing" / "cm.png";
  EXPECT_HAS(testing::error_of([&] { plot_confusion_matrix(matrix(10), kFashion, missing, ""); }),
             missing.string());
}

// --- text -----------------------------------------------------------------------------------

TEST(AsciiForHershey, EachNonAsciiCharacterBecomesOneQuestionMark) {
  EXPECT_EQ(ascii_for_hershey("ankle_boot"), "ankle_boot");
  EXPECT_EQ(ascii_for_hershey("caf\xc3\xa9"), "caf?");             // 2-byte UTF-8
  EXPECT_EQ(ascii_for_hershey("\xe6\x97\xa5\xe6\x9c\xac"), "??");  // 3-byte UTF-8 each
  EXPECT_EQ(ascii_for_hershey("\xf0\x9f\x90\x88 cat"), "? cat");   // 4-byte UTF-8
  EXPECT_EQ(ascii_for_hershey("\xb0"
                              "C"),
            "?C");                                 // stray Latin-1 byte
  EXPECT_EQ(ascii_for_hershey("a\tb\n"), "a?b?");  // control characters
  EXPECT_EQ(ascii_for_hershey(""), "");
}

}  // namespace
}  // namespace tl
