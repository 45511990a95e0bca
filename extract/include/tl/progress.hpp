// Progress on a stream: a bar with images/s and ETA on a terminal, a plain line every few
// seconds otherwise (logs of batch jobs), nothing when quiet.
//
//   tl::Progress p(std::cerr, /*total=*/1000, /*already_done=*/200, /*quiet=*/false);
//   p.update(/*done=*/450, /*failed=*/2);       // redraws at most a few times a second
//   p.note("resumed from row 200");             // a line of its own, the bar kept
//   p.finish();
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace tl {

class Progress {
 public:
  Progress(std::ostream& out, std::int64_t total, std::int64_t already_done, bool quiet);
  // `done` counts list entries (images used or failed) including already_done.
  void update(std::int64_t done, std::int64_t failed);
  // A line of its own (a skipped image, a warning), even while the bar is drawn.
  void note(const std::string& line);
  // Ends the bar's line on a terminal.
  void finish();
  double seconds() const;

 private:
  std::ostream& out_;
  std::int64_t total_, start_done_;
  bool quiet_, tty_;
  std::chrono::steady_clock::time_point t0_, last_;
  bool drawn_ = false;
};

// "1h02m", "3m05s", "42s"
std::string format_duration(double seconds);

}  // namespace tl
