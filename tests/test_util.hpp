// Test helpers shared by every test binary: temporary folders, files, and error checks.
//
//   tl::testing::TempDir dir;
//   EXPECT_HAS(tl::testing::error_of([&] { tl::load_weights((dir / "x.h5").string()); }), "x.h5");
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tl/error.hpp"
#include "tl/machine.hpp"

extern char** environ;

namespace tl::testing {

// EXPECT_HAS(message, "part"): the message contains the part (printed in full when not).
inline ::testing::AssertionResult has_substr(const char* m_expr, const char*, const std::string& m,
                                             const std::string& part) {
  if (m.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << m_expr << " is \"" << m << "\"\n  which lacks \"" << part << "\"";
}
#define EXPECT_HAS(message, part) EXPECT_PRED_FORMAT2(::tl::testing::has_substr, message, part)

// Skips the test where oneDNN has no native kernel for precision `p` (algorithm `a` for f32),
// saying which ISA and why: a test that cannot run here is skipped aloud, never passed.
#define TL_SKIP_UNLESS_NATIVE(p, a)                                                      \
  do {                                                                                   \
    const ::tl::KernelProbe& tl_k_ = ::tl::machine().kernel(p, a);                       \
    if (!tl_k_.native)                                                                   \
      GTEST_SKIP() << ::tl::to_string(p) << " needs a native oneDNN kernel; oneDNN ISA " \
                   << ::tl::machine().isa << " has none (" << tl_k_.impl << ")";         \
  } while (0)

// Runs f, which must throw tl::Error (a UsageError counts); returns the message.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no tl::Error thrown";
  return "";
}

// A fresh folder under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "tltest-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline void write_text(const std::filesystem::path& p, std::string_view text) {
  std::ofstream(p, std::ios::binary).write(text.data(), static_cast<std::streamsize>(text.size()));
}

inline std::string read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

struct ToolRun {
  int code = -1;    // exit status; 128 + signal when killed
  std::string out;  // stdout and stderr, interleaved
};

// Runs `args` (args[0] a path; no shell), capturing stdout and stderr together.
inline ToolRun run_program(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  ToolRun r;
  if (rc != 0) {
    close(fds[0]);
    ADD_FAILURE() << "cannot run " << argv[0] << ": " << std::strerror(rc);
    return r;
  }
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    r.out.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// Starts a program (args[0] is its path) with its stderr sent to /dev/null; returns
// posix_spawn's result and the child's pid.
inline int spawn_quiet(const std::vector<std::string>& args, pid_t& pid) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  const int rc = posix_spawn(&pid, args[0].c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc;
}

// Runs `args` (args[0] a path) with a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored): writes
// past it fail with EFBIG, as on a full disk. stderr goes to `stderr_to` ("" = /dev/null).
// Returns the exit status (128 + the signal when killed).
inline int run_with_file_limit(const std::vector<std::string>& args, rlim_t bytes,
                               const std::filesystem::path& stderr_to = {}) {
  const pid_t pid = fork();
  if (pid == 0) {
    const rlimit lim{bytes, bytes};
    setrlimit(RLIMIT_FSIZE, &lim);
    signal(SIGXFSZ, SIG_IGN);
    const int fd = stderr_to.empty() ? open("/dev/null", O_WRONLY)
                                     : open(stderr_to.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(args[0].c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Resume after SIGKILL: runs `args` again and again, killing each run after a seeded random
// 30..900 ms, until `max_kills` kills (or a run ends before its kill); calls `after_kill()`
// after each kill; then runs it once more to the end. Returns the number of kills and sets
// `exit_code` to the last run's exit status.
template <class AfterKill>
int kill_at_random_then_finish(const std::vector<std::string>& args, unsigned seed, int attempts,
                               int max_kills, AfterKill after_kill, int& exit_code) {
  std::mt19937 rng(seed);
  int kills = 0, status = 0;
  pid_t pid = 0;
  for (int attempt = 0; attempt < attempts && kills < max_kills; ++attempt) {
    if (spawn_quiet(args, pid) != 0) {
      ADD_FAILURE() << "cannot run " << args[0];
      return kills;
    }
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution(30, 900)(rng)));
    if (waitpid(pid, &status, WNOHANG) == pid) break;  // finished before the kill
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    ++kills;
    after_kill();
  }
  if (spawn_quiet(args, pid) != 0) ADD_FAILURE() << "cannot run " << args[0];
  waitpid(pid, &status, 0);
  exit_code = WEXITSTATUS(status);
  return kills;
}

}  // namespace tl::testing
