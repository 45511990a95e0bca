#include "tl/output_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "tl/error.hpp"

namespace tl {

OutputLock::OutputLock(const std::filesystem::path& output) : path_(output.string() + ".lock") {
  for (int attempt = 0; attempt < 5; ++attempt) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0)
      throw Error(
          fmt::format("cannot create lock file '{}': {}", path_.string(), std::strerror(errno)));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      std::string pid;
      std::ifstream(path_) >> pid;
      ::close(fd_);
      fd_ = -1;
      throw Error(
          fmt::format("'{}' is being written by another process (pid {}, lock file '{}'); "
                      "wait for it or stop it",
                      output.string(), pid.empty() ? "?" : pid, path_.string()));
    }
    // The holder before us may have removed the file between our open and flock: make sure
    // the lock is on the file that the path names now.
    struct stat a {
    }, b{};
    if (::fstat(fd_, &a) == 0 && ::stat(path_.c_str(), &b) == 0 && a.st_ino == b.st_ino &&
        a.st_dev == b.st_dev) {
      const std::string pid = std::to_string(::getpid()) + "\n";
      if (::ftruncate(fd_, 0) != 0 || ::write(fd_, pid.data(), pid.size()) < 0) {
        // The lock holds without the pid; only the message of a second writer suffers.
      }
      return;
    }
    ::close(fd_);
    fd_ = -1;
  }
  throw Error(fmt::format("cannot lock '{}': the lock file keeps changing", path_.string()));
}

OutputLock::~OutputLock() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());
  ::close(fd_);
}

}  // namespace tl
