// Slurm scale-out without Slurm: shards written all-or-nothing (.partial, renamed when
// complete), killed shard tasks that resume, tl-merge (virtual and --copy) equal to a
// single-machine run row for row, every refusal of a bad shard folder, tl-train's inputs (a
// shard folder, a merged file), and the --slurm-array --dry-run script.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include <gtest/gtest.h>

#include "extract_fixtures.hpp"
#include "image_fixtures.hpp"
#include "tl/error.hpp"
#include "tl/extract.hpp"
#include "tl/feature_file.hpp"
#include "tl/feature_file_source.hpp"
#include "tl/machine.hpp"
#include "tl/merge.hpp"
#include "tl/output_lock.hpp"
#include "tl/slurm_array.hpp"

extern char** environ;

namespace tl {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

using testing::Contents;
using testing::read_all;
using testing::run;
using testing::small_config;

bool is_virtual(const fs::path& p) {
  const auto f = h5::File::open(p);
  const auto d = f.open_dataset("features");
  const h5::PropList dcpl(h5::call(d.where(), "H5Dget_create_plist", H5Dget_create_plist, d.id()));
  return h5::call(d.where(), "H5Pget_layout", H5Pget_layout, dcpl.id()) == H5D_VIRTUAL;
}

// 3 classes x 5 images plus a broken one, its single-machine run, and its 4 shards.
struct Fixture {
  TempDir d;
  fs::path images = d / "imgs", whole = d / "whole.h5", shards = d / "feats.shards";
  Fixture() {
    testing::make_class_folders(images, {"a", "b", "c"}, 5);
    testing::write_text(images / "b" / "img2x.png", "broken");
    run(small_config(images, whole));
    fs::create_directories(shards);
    for (int k = 0; k < 4; ++k) run(small_config(images, shards / shard_file_name({k, 4}), {k, 4}));
  }
  // A copy of the shard folder to spoil.
  fs::path copy(const std::string& name) const {
    const fs::path to = d / name;
    fs::copy(shards, to, fs::copy_options::recursive);
    return to;
  }
};

void expect_same_rows(const Contents& got, const Contents& want) {
  EXPECT_EQ(got.features, want.features);
  EXPECT_EQ(got.labels, want.labels);
  EXPECT_EQ(got.paths, want.paths);
  EXPECT_EQ(got.classes, want.classes);
  EXPECT_EQ(got.failed, want.failed);
  EXPECT_EQ(got.meta.rows_done, want.meta.rows_done);
  EXPECT_EQ(got.meta.entries_done, want.meta.entries_done);
  EXPECT_EQ(got.meta.entries_total, want.meta.entries_total);
  EXPECT_EQ(got.meta.failed_count, want.meta.failed_count);
  EXPECT_TRUE(got.meta.complete);
  EXPECT_EQ(got.meta.shard_index, 0);
  EXPECT_EQ(got.meta.shard_count, 1);
  EXPECT_EQ(got.meta.difference(want.meta), "");
}

// ---- names ---------------------------------------------------------------------------------

TEST(ShardNames, FolderFileNamesAndParsing) {
  EXPECT_EQ(shard_folder_of("out/feats.h5"), fs::path("out/feats.shards"));
  EXPECT_EQ(shard_folder_of("feats"), fs::path("feats.shards"));
  EXPECT_EQ(shard_file_name({3, 8}), "shard-3-of-8.h5");
  EXPECT_EQ(partial_path_of("a/b.h5"), fs::path("a/b.h5.partial"));
  EXPECT_EQ(parse_shard_file_name("shard-3-of-8.h5"), (Shard{3, 8}));
  for (const char* bad : {"shard-8-of-8.h5", "shard-3.h5", "shard-3-of-8.h5.partial",
                          "shard--1-of-8.h5", "shard-3-of-0.h5", "shard-a-of-8.h5", "x.h5"})
    EXPECT_FALSE(parse_shard_file_name(bad)) << bad;
}

// ---- all-or-nothing shards -----------------------------------------------------------------

TEST(ShardFiles, WrittenAsPartialRenamedWhenCompleteRerunDoesNothing) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a"}, 6);
  const auto cfg = small_config(d / "imgs", d / "s.h5", {1, 2});
  std::atomic<bool> stop{true};  // stops before the first commit: the .partial only
  std::ostringstream log;
  const auto s = run_extract(cfg, log, &stop);
  EXPECT_FALSE(s.complete);
  EXPECT_EQ(s.file, partial_path_of(cfg.output));
  EXPECT_FALSE(fs::exists(cfg.output));
  EXPECT_TRUE(fs::exists(partial_path_of(cfg.output)));
  const auto done = run(cfg);  // resumes the .partial, then renames it
  EXPECT_TRUE(done.complete);
  EXPECT_EQ(done.file, cfg.output);
  EXPECT_TRUE(fs::exists(cfg.output));
  EXPECT_FALSE(fs::exists(partial_path_of(cfg.output)));
  EXPECT_FALSE(fs::exists(d / "s.h5.lock"));
  const auto stamp = fs::last_write_time(cfg.output);
  std::ostringstream again_log;
  const auto again = run_extract(cfg, again_log);
  EXPECT_TRUE(again.already_complete);
  EXPECT_HAS(again_log.str(), "already complete");
  EXPECT_EQ(fs::last_write_time(cfg.output), stamp);
  // A single-machine run (N = 1) still writes its output in place.
  const auto whole = small_config(d / "imgs", d / "w.h5");
  EXPECT_EQ(run_extract(whole, log, &stop).file, whole.output);
  EXPECT_TRUE(fs::exists(whole.output));
}

TEST(ShardFiles, SecondWriterOfTheSameShardIsRefusedByTheLock) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a"}, 2);
  const auto cfg = small_config(d / "imgs", d / "shard-0-of-2.h5", {0, 2});
  const OutputLock held(cfg.output);  // the first task, still writing
  EXPECT_HAS(testing::error_of([&] { run(cfg); }),
             "is being written by another process (pid " + std::to_string(getpid()));
  EXPECT_FALSE(fs::exists(partial_path_of(cfg.output)));
  EXPECT_FALSE(fs::exists(cfg.output));
}

pid_t spawn(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0].c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

TEST(ShardFiles, KilledTaskLeavesNoFinalFileAndItsRerunResumes) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a", "b"}, 30, 120, 140);
  const fs::path out = d / "shard-1-of-2.h5";
  const std::vector<std::string> args{TL_EXTRACT_BIN,
                                      "--images",
                                      (d / "imgs").string(),
                                      "--output",
                                      out.string(),
                                      "--weights",
                                      "random:2",
                                      "--size",
                                      "128",
                                      "--batch",
                                      "2",
                                      "--threads",
                                      "2",
                                      "--shard",
                                      "1/2",
                                      "--quiet"};
  int killed = 0;
  for (int attempt = 0; attempt < 5 && killed == 0; ++attempt) {
    fs::remove(partial_path_of(out));
    const pid_t pid = spawn(args);
    ASSERT_GT(pid, 0);
    int status = 0;
    // Kill once the .partial holds a committed batch or two.
    for (int i = 0; i < 400 && waitpid(pid, &status, WNOHANG) == 0; ++i) {
      if (fs::exists(partial_path_of(out))) {
        std::this_thread::sleep_for(std::chrono::milliseconds(150));
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        killed = WIFSIGNALED(status);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!killed && fs::exists(out)) fs::remove(out);  // finished first: try again
  }
  ASSERT_EQ(killed, 1) << "could not kill the task mid-run";
  EXPECT_FALSE(fs::exists(out));
  ASSERT_TRUE(fs::exists(partial_path_of(out)));
  const std::int64_t committed = FeatureReader(partial_path_of(out)).meta().entries_done;
  EXPECT_LT(committed, 30);

  const pid_t pid = spawn(args);  // the resubmitted task
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(fs::exists(out));
  EXPECT_FALSE(fs::exists(partial_path_of(out)));
  auto ref = args;
  ref[4] = (d / "ref.h5").string();
  const pid_t rpid = spawn(ref);
  waitpid(rpid, &status, 0);
  const Contents got = read_all(out), want = read_all(d / "ref.h5");
  EXPECT_TRUE(got.meta.complete);
  EXPECT_EQ(got.features, want.features);
  EXPECT_EQ(got.paths, want.paths);
}

// ---- tl-merge ------------------------------------------------------------------------------

TEST(Merge, VirtualAndCopyEqualTheSingleMachineRunRowForRow) {
  Fixture fx;
  const Contents whole = read_all(fx.whole);
  ASSERT_EQ(whole.failed.size(), 1u);
  std::ostringstream log;
  const auto s = merge_shards({.shards = fx.shards, .output = fx.d / "feats.h5"}, log);
  EXPECT_EQ(s.shards, 4);
  EXPECT_EQ(s.rows, 15);
  EXPECT_EQ(s.failed, 1);
  merge_shards({.shards = fx.shards, .output = fx.d / "copy.h5", .copy = true}, log);
  EXPECT_TRUE(is_virtual(fx.d / "feats.h5"));
  EXPECT_FALSE(is_virtual(fx.d / "copy.h5"));
  expect_same_rows(read_all(fx.d / "feats.h5"), whole);
  expect_same_rows(read_all(fx.d / "copy.h5"), whole);
  EXPECT_FALSE(fs::exists(fx.d / "feats.h5.partial"));
  // An existing output is kept unless --overwrite.
  EXPECT_HAS(testing::error_of(
                 [&] { merge_shards({.shards = fx.shards, .output = fx.d / "feats.h5"}, log); }),
             "--overwrite");
  merge_shards({.shards = fx.shards, .output = fx.d / "feats.h5", .overwrite = true}, log);
  // The virtual file and its shard folder move together (sources are relative).
  fs::create_directories(fx.d / "moved");
  fs::rename(fx.d / "feats.h5", fx.d / "moved" / "feats.h5");
  fs::rename(fx.shards, fx.d / "moved" / "feats.shards");
  expect_same_rows(read_all(fx.d / "moved" / "feats.h5"), whole);
}

TEST(Merge, TrainingReadsAShardFolderAndMergedFilesAsTheWholeRun) {
  Fixture fx;
  std::ostringstream log;
  merge_shards({.shards = fx.shards, .output = fx.d / "feats.h5"}, log);
  FeatureFileSource whole({fx.whole}, 1 << 30);
  for (const fs::path& in : {fx.shards, fx.d / "feats.h5"}) {
    FeatureFileSource src({in}, 1 << 30);
    EXPECT_EQ(src.labels(), whole.labels()) << in;
    EXPECT_EQ(src.paths(), whole.paths()) << in;
    std::vector<size_t> rows(src.rows());
    for (size_t i = 0; i < rows.size(); ++i) rows[i] = i;
    std::vector<float> a(rows.size() * src.row_size()), b(a.size());
    src.read(rows, a.data());
    whole.read(rows, b.data());
    EXPECT_EQ(a, b) << in;
  }
  // Streamed (memory limit 0) reads through the virtual dataset too.
  FeatureFileSource streamed({fx.d / "feats.h5"}, 0);
  EXPECT_FALSE(streamed.in_memory());
  std::vector<size_t> rows{14, 0, 7};
  std::vector<float> a(3 * streamed.row_size()), b(a.size());
  streamed.read(rows, a.data());
  whole.read(rows, b.data());
  EXPECT_EQ(a, b);
  // A shard deleted after the merge: its rows read as NaN, which training refuses.
  fs::remove(fx.shards / "shard-2-of-4.h5");
  EXPECT_HAS(testing::error_of([&] { FeatureFileSource({fx.d / "feats.h5"}, 1 << 30); }), "NaN");
  EXPECT_HAS(testing::error_of([&] { FeatureFileSource({fx.shards}, 1 << 30); }),
             "shard-2-of-4.h5");
}

struct Spoiled {
  const char* name;
  std::function<void(const Fixture&, const fs::path&)> spoil;
  std::vector<std::string> expect;  // parts of the error message
};

TEST(Merge, RefusesBadShardFoldersNamingTheShards) {
  Fixture fx;
  const std::vector<Spoiled> cases{
      {"missing",
       [](const Fixture&, const fs::path& f) { fs::remove(f / "shard-2-of-4.h5"); },
       {"missing: '", "shard-2-of-4.h5'"}},
      {"partial",
       [](const Fixture&, const fs::path& f) {
         fs::rename(f / "shard-2-of-4.h5", f / "shard-2-of-4.h5.partial");
       },
       {"unfinished", "shard-2-of-4.h5.partial"}},
      {"unfinished under the final name",
       [](const Fixture& x, const fs::path& f) {
         std::atomic<bool> stop{true};
         std::ostringstream log;
         fs::remove(f / "shard-1-of-4.h5");
         auto c = small_config(x.images, f / "tmp.h5");
         c.shard = {1, 4};
         run_extract(c, log, &stop);
         fs::rename(f / "tmp.h5.partial", f / "shard-1-of-4.h5");
       },
       {"unfinished: '", "shard-1-of-4.h5' (0 of"}},
      {"foreign layer",
       [](const Fixture& x, const fs::path& f) {
         auto c = small_config(x.images, f / "shard-3-of-4.h5", {3, 4});
         c.net.to = "block1_pool";
         c.overwrite = true;
         run(c);
       },
       {"foreign", "shard-3-of-4.h5", "layer"}},
      {"foreign weights",
       [](const Fixture& x, const fs::path& f) {
         auto c = small_config(x.images, f / "shard-0-of-4.h5", {0, 4});
         c.weights = "random:4";
         c.overwrite = true;
         run(c);
       },
       {"foreign", "shard-0-of-4.h5", "weights"}},
      {"duplicated",
       [](const Fixture&, const fs::path& f) {
         fs::remove(f / "shard-2-of-4.h5");
         fs::copy_file(f / "shard-1-of-4.h5", f / "shard-2-of-4.h5");
       },
       {"duplicated", "shard-2-of-4.h5", "holds shard 1/4"}},
      {"N mismatch",
       [](const Fixture& x, const fs::path& f) {
         run(small_config(x.images, f / "shard-0-of-3.h5", {0, 3}));
       },
       {"foreign", "shard-0-of-3.h5", "of 3, the others are of 4"}},
      {"not a shard name",
       [](const Fixture&, const fs::path& f) {
         fs::copy_file(f / "shard-1-of-4.h5", f / "shard-1.h5");
       },
       {"foreign", "shard-1.h5", "not named shard-K-of-N.h5"}},
  };
  int n = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const fs::path folder = fx.copy("case" + std::to_string(n++) + ".shards");
    c.spoil(fx, folder);
    std::ostringstream log;
    const fs::path out = fx.d / "merged.h5";
    const std::string msg =
        testing::error_of([&] { merge_shards({.shards = folder, .output = out}, log); });
    for (const auto& part : c.expect) EXPECT_HAS(msg, part);
    EXPECT_FALSE(fs::exists(out));
    EXPECT_FALSE(fs::exists(partial_path_of(out)));
    // tl-train given the folder refuses it the same way.
    EXPECT_HAS(testing::error_of([&] { FeatureFileSource({folder}, 1 << 30); }), c.expect[1]);
  }
  // Stale lock files (a killed task's) and Slurm logs are not shards.
  const fs::path ok = fx.copy("ok.shards");
  testing::write_text(ok / "shard-1-of-4.h5.lock", "12345\n");
  testing::write_text(ok / "slurm-77_1.log", "log\n");
  std::ostringstream log;
  EXPECT_EQ(merge_shards({.shards = ok, .output = fx.d / "ok.h5"}, log).rows, 15);
  EXPECT_HAS(testing::error_of(
                 [&] { merge_shards({.shards = fx.d / "nothing", .output = fx.d / "x.h5"}, log); }),
             "not a folder");
}

// ---- --slurm-array ---------------------------------------------------------------------------

std::string capture(const std::string& command, int& status) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  status = pclose(p);
  status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

TEST(SlurmArray, DryRunPrintsTheArrayAndEachTasksCommand) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a"}, 1);
  int status = 0;
  const std::string base = std::string(TL_EXTRACT_BIN) + " --images '" + (d / "imgs").string() +
                           "' --output '" + (d / "feats.h5").string() +
                           "' --weights random:3 --size 32 --layer block2_pool --pool avg";
  const std::string script = capture(
      base + " --slurm-array 4 --cpus-per-task 2 --sbatch-arg=--time=00:10:00 --dry-run", status);
  EXPECT_EQ(status, 0);
  for (const std::string part :
       {"#!/bin/bash\n", "#SBATCH --array=0-3\n", "#SBATCH --cpus-per-task=2\n",
        "#SBATCH --time=00:10:00\n", "--layer block2_pool", "--size 32x32", "--pool avg",
        "--weights random:3", "--shard \"$k/4\"", "/feats.shards/shard-\"$k\"-of-4.h5",
        "--threads \"${SLURM_CPUS_PER_TASK:-0}\"", "tl-merge "})
    EXPECT_HAS(script, part);
  EXPECT_FALSE(fs::exists(d / "feats.shards"));  // a dry run creates nothing
  // The script runs as a task would (Slurm simulated): task 2 writes its shard.
  fs::create_directories(d / "feats.shards");
  testing::write_text(d / "a.sbatch", script);
  capture("SLURM_ARRAY_TASK_ID=2 SLURM_CPUS_PER_TASK=1 bash '" + (d / "a.sbatch").string() +
              "' 2>/dev/null",
          status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(FeatureReader(d / "feats.shards" / "shard-2-of-4.h5").meta().shard_index, 2);
  // Without sbatch: a clear error, nothing submitted.
  const std::string err = capture("PATH=/nonexistent " + base + " --slurm-array 4 2>&1", status);
  EXPECT_EQ(status, 1);
  EXPECT_HAS(err, "sbatch not found");
  // Usage errors.
  capture(base + " --slurm-array 0 --dry-run 2>/dev/null", status);
  EXPECT_EQ(status, 2);
  capture(base + " --slurm-array 2 --shard 0/2 --dry-run 2>/dev/null", status);
  EXPECT_EQ(status, 2);
  capture(base + " --dry-run 2>/dev/null", status);
  EXPECT_EQ(status, 2);
  ExtractConfig cfg = small_config(d / "imgs", d / "f.h5");
  SlurmArray bad;
  bad.tasks = 2;
  bad.cpus_per_task = 0;
  EXPECT_HAS(testing::error_of([&] { slurm_array_script(cfg, bad); }), "--cpus-per-task");
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(shell_quote("data/train"), "data/train");
}

// Mixed clusters (issue 14, item 7): shards computed on different ISAs (here one under
// ONEDNN_MAX_CPU_ISA=AVX2, one natively) merge, the merged file names every ISA and algorithm
// and the merge says so; shards of another precision are still refused.
TEST(Merge, ShardsFromDifferentIsasMergeAndSaySoOtherPrecisionsAreRefused) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a", "b"}, 3);
  const fs::path shards = d / "feats.shards";
  fs::create_directories(shards);
  auto extract = [&](int k, const std::string& env, const std::string& extra) {
    int status = 0;
    const std::string out = capture(
        env + " " + TL_EXTRACT_BIN + " --images '" + (d / "imgs").string() + "' --output '" +
            (shards / shard_file_name({k, 2})).string() + "' --shard " + std::to_string(k) +
            "/2 --weights random:3 --size 32 --layer block2_pool --quiet " + extra + " 2>&1",
        status);
    EXPECT_EQ(status, 0) << out;
  };
  extract(0, "ONEDNN_MAX_CPU_ISA=AVX2", "");
  extract(1, "", "");
  const FeatureMeta m0 = testing::read_all(shards / shard_file_name({0, 2})).meta;
  EXPECT_EQ(m0.cpu_isa, "avx2");
  // The default on AVX2: tlkit's Winograd (oneDNN has none there).
  EXPECT_EQ(m0.algo, "winograd-tlkit");
  EXPECT_HAS(m0.implementations, "block1_conv1: jit:avx2");
  if (machine().isa == "avx2") {  // an AVX2 machine: the other ISA's shard is simulated
    auto f = h5::File::open(shards / shard_file_name({1, 2}), h5::Mode::read_write);
    f.write_attr("cpu_isa", "avx512_core_amx");
  }
  std::ostringstream log;
  merge_shards({.shards = shards, .output = d / "all.h5"}, log);
  const FeatureMeta all = testing::read_all(d / "all.h5").meta;
  EXPECT_HAS(all.cpu_isa, "avx2, ");
  EXPECT_HAS(log.str(), "computed on oneDNN ISAs avx2, ");
  EXPECT_HAS(all.implementations, "shard 0/2 on avx2:");
  EXPECT_EQ(all.rows_done, 6);

  fs::remove(shards / shard_file_name({1, 2}));
  extract(1, "", "--precision int8");
  try {
    check_shard_folder(shards);
    ADD_FAILURE() << "an int8 shard was merged with an f32 one";
  } catch (const Error& e) {
    EXPECT_HAS(e.what(), "precision");
  }
}

// Issue 15, item 11: two tl-merge --copy to one output left, in 5 of 35 runs, a file h5py
// could not open; tl-merge took no lock. A second merge is now refused.
TEST(Merge, ASecondMergeToTheSameOutputIsRefused) {
  Fixture f;
  const OutputLock held(f.d / "all.h5");  // the first tl-merge, still writing
  std::ostringstream log;
  EXPECT_HAS(testing::error_of([&] {
               merge_shards({.shards = f.shards, .output = f.d / "all.h5", .copy = true}, log);
             }),
             "being written by another process");
  EXPECT_FALSE(fs::exists(f.d / "all.h5"));
}

// Issue 15, item 17: on a full disk tl-merge --copy said "run the same command to resume" (it
// starts over) and left its .partial. It now says to run tl-merge again and leaves nothing.
TEST(Merge, AFullDiskLeavesNothingAndSaysToRunAgain) {
  Fixture f;
  const std::string out = (f.d / "all.h5").string();
  // the copy (15 rows of 8x8x128 floats) is larger than 64 KiB: EFBIG, as a full disk
  const std::string tool = (fs::path(TL_EXTRACT_BIN).parent_path() / "tl-merge").string();
  EXPECT_EQ(testing::run_with_file_limit({tool, f.shards.string(), "--output", out, "--copy"},
                                         64 << 10, f.d / "err.txt"),
            1);
  const std::string err = testing::read_bytes(f.d / "err.txt");
  EXPECT_HAS(err, "Nothing was merged");
  EXPECT_HAS(err, "run tl-merge again");
  EXPECT_EQ(err.find("resume"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".partial"));
  std::ostringstream log;  // space freed: it runs
  merge_shards({.shards = f.shards, .output = out, .copy = true}, log);
  expect_same_rows(testing::read_all(out), testing::read_all(f.whole));
}

}  // namespace
}  // namespace tl
