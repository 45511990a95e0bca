// tl-extract --slurm-array N: the sbatch script of an N-task array job, and its submission.
//
//   tl::SlurmArray a{.tasks = 8, .cpus_per_task = 16, .tool = "/opt/tlkit/bin/tl-extract"};
//   std::string script = tl::slurm_array_script(cfg, a);   // --dry-run prints this
//   int rc = tl::submit_slurm_array(script, std::cout);     // pipes it into sbatch
//
// Task K runs `tl-extract <the same options> --shard K/N --output OUT.shards/shard-K-of-N.h5
// --threads $SLURM_CPUS_PER_TASK`. A shard is written as .partial and renamed when complete,
// so a rerun of the array (or of one task: sbatch --array=K) redoes only unfinished shards.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

#include "tl/extract.hpp"

namespace tl {

struct SlurmArray {
  int tasks = 0;                         // N: the array 0..N-1
  int cpus_per_task = 8;                 // --cpus-per-task, tl-extract's --threads
  std::vector<std::string> sbatch_args;  // more sbatch options, one "#SBATCH ARG" line each
  std::string job_name = "tl-extract";
  std::filesystem::path tool;     // the tl-extract the tasks run ("" = tl-extract on PATH)
  std::filesystem::path workdir;  // the tasks' working folder ("" = the current one)
};

// The options of `cfg` as tl-extract arguments, without --output, --shard and --threads
// (which differ per task) and without --slurm-array.
std::vector<std::string> extract_args(const ExtractConfig& cfg);

// The sbatch script (UsageError naming --slurm-array / --cpus-per-task for bad values).
// Slurm's log of task K goes to OUT.shards/slurm-JOB_K.log.
std::string slurm_array_script(const ExtractConfig& cfg, const SlurmArray& array);

// Creates the shard folder, then pipes `script` into sbatch (found on PATH); sbatch's own
// output goes to stdout. Returns sbatch's exit status (with an #SBATCH --wait line: the worst
// task's). Throws Error when sbatch is not installed or cannot be started.
int submit_slurm_array(const std::string& script, const std::filesystem::path& shard_folder);

// 'text' for a POSIX shell (single quotes; ' becomes '\'').
std::string shell_quote(std::string_view text);

}  // namespace tl
