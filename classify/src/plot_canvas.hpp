// Internal to the plots: what a picture is drawn with — colours, Hershey fonts and text
// placement, 1-2-5 axes and their tick labels, dashed lines, and the PNG written atomically.
// The training curves (training_curves_plot.cpp) and the confusion matrix
// (confusion_matrix_plot.cpp) are drawn on it.
//
//   cv::Mat img(500, 1200, CV_8UC3, tl::canvas::kWhite);
//   tl::canvas::draw_text(img, "loss", {600, 10}, tl::canvas::kTitleFont, tl::canvas::kInk,
//                         tl::canvas::Align::centre, tl::canvas::Align::start);
//   tl::canvas::write_png(img, "curves.png");
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

namespace tl::canvas {

inline const cv::Scalar kWhite(255, 255, 255);
inline const cv::Scalar kInk(40, 40, 40);          // text
inline const cv::Scalar kFaintInk(150, 150, 150);  // zero counts
inline const cv::Scalar kFrame(110, 110, 110);     // plot frames, ticks
inline const cv::Scalar kGrid(228, 228, 228);      // grid lines, cell borders
inline const cv::Scalar kBestLine(120, 120, 120);  // the best epoch's dashed line

constexpr int kShift = 4;  // fixed-point bits of sub-pixel coordinates for lines and circles
constexpr double kOne = 1 << kShift;

struct Font {
  int face = cv::FONT_HERSHEY_SIMPLEX;
  double scale = 0.5;
  int thickness = 1;
};
inline const Font kTitleFont{cv::FONT_HERSHEY_DUPLEX, 0.75, 1};
inline const Font kAxisTitleFont{cv::FONT_HERSHEY_SIMPLEX, 0.6, 1};
inline const Font kTickFont{cv::FONT_HERSHEY_SIMPLEX, 0.45, 1};
inline const Font kLegendFont{cv::FONT_HERSHEY_SIMPLEX, 0.5, 1};

// Width and cap height of `s`; `baseline` receives the depth below the baseline.
cv::Size text_size(const std::string& s, const Font& f, int* baseline = nullptr);

enum class Align { start, centre, end };

// Draws `s` so that `at` is the start / centre / end of its width (h) and the top / middle of
// its cap height / its baseline (v).
void draw_text(cv::Mat& img, const std::string& s, cv::Point at, const Font& f, cv::Scalar colour,
               Align h, Align v);

// Draws dark `s` turned a quarter counter-clockwise (read upwards), centred on at.x; its top
// (the end of the text) at at.y for Align::start, its middle for centre, its bottom for end.
// Blends by darkening, so it suits a light background.
void draw_text_upwards(cv::Mat& img, const std::string& s, cv::Point at, const Font& f, Align v);

// `s` if it is at most max_width wide, else its start and end around "..." (two thirds of the
// kept characters from the start), as long as fits.
std::string fit_width(const std::string& s, const Font& f, int max_width);

// The 1-2-5 step that cuts `span` into about `target` intervals.
double nice_step(double span, int target);

struct Axis {
  double lo = 0, hi = 1;  // the values at the two ends of the axis
  double step = 1;
  std::vector<double> ticks;
};

// An axis from a tick below the smallest value to a tick above the largest (a flat range is
// widened around its value first), its ends kept within [min_end, max_end] (0 for a loss that
// cannot be negative, 1 for an accuracy).
Axis value_axis(double lo, double hi, int target, double min_end, double max_end);

// The epoch axis spans exactly [first, last] (one epoch: +-0.5) with ticks on whole epochs.
Axis epoch_axis(double first, double last, int target);

// Enough decimals to tell the ticks `step` apart, and no more.
std::string tick_label(double v, double step);

void draw_dashed(cv::Mat& img, cv::Point2d a, cv::Point2d b, cv::Scalar colour, int thickness);

void write_png(const cv::Mat& img, const std::filesystem::path& png);
}  // namespace tl::canvas
