// One writer per output file, whatever name it is reached by: an exclusive lock on
// "<resolved output>.lock" holding the writer's pid (the output's symlinks resolved first), and
// an exclusive flock on the output file itself (its inode: a hard link or any other alias meets
// it). A second writer is refused at once, naming the first.
//
//   tl::OutputLock lock("out.h5");   // throws Error naming the pid holding it
//   ... create or open out.h5 ...
//   lock.hold("out.h5");             // a file created after the lock: hold its inode too
#pragma once

#include <filesystem>
#include <vector>

namespace tl {

// `p` made absolute with every symlink followed, also a dangling last component's (so that
// "link.h5 -> a.h5" names a.h5 before it exists).
std::filesystem::path resolve_output_path(const std::filesystem::path& p);

class OutputLock {
 public:
  // Throws Error naming the output and the pid of the process that holds it.
  explicit OutputLock(const std::filesystem::path& output);
  ~OutputLock();  // unlocks and removes the lock file
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

  // Also locks the file `file` itself (a regular file that exists): another writer reaching
  // it by another name is refused. Throws Error naming it when another process holds it.
  void hold(const std::filesystem::path& file);

 private:
  void release() noexcept;
  std::filesystem::path output_, path_;
  int fd_ = -1;
  std::vector<int> held_;  // flocked outputs
};

}  // namespace tl
