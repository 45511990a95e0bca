// One writer per output file: an exclusive lock on "<output>.lock" holding the writer's pid.
// A second tl-extract on the same output is refused at once, naming the first.
#pragma once

#include <filesystem>

namespace tl {

class OutputLock {
 public:
  // Throws Error naming the output and the pid of the process that holds it.
  explicit OutputLock(const std::filesystem::path& output);
  ~OutputLock();  // unlocks and removes the lock file
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

}  // namespace tl
