// tl-extract --slurm-array: the array job's sbatch script and its submission.
#include "tl/slurm_array.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include <fmt/format.h>

#include "tl/error.hpp"
#include "tl/merge.hpp"

namespace fs = std::filesystem;

namespace tl {

std::string shell_quote(std::string_view text) {
  const bool plain = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("_./:=@%+,-", c);
  });
  if (plain) return std::string(text);
  std::string q = "'";
  for (char c : text) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::vector<std::string> extract_args(const ExtractConfig& c) {
  std::vector<std::string> a{"--images", c.images.string()};
  if (!c.list.empty()) a.insert(a.end(), {"--list", c.list.string()});
  if (!c.weights.empty()) a.insert(a.end(), {"--weights", c.weights});
  a.insert(a.end(), {"--layer",      c.net.to,
                     "--size",       fmt::format("{}x{}", c.net.height, c.net.width),
                     "--preprocess", std::string(to_string(c.image.preprocess)),
                     "--resize",     std::string(to_string(c.image.resize)),
                     "--pool",       std::string(to_string(c.pool)),
                     "--dtype",      std::string(to_string(c.dtype)),
                     "--precision",  std::string(to_string(c.net.precision)),
                     "--algo",       std::string(to_string(c.net.algo)),
                     "--batch",      std::to_string(c.net.batch),
                     "--schedule",   std::string(to_string(c.schedule))});
  if (c.net.precision == Precision::int8) {  // every task must use the same ranges
    if (!c.calibration_file.empty())
      a.insert(a.end(), {"--calibration", c.calibration_file.string()});
    else
      a.insert(a.end(), {"--calibrate", std::to_string(c.calibrate)});
  }
  if (const AugmentOptions& g = c.augment; g.enabled()) {  // every task draws the same copies
    auto num = [](double v) { return fmt::format("{}", v); };
    a.insert(a.end(), {"--augment", std::to_string(g.copies), "--seed", std::to_string(g.seed)});
    if (g.rotation > 0) a.insert(a.end(), {"--rotation", num(g.rotation)});
    if (g.width_shift > 0) a.insert(a.end(), {"--width-shift", num(g.width_shift)});
    if (g.height_shift > 0) a.insert(a.end(), {"--height-shift", num(g.height_shift)});
    if (g.shear > 0) a.insert(a.end(), {"--shear", num(g.shear)});
    if (g.zoom_lo != 1 || g.zoom_hi != 1)
      a.insert(a.end(), {"--zoom", fmt::format("{},{}", g.zoom_lo, g.zoom_hi)});
    if (g.horizontal_flip) a.push_back("--horizontal-flip");
    if (g.vertical_flip) a.push_back("--vertical-flip");
    if (g.brightness())
      a.insert(a.end(), {"--brightness", fmt::format("{},{}", g.brightness_lo, g.brightness_hi)});
    if (g.channel_shift > 0) a.insert(a.end(), {"--channel-shift", num(g.channel_shift)});
    a.insert(a.end(), {"--fill", std::string(to_string(g.fill))});
    if (g.fill == FillMode::constant) a.insert(a.end(), {"--fill-value", num(g.fill_value)});
    a.insert(a.end(), {"--augment-at", std::string(to_string(g.at))});
  }
  if (c.strict) a.push_back("--strict");
  if (c.overwrite) a.push_back("--overwrite");
  if (c.quiet) a.push_back("--quiet");
  return a;
}

std::string slurm_array_script(const ExtractConfig& cfg, const SlurmArray& s) {
  if (s.tasks < 1)
    throw UsageError(fmt::format("--slurm-array: {} (the number of tasks, at least 1)", s.tasks));
  if (s.cpus_per_task < 1)
    throw UsageError(fmt::format("--cpus-per-task: {} (must be at least 1)", s.cpus_per_task));
  if (cfg.images.empty()) throw UsageError("--images: required (the image folder)");
  if (cfg.output.empty()) throw UsageError("--output: required (the .h5 file to write)");
  const fs::path folder = shard_folder_of(cfg.output);
  const fs::path workdir = s.workdir.empty() ? fs::current_path() : s.workdir;
  const int n = s.tasks;
  std::ostringstream o;
  o << "#!/bin/bash\n"
    << fmt::format("# tl-extract --slurm-array {0}: task K extracts slice K of {0} of the images\n",
                   n)
    << fmt::format("# into {}/shard-K-of-{}.h5 (written as .partial, renamed when complete).\n",
                   folder.string(), n)
    << "# Rerunning the array (or one task: sbatch --array=K THIS_SCRIPT) redoes only the\n"
    << "# unfinished shards. When every task is done:\n"
    << fmt::format("#   tl-merge {} --output {}\n", folder.string(), cfg.output.string())
    << fmt::format("#SBATCH --job-name={}\n", s.job_name)
    << fmt::format("#SBATCH --array=0-{}\n", n - 1)
    << fmt::format("#SBATCH --cpus-per-task={}\n", s.cpus_per_task)
    << fmt::format("#SBATCH --chdir={}\n", workdir.string())
    << fmt::format("#SBATCH --output={}/slurm-%A_%a.log\n", folder.string());
  for (const auto& a : s.sbatch_args) o << "#SBATCH " << a << "\n";
  o << "set -uo pipefail\n"
    << "k=${SLURM_ARRAY_TASK_ID:?not a Slurm array task}\n"
    << "mkdir -p " << shell_quote(folder.string()) << "\n"
    << (s.tool.empty() ? std::string("tl-extract") : shell_quote(s.tool.string()));
  const auto args = extract_args(cfg);
  for (std::size_t i = 0; i < args.size(); ++i)  // an option and its value on one line
    o << (args[i].starts_with("--") ? " \\\n  " : " ") << shell_quote(args[i]);
  o << fmt::format(" \\\n  --shard \"$k/{}\"", n)
    << fmt::format(" --output {}/shard-\"$k\"-of-{}.h5", shell_quote(folder.string()), n)
    << " --threads \"${SLURM_CPUS_PER_TASK:-0}\"\n"
    << "rc=$?\n";
  if (!cfg.strict)
    o << "# 3: finished, some images skipped (listed in the shard's /failed): a success here\n"
      << "if [ \"$rc\" -eq 3 ]; then rc=0; fi\n";
  o << "exit \"$rc\"\n";
  return o.str();
}

namespace {

bool on_path(const std::string& tool) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "");
  for (std::string d; std::getline(dirs, d, ':');)
    if (!d.empty() && ::access((fs::path(d) / tool).c_str(), X_OK) == 0) return true;
  return false;
}

}  // namespace

int submit_slurm_array(const std::string& script, const fs::path& shard_folder) {
  if (!on_path("sbatch"))
    throw Error(
        "--slurm-array: sbatch not found on PATH (is Slurm installed here? --dry-run prints "
        "the script instead)");
  std::error_code ec;
  fs::create_directories(shard_folder, ec);
  if (ec)
    throw Error(fmt::format("cannot create the shard folder '{}': {}", shard_folder.string(),
                            ec.message()));
  std::fflush(stdout);
  // An sbatch that exits early must not kill us with SIGPIPE: its status says what happened.
  struct sigaction ignore {
  }, old{};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ignore, &old);
  FILE* p = ::popen("sbatch", "w");
  if (!p) {
    ::sigaction(SIGPIPE, &old, nullptr);
    throw Error(fmt::format("--slurm-array: cannot start sbatch: {}", std::strerror(errno)));
  }
  const bool wrote = std::fwrite(script.data(), 1, script.size(), p) == script.size();
  const int status = ::pclose(p);
  ::sigaction(SIGPIPE, &old, nullptr);
  if (!wrote) throw Error("--slurm-array: could not pipe the script into sbatch");
  if (status == -1) throw Error(fmt::format("--slurm-array: sbatch: {}", std::strerror(errno)));
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace tl
