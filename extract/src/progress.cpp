#include "tl/progress.hpp"

#include <unistd.h>

#include <cmath>
#include <ostream>

#include <fmt/format.h>

namespace tl {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const long t = std::lround(s);
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

Progress::Progress(std::ostream& out, std::int64_t total, std::int64_t already_done, bool quiet)
    : out_(out),
      total_(total),
      start_done_(already_done),
      quiet_(quiet),
      tty_(::isatty(STDERR_FILENO) == 1),
      t0_(std::chrono::steady_clock::now()),
      last_(t0_) {}

double Progress::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}

void Progress::update(std::int64_t done, std::int64_t failed) {
  if (quiet_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_).count();
  const bool end = done >= total_;
  if (since < (tty_ ? 0.2 : 5.0) && !end) return;
  last_ = now;
  const double s = seconds();
  const double rate = s > 0 ? (done - start_done_) / s : 0;
  const double eta = rate > 0 ? (total_ - done) / rate : NAN;
  const double frac = total_ > 0 ? static_cast<double>(done) / total_ : 1;
  const std::string fail = failed ? fmt::format(", {} failed", failed) : "";
  if (tty_) {
    const int width = 30, fill = static_cast<int>(frac * width);
    out_ << fmt::format("\r[{}{}] {:5.1f}% {}/{} {:.1f} img/s ETA {}{}   ", std::string(fill, '#'),
                        std::string(width - fill, '.'), 100 * frac, done, total_, rate,
                        format_duration(eta), fail)
         << std::flush;
    drawn_ = true;
  } else {
    out_ << fmt::format("progress: {}/{} ({:.1f}%), {:.1f} img/s, ETA {}{}\n", done, total_,
                        100 * frac, rate, format_duration(eta), fail)
         << std::flush;
  }
}

void Progress::note(const std::string& line) {
  if (drawn_) out_ << "\r\033[K";  // clear the bar; the next update redraws it
  drawn_ = false;
  out_ << line << "\n" << std::flush;
}

void Progress::finish() {
  if (drawn_) out_ << "\n";
  drawn_ = false;
}

}  // namespace tl
