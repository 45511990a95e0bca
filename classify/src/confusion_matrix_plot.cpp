// A confusion matrix as a heat map (tl/plots.hpp), drawn on the plot canvas.
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
