// Reads a possibly damaged HDF5 file first in a forked child (see hdf5_guard.hpp).
#include "tl/hdf5_guard.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "tl/error.hpp"

namespace tl {

void read_in_child_first(const std::filesystem::path& file, const std::function<void()>& read,
                         int timeout_s) {
  const pid_t pid = ::fork();
  if (pid < 0) return;  // no child to spare: read as before
  // The child's own verdicts; any other end (a signal, or a sanitizer's report turning a
  // SIGSEGV into exit 1) is a crash.
  constexpr int kRead = 0, kOrdinaryError = 97;
  if (pid == 0) {
    try {
      read();
    } catch (...) {
      ::_exit(kOrdinaryError);  // the parent's own read reports it
    }
    ::_exit(kRead);
  }
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return;
    if (std::chrono::steady_clock::now() > deadline) {  // HDF5 can loop on a damaged heap
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      throw Error(fmt::format(
          "'{}' is damaged: reading it did not finish in {} s (HDF5 1.10.8 loops on some "
          "damaged files); it was not read",
          file.string(), timeout_s));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (WIFEXITED(status) && (WEXITSTATUS(status) == kRead || WEXITSTATUS(status) == kOrdinaryError))
    return;
  throw Error(fmt::format(
      "'{}' is damaged: reading it crashes HDF5 1.10.8 ({} in a child process that read it "
      "first); it was not read here, and nothing was written",
      file.string(),
      WIFSIGNALED(status) ? std::string(::strsignal(WTERMSIG(status)))
                          : fmt::format("exit status {}", WEXITSTATUS(status))));
}

}  // namespace tl
