// The plots' canvas (plot_canvas.hpp) and ascii_for_hershey (tl/plots.hpp).
#include "plot_canvas.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>

#include "tl/error.hpp"
#include "tl/output_file.hpp"
#include "tl/plots.hpp"

namespace tl {
namespace canvas {

void draw_text(cv::Mat& img, const std::string& s, cv::Point at, const Font& f, cv::Scalar colour,
               Align h, Align v) {
  const cv::Size size = text_size(s, f);
  const int x = at.x - (h == Align::centre ? size.width / 2 : h == Align::end ? size.width : 0);
  const int y = at.y + (v == Align::start ? size.height : v == Align::centre ? size.height / 2 : 0);
  cv::putText(img, s, {x, y}, f.face, f.scale, colour, f.thickness, cv::LINE_AA);
}

cv::Size text_size(const std::string& s, const Font& f, int* baseline) {
  int b = 0;
  const cv::Size size = cv::getTextSize(s, f.face, f.scale, f.thickness, &b);
  if (baseline) *baseline = b;
  return size;
}

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

std::string fit_width(const std::string& s, const Font& f, int max_width) {
  if (s.empty() || text_size(s, f).width <= max_width) return s;
  for (size_t keep = s.size() - 1; keep > 0; --keep) {
    const size_t tail = keep / 3, head = keep - tail;
    std::string t = s.substr(0, head) + "..." + s.substr(s.size() - tail);
    if (text_size(t, f).width <= max_width) return t;
  }
  return "...";
}

double nice_step(double span, int target) {
  const double raw = span / std::max(target, 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / magnitude;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * magnitude;
}

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

void draw_dashed(cv::Mat& img, cv::Point2d a, cv::Point2d b, cv::Scalar colour, int thickness) {
  const double length = cv::norm(b - a);
  constexpr double dash = 7, gap = 5;
  for (double s = 0; s < length; s += dash + gap) {
    const cv::Point2d p = a + (b - a) * (s / length);
    const cv::Point2d q = a + (b - a) * (std::min(s + dash, length) / length);
    cv::line(img, p, q, colour, thickness, cv::LINE_AA);
  }
}

void write_png(const cv::Mat& img, const std::filesystem::path& png) {
  std::vector<uchar> bytes;
  if (!cv::imencode(".png", img, bytes))
    throw Error(fmt::format("plot '{}': PNG encoding failed", png.string()));
  write_file_atomically(
      png, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace canvas

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

}  // namespace tl
