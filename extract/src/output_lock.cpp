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

namespace fs = std::filesystem;

namespace tl {

fs::path resolve_output_path(const fs::path& p) {
  std::error_code ec;
  fs::path cur = fs::absolute(p, ec);
  for (int hops = 0; hops < 40 && fs::is_symlink(cur, ec); ++hops) {
    const fs::path target = fs::read_symlink(cur, ec);
    if (ec) break;
    cur = target.is_absolute() ? target : cur.parent_path() / target;
  }
  const fs::path canon = fs::weakly_canonical(cur, ec);
  return ec ? cur.lexically_normal() : canon;
}

OutputLock::OutputLock(const fs::path& output)
    : output_(output), path_(resolve_output_path(output).string() + ".lock") {
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
      try {
        hold(output);
      } catch (...) {
        release();
        throw;
      }
      return;
    }
    ::close(fd_);
    fd_ = -1;
  }
  throw Error(fmt::format("cannot lock '{}': the lock file keeps changing", path_.string()));
}

void OutputLock::hold(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return;  // nothing to hold yet
  for (const int fd : held_) {  // already held by this lock (two flocks of one process clash)
    struct stat h {};
    if (::fstat(fd, &h) == 0 && h.st_dev == st.st_dev && h.st_ino == st.st_ino) return;
  }
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return;  // unreadable: the writer's own open will say why
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    throw Error(fmt::format(
        "'{}' is being written by another process under another name (a symlink or hard link "
        "to the same file); wait for it or stop it",
        file.string()));
  }
  held_.push_back(fd);
}

void OutputLock::release() noexcept {
  for (const int fd : held_) ::close(fd);
  held_.clear();
  if (fd_ < 0) return;
  ::unlink(path_.c_str());
  ::close(fd_);
  fd_ = -1;
}

OutputLock::~OutputLock() {
  release();
}

}  // namespace tl
