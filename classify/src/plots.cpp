// Training curves and confusion matrices drawn with OpenCV: axes, 1-2-5 ticks, legends and
// text laid out by hand, then encoded as PNG.
#include "tl/plots.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include <fmt/format.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "tl/error.hpp"
#include "tl/output_file.hpp"

namespace tl {

namespace {

// --- colours, fonts and text ----------------------------------------------------------------

cv::Scalar bgr(Rgb c) {
  return {static_cast<double>(c.b), static_cast<double>(c.g), static_cast<double>(c.r)};
}
const cv::Scalar kWhite(255, 255, 255);
const cv::Scalar kInk(40, 40, 40);          // text
const cv::Scalar kFaintInk(150, 150, 150);  // zero counts
const cv::Scalar kFrame(110, 110, 110);     // plot frames, ticks
const cv::Scalar kGrid(228, 228, 228);      // grid lines, cell borders
const cv::Scalar kBestLine(120, 120, 120);  // the best epoch's dashed line

constexpr int kShift = 4;  // fixed-point bits of sub-pixel coordinates for lines and circles
constexpr double kOne = 1 << kShift;

struct Font {
  int face = cv::FONT_HERSHEY_SIMPLEX;
  double scale = 0.5;
  int thickness = 1;
};
const Font kTitleFont{cv::FONT_HERSHEY_DUPLEX, 0.75, 1};
const Font kAxisTitleFont{cv::FONT_HERSHEY_SIMPLEX, 0.6, 1};
const Font kTickFont{cv::FONT_HERSHEY_SIMPLEX, 0.45, 1};
const Font kLegendFont{cv::FONT_HERSHEY_SIMPLEX, 0.5, 1};

// Width and cap height of `s`; `baseline` receives the depth below the baseline.
cv::Size text_size(const std::string& s, const Font& f, int* baseline = nullptr) {
  int b = 0;
  const cv::Size size = cv::getTextSize(s, f.face, f.scale, f.thickness, &b);
  if (baseline) *baseline = b;
  return size;
}

enum class Align { start, centre, end };

// Draws `s` so that `at` is the start / centre / end of its width (h) and the top / middle of
// its cap height / its baseline (v).
void draw_text(cv::Mat& img, const std::string& s, cv::Point at, const Font& f, cv::Scalar colour,
               Align h, Align v) {
  const cv::Size size = text_size(s, f);
  const int x = at.x - (h == Align::centre ? size.width / 2 : h == Align::end ? size.width : 0);
  const int y = at.y + (v == Align::start ? size.height : v == Align::centre ? size.height / 2 : 0);
  cv::putText(img, s, {x, y}, f.face, f.scale, colour, f.thickness, cv::LINE_AA);
}

// Draws dark `s` turned a quarter counter-clockwise (read upwards), centred on at.x; its top
// (the end of the text) at at.y for Align::start, its middle for centre, its bottom for end.
// Blends by darkening, so it suits a light background.
void draw_text_upwards(cv::Mat& img, const std::string& s, cv::Point at, const Font& f, Align v) {
  int baseline = 0;
  const cv::Size size = text_size(s, f, &baseline);
  constexpr int pad = 2;
  cv::Mat flat(size.height + baseline + 2 * pad, size.width + 2 * pad, CV_8UC3, kWhite);
  cv::putText(flat, s, {pad, pad + size.height}, f.face, f.scale, kInk, f.thickness, cv::LINE_AA);
  cv::Mat up;
  cv::rotate(flat, up, cv::ROTATE_90_COUNTERCLOCKWISE);
  const cv::Point corner(at.x - (size.height + 2 * pad) / 2,
                         at.y - (v == Align::centre ? up.rows / 2
                                 : v == Align::end  ? up.rows
                                                    : 0));
  const cv::Rect dst = cv::Rect(corner, up.size()) & cv::Rect(0, 0, img.cols, img.rows);
  if (dst.empty()) return;
  cv::Mat roi = img(dst);
  cv::min(roi, up(dst - corner), roi);
}

// `s` if it is at most max_width wide, else its start and end around "..." (two thirds of the
// kept characters from the start), as long as fits.
std::string fit_width(const std::string& s, const Font& f, int max_width) {
  if (s.empty() || text_size(s, f).width <= max_width) return s;
  for (size_t keep = s.size() - 1; keep > 0; --keep) {
    const size_t tail = keep / 3, head = keep - tail;
    std::string t = s.substr(0, head) + "..." + s.substr(s.size() - tail);
    if (text_size(t, f).width <= max_width) return t;
  }
  return "...";
}

// --- axes -----------------------------------------------------------------------------------

// The 1-2-5 step that cuts `span` into about `target` intervals.
double nice_step(double span, int target) {
  const double raw = span / std::max(target, 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / magnitude;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * magnitude;
}

struct Axis {
  double lo = 0, hi = 1;  // the values at the two ends of the axis
  double step = 1;
  std::vector<double> ticks;
};

// An axis from a tick below the smallest value to a tick above the largest (a flat range is
// widened around its value first), its ends kept within [min_end, max_end] (0 for a loss that
// cannot be negative, 1 for an accuracy).
Axis value_axis(double lo, double hi, int target, double min_end, double max_end) {
  constexpr double kLimit = 1e300;  // keeps hi - lo finite
  lo = std::clamp(lo, -kLimit, kLimit);
  hi = std::clamp(hi, -kLimit, kLimit);
  const double magnitude = std::max(std::abs(lo), std::abs(hi));
  if (!(hi - lo > 1e-9 * magnitude) || hi - lo < 1e-290) {
    const double centre = lo / 2 + hi / 2;
    const double half = magnitude > 1e-290 ? 0.1 * magnitude : 1.0;
    lo = centre - half;
    hi = centre + half;
  }
  Axis a;
  a.step = nice_step(hi - lo, target);
  a.lo = std::floor(lo / a.step) * a.step;
  a.hi = std::ceil(hi / a.step) * a.step;
  if (a.lo < min_end && min_end < a.hi) a.lo = min_end;
  if (a.hi > max_end && max_end > a.lo) a.hi = max_end;
  const long n = std::min(100L, std::lround((a.hi - a.lo) / a.step));
  for (long i = 0; i <= n; ++i) {
    const double t = a.lo + static_cast<double>(i) * a.step;
    a.ticks.push_back(std::abs(t) < 1e-6 * a.step ? 0.0 : t);
  }
  return a;
}

// The epoch axis spans exactly [first, last] (one epoch: +-0.5) with ticks on whole epochs.
Axis epoch_axis(double first, double last, int target) {
  Axis a;
  a.lo = first;
  a.hi = last;
  if (a.hi - a.lo < 1) {
    a.lo -= 0.5;
    a.hi += 0.5;
  }
  a.step = std::max(1.0, nice_step(a.hi - a.lo, target));
  for (double t = std::ceil(a.lo / a.step) * a.step; t <= a.hi + 1e-9; t += a.step)
    a.ticks.push_back(t);
  return a;
}

// Enough decimals to tell the ticks `step` apart, and no more.
std::string tick_label(double v, double step) {
  if (v == 0) return "0";
  const double magnitude = std::max(std::abs(v), step);
  if (magnitude >= 1e6 || step < 1e-4) {
    const int digits =
        std::clamp(static_cast<int>(std::ceil(std::log10(magnitude / step))) + 1, 1, 15);
    return fmt::format("{:.{}g}", v, digits);
  }
  const int decimals = std::clamp(static_cast<int>(-std::floor(std::log10(step) + 1e-9)), 0, 6);
  return fmt::format("{:.{}f}", v, decimals);
}

// --- training curves ------------------------------------------------------------------------

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

void draw_dashed(cv::Mat& img, cv::Point2d a, cv::Point2d b, cv::Scalar colour, int thickness) {
  const double length = cv::norm(b - a);
  constexpr double dash = 7, gap = 5;
  for (double s = 0; s < length; s += dash + gap) {
    const cv::Point2d p = a + (b - a) * (s / length);
    const cv::Point2d q = a + (b - a) * (std::min(s + dash, length) / length);
    cv::line(img, p, q, colour, thickness, cv::LINE_AA);
  }
}

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

void write_png(const cv::Mat& img, const std::filesystem::path& png) {
  std::vector<uchar> bytes;
  if (!cv::imencode(".png", img, bytes))
    throw Error(fmt::format("plot '{}': PNG encoding failed", png.string()));
  write_file_atomically(
      png, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

// --- confusion matrix -----------------------------------------------------------------------

// matplotlib's "Blues": t = 0 almost white, t = 1 dark blue.
cv::Scalar blues(double t) {
  static constexpr std::array<Rgb, 9> kStops = {{{247, 251, 255},
                                                 {222, 235, 247},
                                                 {198, 219, 239},
                                                 {158, 202, 225},
                                                 {107, 174, 214},
                                                 {66, 146, 198},
                                                 {33, 113, 181},
                                                 {8, 81, 156},
                                                 {8, 48, 107}}};
  const double u = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0) * (kStops.size() - 1);
  const size_t i = std::min(kStops.size() - 2, static_cast<size_t>(u));
  const double f = u - static_cast<double>(i);
  const Rgb a = kStops[i], b = kStops[i + 1];
  auto mix = [f](std::uint8_t x, std::uint8_t y) { return x + (y - x) * f; };
  return {mix(a.b, b.b), mix(a.g, b.g), mix(a.r, b.r)};
}

constexpr int kMaxNameWidth = 220;  // names wider than this are shortened around "..."
constexpr int kPad = 20;            // outer margin
constexpr int kTitleBand = 64;      // from the top of the content to the matrix
constexpr int kAxisTitleBand = 28;  // "true" / "predicted"
constexpr int kNameGap = 8;         // between the matrix and the names
constexpr int kBarGap = 24, kBarWidth = 18, kBarLabels = 56;

// The confusion picture's geometry and the names as drawn.
struct ConfusionGeometry {
  ConfusionLayout layout;
  Font name_font;
  int name_every = 1;              // every k-th name is written
  int name_width = 0;              // the widest written name
  std::vector<std::string> names;  // ASCII, shortened
};

ConfusionGeometry confusion_geometry(int classes, const std::vector<std::string>& class_names) {
  if (classes < 1 || classes > kMaxPlotClasses)
    throw Error(
        fmt::format("confusion matrix of {} classes: can draw 1 to {}", classes, kMaxPlotClasses));
  if (!class_names.empty() && class_names.size() != static_cast<size_t>(classes))
    throw Error(
        fmt::format("confusion matrix of {} classes, {} class names", classes, class_names.size()));
  ConfusionGeometry g;
  const int cell = classes <= 50 ? std::clamp(640 / classes, 28, 64) : std::max(1, 1400 / classes);
  g.name_font = {cv::FONT_HERSHEY_SIMPLEX, cell >= 40 ? 0.55 : cell >= 24 ? 0.45 : 0.35, 1};
  g.name_every = std::max(1, (12 + cell - 1) / cell);
  for (int c = 0; c < classes; ++c) {
    const std::string raw =
        class_names.empty() ? std::to_string(c) : ascii_for_hershey(class_names[c]);
    g.names.push_back(fit_width(raw, g.name_font, kMaxNameWidth));
    if (c % g.name_every == 0)
      g.name_width = std::max(g.name_width, text_size(g.names.back(), g.name_font).width);
  }
  const int matrix = cell * classes;
  const int matrix_x = kPad + kAxisTitleBand + g.name_width + kNameGap;
  const int width = matrix_x + matrix + kBarGap + kBarWidth + kBarLabels + kPad;
  const int height =
      kPad + kTitleBand + matrix + kNameGap + g.name_width + 8 + kAxisTitleBand + kPad;
  ConfusionLayout& l = g.layout;
  l.width = std::max(700, width);
  l.height = std::max(700, height);
  l.cell = cell;
  l.matrix_x = matrix_x + (l.width - width) / 2;
  l.matrix_y = kPad + kTitleBand + (l.height - height) / 2;
  return g;
}

// The ways of writing a count, longest first: 12345, 12.3k, 12k.
std::vector<std::string> count_texts(std::int64_t n) {
  std::vector<std::string> out{fmt::format("{}", n)};
  const double v = static_cast<double>(n);
  for (const auto& [unit, suffix] : {std::pair{1e3, "k"}, {1e6, "M"}, {1e9, "G"}, {1e12, "T"}})
    if (std::abs(v) >= unit && std::abs(v) < 1000 * unit) {
      out.push_back(fmt::format("{:.1f}{}", v / unit, suffix));
      out.push_back(fmt::format("{:.0f}{}", v / unit, suffix));
    }
  return out;
}

bool fits_cell(const std::string& s, const Font& f, int cell) {
  const cv::Size size = text_size(s, f);
  return size.width <= cell - 6 && size.height <= cell - 8;
}

// The font of the counts: the largest that writes the widest count in full, else the largest
// that writes three digits, else one digit; none (false) for cells too small for text.
std::pair<Font, bool> count_font(const ConfusionMatrix& cm, int cell) {
  std::int64_t widest = 0;
  for (std::int64_t n : cm.counts) widest = std::max(widest, std::abs(n));
  for (const std::string& s : {fmt::format("{}", widest), std::string("888"), std::string("8")})
    for (double scale : {0.55, 0.5, 0.45, 0.4, 0.35, 0.3}) {
      const Font f{cv::FONT_HERSHEY_SIMPLEX, scale, 1};
      if (fits_cell(s, f, cell)) return {f, true};
    }
  return {Font{}, false};
}

}  // namespace

std::string ascii_for_hershey(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool after_high = false;  // the previous byte was 0x80..0xFF
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x80 && c < 0xC0 && after_high) continue;  // a UTF-8 continuation byte
    after_high = c >= 0x80;
    out += c >= 0x20 && c < 0x7F ? ch : '?';
  }
  return out;
}

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

ConfusionLayout confusion_layout(int classes, const std::vector<std::string>& class_names) {
  return confusion_geometry(classes, class_names).layout;
}

void plot_confusion_matrix(const ConfusionMatrix& cm, const std::vector<std::string>& class_names,
                           const std::filesystem::path& png, const std::string& title) {
  const ConfusionGeometry g = confusion_geometry(cm.classes, class_names);
  const int k = cm.classes;
  if (cm.counts.size() != static_cast<size_t>(k) * k)
    throw Error(fmt::format("confusion matrix of {} classes holds {} counts, want {}", k,
                            cm.counts.size(), static_cast<size_t>(k) * k));
  const ConfusionLayout& l = g.layout;
  cv::Mat img(l.height, l.width, CV_8UC3, kWhite);
  const int cell = l.cell, size = cell * k;
  const cv::Rect matrix(l.matrix_x, l.matrix_y, size, size);

  // title with the accuracy
  std::int64_t total = 0, hits = 0;
  for (int t = 0; t < k; ++t)
    for (int p = 0; p < k; ++p) (t == p ? hits : total) += cm.at(t, p);
  total += hits;
  const std::string accuracy =
      total > 0
          ? fmt::format("accuracy {:.2f}% ({} of {})",
                        100.0 * static_cast<double>(hits) / static_cast<double>(total), hits, total)
          : std::string("accuracy n/a (no samples)");
  const std::string heading =
      title.empty() ? accuracy : ascii_for_hershey(title) + "  -  " + accuracy;
  draw_text(img, fit_width(heading, kTitleFont, l.width - 2 * kPad),
            {l.width / 2, l.matrix_y - kTitleBand + 4}, kTitleFont, kInk, Align::centre,
            Align::start);

  // cells, shaded by their share of the row
  const auto [digits_font, any_counts] = count_font(cm, cell);
  for (int t = 0; t < k; ++t) {
    std::int64_t row = 0;
    for (int p = 0; p < k; ++p) row += std::max<std::int64_t>(0, cm.at(t, p));
    for (int p = 0; p < k; ++p) {
      const std::int64_t n = cm.at(t, p);
      const double share =
          row > 0 ? static_cast<double>(std::max<std::int64_t>(0, n)) / static_cast<double>(row)
                  : 0.0;
      const cv::Rect r(matrix.x + p * cell, matrix.y + t * cell, cell, cell);
      cv::rectangle(img, r, blues(share), cv::FILLED);
      if (!any_counts) continue;
      const auto texts = count_texts(n);
      // digits_font captured by copy: clang < 16 cannot capture a structured binding.
      const auto s = std::find_if(
          texts.begin(), texts.end(),
          [&, font = digits_font](const std::string& t) { return fits_cell(t, font, cell); });
      if (s == texts.end()) continue;
      const cv::Scalar ink = share > 0.5 ? kWhite : n == 0 ? kFaintInk : kInk;
      draw_text(img, *s, {r.x + cell / 2, r.y + cell / 2}, digits_font, ink, Align::centre,
                Align::centre);
    }
  }
  if (cell >= 8)
    for (int i = 1; i < k; ++i) {
      cv::line(img, {matrix.x + i * cell, matrix.y}, {matrix.x + i * cell, matrix.y + size - 1},
               kGrid, 1);
      cv::line(img, {matrix.x, matrix.y + i * cell}, {matrix.x + size - 1, matrix.y + i * cell},
               kGrid, 1);
    }
  cv::rectangle(img, matrix, kFrame, 1);

  // names: "true" down the left, "predicted" along the bottom (read upwards)
  for (int c = 0; c < k; c += g.name_every) {
    const int centre = c * cell + cell / 2;
    draw_text(img, g.names[c], {matrix.x - kNameGap, matrix.y + centre}, g.name_font, kInk,
              Align::end, Align::centre);
    draw_text_upwards(img, g.names[c], {matrix.x + centre, matrix.y + size + kNameGap}, g.name_font,
                      Align::start);
  }
  draw_text_upwards(img, "true",
                    {matrix.x - kNameGap - g.name_width - kAxisTitleBand / 2, matrix.y + size / 2},
                    kAxisTitleFont, Align::centre);
  draw_text(img, "predicted", {matrix.x + size / 2, matrix.y + size + kNameGap + g.name_width + 8},
            kAxisTitleFont, kInk, Align::centre, Align::start);

  // colour bar: share of the row, 0% at the bottom
  const cv::Rect bar(matrix.x + size + kBarGap, matrix.y, kBarWidth, std::max(size, 100));
  for (int y = 0; y < bar.height; ++y)
    cv::line(img, {bar.x, bar.y + y}, {bar.x + bar.width - 1, bar.y + y},
             blues(1.0 - static_cast<double>(y) / std::max(1, bar.height - 1)), 1);
  cv::rectangle(img, bar, kFrame, 1);
  for (int pct = 0; pct <= 100; pct += 25) {
    const int y = bar.y + bar.height - 1 - (bar.height - 1) * pct / 100;
    cv::line(img, {bar.x + bar.width, y}, {bar.x + bar.width + 4, y}, kFrame, 1);
    draw_text(img, fmt::format("{}%", pct), {bar.x + bar.width + 7, y}, kTickFont, kInk,
              Align::start, Align::centre);
  }
  draw_text(img, "row share", {bar.x + bar.width / 2, bar.y - 14}, kTickFont, kInk, Align::centre,
            Align::end);
  write_png(img, png);
}

}  // namespace tl
