// The loss and accuracy curves of a training run (tl/plots.hpp), drawn on the plot canvas.
#include "tl/plots.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "plot_canvas.hpp"
#include "tl/error.hpp"

namespace tl {

using namespace canvas;

namespace {

// OpenCV's channel order for a colour.
cv::Scalar bgr(Rgb c) {
  return {static_cast<double>(c.b), static_cast<double>(c.g), static_cast<double>(c.r)};
}

struct Series {
  std::vector<double> y;  // one value per epoch; NaN where there is none
  cv::Scalar colour;
  std::string label;
};

struct LegendEntry {
  std::string label;
  cv::Scalar colour;
  bool dashed = false;
};

// A panel's frame and the mapping of (epoch, value) into it, in fixed-point pixels. The axis
// ends lie kInset pixels inside the frame, so that no point sits on it.
struct Panel {
  static constexpr int kInset = 8;
  cv::Rect plot;
  Axis x, y;
  cv::Point at(double xv, double yv) const {
    const double w = plot.width - 1 - 2 * kInset, h = plot.height - 1 - 2 * kInset;
    const double px = plot.x + kInset + (xv - x.lo) / (x.hi - x.lo) * w;
    const double py = plot.y + kInset + h - (yv - y.lo) / (y.hi - y.lo) * h;
    return {static_cast<int>(std::lround(px * kOne)), static_cast<int>(std::lround(py * kOne))};
  }
};

// One curve: runs of finite values as polylines, a lone finite value as a dot, markers on
// every point when `markers`. Also paints `mask` where the curve runs (for the legend).
void draw_series(cv::Mat& img, cv::Mat& mask, const Panel& p, const std::vector<double>& xs,
                 const Series& s, bool markers) {
  std::vector<cv::Point> run;
  auto flush = [&] {
    if (run.size() == 1) {
      cv::circle(img, run[0], 4 * static_cast<int>(kOne), s.colour, cv::FILLED, cv::LINE_AA,
                 kShift);
      cv::circle(mask, run[0], 6 * static_cast<int>(kOne), 255, cv::FILLED, cv::LINE_8, kShift);
    } else if (run.size() > 1) {
      cv::polylines(img, run, false, s.colour, 2, cv::LINE_AA, kShift);
      cv::polylines(mask, run, false, 255, 5, cv::LINE_8, kShift);
    }
    if (markers)
      for (const cv::Point& q : run)
        cv::circle(img, q, 3 * static_cast<int>(kOne), s.colour, cv::FILLED, cv::LINE_AA, kShift);
    run.clear();
  };
  for (size_t i = 0; i < xs.size(); ++i) {
    if (std::isfinite(s.y[i]))
      run.push_back(p.at(xs[i], s.y[i]));
    else
      flush();
  }
  flush();
}

// The legend in whichever corner of the plot the curves cross least (top-right first on ties).
void draw_legend(cv::Mat& img, const cv::Mat& mask, const cv::Rect& plot,
                 const std::vector<LegendEntry>& entries) {
  if (entries.empty()) return;
  int text_width = 0;
  for (const auto& e : entries)
    text_width = std::max(text_width, text_size(e.label, kLegendFont).width);
  constexpr int row = 22, sample = 28, inset = 8;
  const cv::Size box(12 + sample + 8 + text_width + 12, 8 + row * static_cast<int>(entries.size()));
  const std::array<cv::Point, 4> corners = {
      cv::Point(plot.x + plot.width - inset - box.width, plot.y + inset),
      cv::Point(plot.x + inset, plot.y + inset),
      cv::Point(plot.x + plot.width - inset - box.width, plot.y + plot.height - inset - box.height),
      cv::Point(plot.x + inset, plot.y + plot.height - inset - box.height)};
  const cv::Rect bounds(0, 0, mask.cols, mask.rows);
  cv::Rect best;
  int best_crossings = std::numeric_limits<int>::max();
  for (const cv::Point& c : corners) {
    const cv::Rect r = cv::Rect(c, box) & bounds;
    const int crossings = r.empty() ? 0 : cv::countNonZero(mask(r));
    if (crossings < best_crossings) {
      best_crossings = crossings;
      best = cv::Rect(c, box);
    }
  }
  cv::rectangle(img, best, kWhite, cv::FILLED);
  cv::rectangle(img, best, cv::Scalar(200, 200, 200), 1);
  for (size_t i = 0; i < entries.size(); ++i) {
    const int y = best.y + 4 + row * static_cast<int>(i) + row / 2;
    const cv::Point a(best.x + 12, y), b(best.x + 12 + sample, y);
    if (entries[i].dashed)
      draw_dashed(img, a, b, entries[i].colour, 2);
    else
      cv::line(img, a, b, entries[i].colour, 2, cv::LINE_AA);
    draw_text(img, entries[i].label, {b.x + 8, y}, kLegendFont, kInk, Align::start, Align::centre);
  }
}

// One panel in `area`: grid, frame, ticks, axis titles, the curves and their legend.
// `max_end` is the largest value the quantity can take (1 for an accuracy).
void draw_panel(cv::Mat& img, const cv::Rect& area, const std::string& y_title,
                const std::vector<double>& xs, const std::vector<Series>& series, int best_epoch,
                double max_end) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto& s : series)
    for (double v : s.y)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  const bool any = lo <= hi;

  Panel p;
  const int plot_height = area.height - 12 - 56;
  constexpr double kNone = std::numeric_limits<double>::infinity();
  p.y = any ? value_axis(lo, hi, std::max(2, plot_height / 60), lo >= 0 ? 0 : -kNone,
                         hi <= max_end ? max_end : kNone)
            : value_axis(0, 1, 5, 0, 1);
  std::vector<std::string> y_labels;
  int label_width = 0;
  for (double t : p.y.ticks) {
    y_labels.push_back(tick_label(t, p.y.step));
    label_width = std::max(label_width, text_size(y_labels.back(), kTickFont).width);
  }
  const int left = area.x + 40 + label_width + 12;
  p.plot = cv::Rect(left, area.y + 12, area.x + area.width - 28 - left, plot_height);
  const double first = xs.empty() ? 1 : xs.front(), last = xs.empty() ? 1 : xs.back();
  p.x = epoch_axis(first, last, std::max(2, p.plot.width / 90));

  // grid and ticks
  const int bottom = p.plot.y + p.plot.height - 1, right = p.plot.x + p.plot.width - 1;
  for (size_t i = 0; i < p.y.ticks.size(); ++i) {
    const int y = static_cast<int>(std::lround(p.at(p.x.lo, p.y.ticks[i]).y / kOne));
    cv::line(img, {p.plot.x, y}, {right, y}, kGrid, 1);
    cv::line(img, {p.plot.x - 5, y}, {p.plot.x, y}, kFrame, 1);
    draw_text(img, y_labels[i], {p.plot.x - 9, y}, kTickFont, kInk, Align::end, Align::centre);
  }
  for (double t : p.x.ticks) {
    const int x = static_cast<int>(std::lround(p.at(t, p.y.lo).x / kOne));
    cv::line(img, {x, p.plot.y}, {x, bottom}, kGrid, 1);
    cv::line(img, {x, bottom}, {x, bottom + 5}, kFrame, 1);
    draw_text(img, tick_label(t, p.x.step), {x, bottom + 10}, kTickFont, kInk, Align::centre,
              Align::start);
  }
  cv::rectangle(img, p.plot, kFrame, 1);
  draw_text(img, "epoch", {p.plot.x + p.plot.width / 2, bottom + 32}, kAxisTitleFont, kInk,
            Align::centre, Align::start);
  draw_text_upwards(img, y_title, {area.x + 18, p.plot.y + p.plot.height / 2}, kAxisTitleFont,
                    Align::centre);

  cv::Mat mask(img.size(), CV_8U, cv::Scalar(0));
  std::vector<LegendEntry> legend;
  if (best_epoch > 0) {
    const cv::Point a = p.at(best_epoch, p.y.lo), b = p.at(best_epoch, p.y.hi);
    const cv::Point2d da(a.x / kOne, a.y / kOne), db(b.x / kOne, b.y / kOne);
    draw_dashed(img, da, db, kBestLine, 1);
    cv::line(mask, da, db, 255, 3);
  }
  const bool markers = xs.size() <= 60;
  for (const auto& s : series) {
    draw_series(img, mask, p, xs, s, markers);
    legend.push_back({s.label, s.colour, false});
  }
  if (best_epoch > 0)
    legend.push_back({fmt::format("best, epoch {}", best_epoch), kBestLine, true});
  if (!any)
    draw_text(img, "no finite values", {p.plot.x + p.plot.width / 2, p.plot.y + p.plot.height / 2},
              kLegendFont, kFaintInk, Align::centre, Align::centre);
  draw_legend(img, mask, p.plot, legend);
}

}  // namespace

void plot_training_curves(const std::vector<EpochRecord>& history, const std::filesystem::path& png,
                          const std::string& title) {
  cv::Mat img(kCurvesHeight, kCurvesWidth, CV_8UC3, kWhite);
  const size_t n = history.size();
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();

  // Epoch numbers as recorded when they increase, else 1..n.
  std::vector<double> xs(n);
  bool increasing = true;
  for (size_t i = 0; i < n; ++i) {
    xs[i] = history[i].epoch;
    if (i > 0 && history[i].epoch <= history[i - 1].epoch) increasing = false;
  }
  if (!increasing)
    for (size_t i = 0; i < n; ++i) xs[i] = static_cast<double>(i + 1);

  const bool has_val =
      std::any_of(history.begin(), history.end(), [](const EpochRecord& e) { return e.has_val; });
  Series loss{{}, bgr(kTrainColour), "train"}, val_loss{{}, bgr(kValidationColour), "validation"};
  Series acc = loss, val_acc = val_loss;
  int best_epoch = 0;
  for (size_t i = 0; i < n; ++i) {
    const EpochRecord& e = history[i];
    loss.y.push_back(e.loss);
    acc.y.push_back(e.accuracy);
    val_loss.y.push_back(e.has_val ? e.val_loss : nan);
    val_acc.y.push_back(e.has_val ? e.val_accuracy : nan);
    if (e.best) best_epoch = static_cast<int>(xs[i]);
  }
  std::vector<Series> loss_series{loss}, acc_series{acc};
  if (has_val) {
    loss_series.push_back(val_loss);
    acc_series.push_back(val_acc);
  }

  constexpr int top = 52;
  const int half = kCurvesWidth / 2;
  if (!title.empty())
    draw_text(img, fit_width(ascii_for_hershey(title), kTitleFont, kCurvesWidth - 40),
              {kCurvesWidth / 2, 18}, kTitleFont, kInk, Align::centre, Align::start);
  draw_panel(img, {0, top, half, kCurvesHeight - top}, "loss", xs, loss_series, best_epoch,
             std::numeric_limits<double>::infinity());
  draw_panel(img, {half, top, half, kCurvesHeight - top}, "accuracy", xs, acc_series, best_epoch,
             1.0);
  write_png(img, png);
}

}  // namespace tl
