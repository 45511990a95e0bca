// tl-extract end to end over generated folders: listing order and labels, failures, features
// equal to the library's direct forward, identical output at 1 and 2 threads and for both
// schedules, resume after SIGKILL at random points, and every error path.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "extract_fixtures.hpp"
#include "image_fixtures.hpp"
#include "tl/error.hpp"
#include "tl/extract.hpp"
#include "tl/feature_file.hpp"
#include "tl/global_pool.hpp"
#include "tl/machine.hpp"
#include "tl/merge.hpp"
#include "tl/output_lock.hpp"
#include "tl/vgg16.hpp"

extern char** environ;

namespace tl {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

using testing::Contents;
using testing::read_all;
using testing::run;
using testing::small_config;

// ---- listing ----------------------------------------------------------------------------

TEST(ImageList, KerasOrderLabelsNestedHiddenAndExtensions) {
  TempDir d;
  const auto img = testing::make_image(8, 8, 1);
  for (const char* p : {"dog/b.png", "dog/a.JPG", "dog/sub/c.png", "dog/.hidden.png", "cat/z.bmp",
                        "cat b/x.png", ".git/y.png", "cat/Ä.png"})
    testing::write_image(d / p, img);
  testing::write_text(d / "dog/notes.txt", "not an image");
  const ImageList l = list_images(d.path());
  EXPECT_EQ(l.classes, (std::vector<std::string>{"cat", "cat b", "dog"}));
  std::vector<std::string> got;
  for (const auto& e : l.entries) got.push_back(e.path + ":" + std::to_string(e.label));
  // Class by class (sorted names), then folder, then file name, as Keras walks.
  EXPECT_EQ(got, (std::vector<std::string>{"cat/z.bmp:0", "cat/Ä.png:0", "cat b/x.png:1",
                                           "dog/a.JPG:2", "dog/b.png:2", "dog/sub/c.png:2"}));
}

TEST(ImageList, UnlabeledFolderAndErrors) {
  TempDir d;
  testing::write_image(d / "b.png", testing::make_image(8, 8, 1));
  testing::write_image(d / "a.jpg", testing::make_image(8, 8, 2));
  const ImageList l = list_images(d.path());
  ASSERT_EQ(l.entries.size(), 2u);
  EXPECT_EQ(l.entries[0].path, "a.jpg");
  EXPECT_EQ(l.entries[0].label, -1);
  EXPECT_TRUE(l.classes.empty());
  EXPECT_HAS(testing::error_of([&] { list_images(d / "missing"); }), "missing");
  fs::create_directories(d / "empty");
  EXPECT_HAS(testing::error_of([&] { list_images(d / "empty"); }), "holds no images");
  EXPECT_HAS(testing::error_of([&] { list_images(d / "a.jpg"); }), "not a folder");
}

TEST(ImageList, SymlinkLoopIsNotedNotFollowed) {
  TempDir d;
  testing::write_image(d / "c" / "a.png", testing::make_image(8, 8, 1));
  fs::create_directory_symlink(d / "c", d / "c" / "loop");
  const ImageList l = list_images(d.path());
  EXPECT_EQ(l.entries.size(), 1u);
  ASSERT_EQ(l.notes.size(), 1u);
  EXPECT_HAS(l.notes[0], "loop");
}

// Nothing in an image folder vanishes (issue 14, item 8): a dangling symlink is listed, and
// extraction puts it in /failed with its reason, like any other unusable file.
TEST(ImageList, DanglingSymlinkIsListedAndFailsWithItsReason) {
  TempDir d;
  testing::write_image(d / "imgs" / "c" / "a.png", testing::make_image(40, 40, 1));
  fs::create_symlink(d / "gone.png", d / "imgs" / "c" / "b.png");
  const ImageList l = list_images(d / "imgs");
  ASSERT_EQ(l.entries.size(), 2u);
  EXPECT_EQ(l.entries[1].path, "c/b.png");
  const auto cfg = small_config(d / "imgs", d / "out.h5");
  EXPECT_EQ(run(cfg).failed, 1);
  const Contents c = read_all(cfg.output);
  EXPECT_EQ(c.paths, (std::vector<std::string>{"c/a.png"}));
  ASSERT_EQ(c.failed.size(), 1u);
  EXPECT_EQ(c.failed[0].first, "c/b.png");
  EXPECT_HAS(c.failed[0].second, "dangling symbolic link");
  EXPECT_HAS(c.failed[0].second, "gone.png");
}

// Issue 15, item 3: a class folder (or sub-folder) that cannot be listed was dropped, even with
// --strict: /classes named it, no row had it, /failed was empty. It is now a /failed entry
// ("b/": the reason) and the run exits 3 (--strict: stops there). Permissions bind root only
// through another user: as root the tool runs as nobody (setpriv), as the user did.
TEST(ImageList, AFolderThatCannotBeListedIsAFailedEntryNotDropped) {
  TempDir d;
  fs::permissions(d.path(), fs::perms::all);
  testing::make_class_folders(d / "imgs", {"a", "b"}, 2);
  for (const auto& p : fs::recursive_directory_iterator(d.path()))
    fs::permissions(p.path(), fs::perms::all);
  fs::permissions(d / "imgs" / "b", fs::perms::none);
  std::vector<std::string> args{TL_EXTRACT_BIN,
                                "--images",
                                (d / "imgs").string(),
                                "--output",
                                (d / "out.h5").string(),
                                "--weights",
                                "random:3",
                                "--size",
                                "32",
                                "--layer",
                                "block1_pool",
                                "--quiet"};
  if (::geteuid() == 0)
    args.insert(args.begin(),
                {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  pid_t pid = 0;
  ASSERT_EQ(testing::spawn_quiet(args, pid), 0);
  int status = 0;
  waitpid(pid, &status, 0);
  fs::permissions(d / "imgs" / "b", fs::perms::all);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3);  // some entries failed
  const Contents c = read_all(d / "out.h5");
  EXPECT_EQ(c.classes, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.paths.size(), 2u);
  ASSERT_EQ(c.failed.size(), 1u);
  EXPECT_EQ(c.failed[0].first, "b/");
  EXPECT_HAS(c.failed[0].second, "cannot list folder");
  EXPECT_HAS(c.failed[0].second, "ermission denied");
}

TEST(ImageList, ListFileWithAndWithoutNames) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a", "b"}, 1, 8, 8);
  testing::write_text(d / "plain.txt", "b/img0.png\r\n\n" + (d / "imgs/a/img0.png").string() +
                                           "\nelsewhere.png\n./b/img0.png\n" +
                                           (d / "other.png").string() + "\n");
  const ImageList p = read_image_list(d / "plain.txt", d / "imgs");
  EXPECT_EQ(p.classes, (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(p.entries.size(), 5u);
  EXPECT_EQ(p.entries[0].label, 1);  // from the class folder
  // Issue 15, item 5: an absolute path inside --images and "./b/..." are the same rows as
  // "a/img0.png" and "b/img0.png" (they had label -1 and stayed absolute).
  EXPECT_EQ(p.entries[1].path, "a/img0.png");
  EXPECT_EQ(p.entries[1].label, 0);
  EXPECT_EQ(p.entries[2].label, -1);
  EXPECT_EQ(p.entries[3].path, "b/img0.png");
  EXPECT_EQ(p.entries[3].label, 1);
  EXPECT_EQ(p.entries[4].path, (d / "other.png").string());  // outside: stays absolute
  EXPECT_EQ(p.entries[4].label, -1);
  testing::write_text(d / "named.txt", "x.png\tzebra\ny.png\tant\n");
  const ImageList n = read_image_list(d / "named.txt", d / "imgs");
  EXPECT_EQ(n.classes, (std::vector<std::string>{"ant", "zebra"}));
  EXPECT_EQ(n.entries[0].label, 1);
  testing::write_text(d / "mixed.txt", "x.png\tzebra\ny.png\n");
  EXPECT_HAS(testing::error_of([&] { read_image_list(d / "mixed.txt", d / "imgs"); }), "line 2");
  testing::write_text(d / "empty.txt", "\n\n");
  EXPECT_HAS(testing::error_of([&] { read_image_list(d / "empty.txt", d / "imgs"); }), "empty.txt");
  EXPECT_HAS(testing::error_of([&] { read_image_list(d / "none.txt", d / "imgs"); }), "none.txt");
}

TEST(Shards, ParseRangesAndEnvironment) {
  EXPECT_EQ(parse_shard("2/4"), (Shard{2, 4}));
  for (const char* bad : {"4/4", "1/0", "-1/3", "a/b", "1", "1/2/3", ""})
    EXPECT_HAS(testing::error_of([&] { parse_shard(bad); }), "--shard");
  // Disjoint, balanced slices that cover everything.
  for (std::size_t total : {0u, 1u, 7u, 100u}) {
    std::size_t covered = 0, prev_end = 0;
    for (int k = 0; k < 3; ++k) {
      const auto [b, e] = shard_range(total, {k, 3});
      EXPECT_EQ(b, prev_end);
      EXPECT_LE(e - b, total / 3 + 1);
      covered += e - b;
      prev_end = e;
    }
    EXPECT_EQ(covered, total);
  }
  setenv("SLURM_ARRAY_TASK_ID", "2", 1);
  setenv("SLURM_ARRAY_TASK_COUNT", "4", 1);
  setenv("SLURM_ARRAY_TASK_MIN", "0", 1);
  EXPECT_EQ(shard_from_env(), (Shard{2, 4}));
  // A resubmitted part of an array cannot know N: refused, asking for --shard.
  setenv("SLURM_ARRAY_TASK_ID", "3", 1);
  setenv("SLURM_ARRAY_TASK_COUNT", "1", 1);
  setenv("SLURM_ARRAY_TASK_MIN", "3", 1);
  EXPECT_HAS(testing::error_of([] { shard_from_env(); }), "--shard K/N");
  unsetenv("SLURM_ARRAY_TASK_ID");
  unsetenv("SLURM_ARRAY_TASK_COUNT");
  unsetenv("SLURM_ARRAY_TASK_MIN");
  EXPECT_EQ(shard_from_env(), (Shard{0, 1}));
}

// ---- end to end ---------------------------------------------------------------------------

// Class folders with mixed types, gray and RGBA images, and broken files.
void make_mixed_folder(const fs::path& root) {
  testing::make_class_folders(root, {"bird", "cat"}, 5, 37, 41);
  testing::write_image(root / "bird" / "deep" / "nested.jpg", testing::make_image(50, 30, 9));
  cv::Mat gray;
  cv::cvtColor(testing::make_image(33, 33, 4), gray, cv::COLOR_BGR2GRAY);
  testing::write_image(root / "cat" / "gray.png", gray);
  cv::Mat rgba;
  cv::cvtColor(testing::make_image(40, 40, 5), rgba, cv::COLOR_BGR2BGRA);
  testing::write_image(root / "cat" / "rgba.png", rgba);
  testing::write_image(root / "cat" / "ünïcode name.bmp", testing::make_image(35, 45, 6));
  testing::write_text(root / "cat" / "empty.jpg", "");
  testing::write_text(root / "bird" / "garbage.png", "this is not a png at all");
  const std::string jpg = [&] {
    std::vector<uchar> buf;
    cv::imencode(".jpg", testing::make_image(64, 64, 7), buf);
    return std::string(buf.begin(), buf.begin() + static_cast<long>(buf.size() / 2));
  }();
  testing::write_text(root / "cat" / "truncated.jpg", jpg);
}

TEST(Extract, RowsLabelsFailuresAndFeaturesEqualTheDirectForward) {
  TempDir d;
  make_mixed_folder(d / "imgs");
  const auto cfg = small_config(d / "imgs", d / "out.h5");
  const ExtractSummary s = run(cfg);
  EXPECT_TRUE(s.complete);
  const Contents c = read_all(cfg.output);
  EXPECT_EQ(c.classes, (std::vector<std::string>{"bird", "cat"}));
  ASSERT_EQ(c.paths.size(), 14u);
  ASSERT_EQ(c.failed.size(), 3u);
  EXPECT_EQ(s.rows, 14);
  EXPECT_EQ(s.failed, 3);
  EXPECT_EQ(c.paths.front(), "bird/img0.png");
  EXPECT_EQ(c.paths[5], "bird/deep/nested.jpg");
  EXPECT_EQ(c.labels.front(), 0);
  EXPECT_EQ(c.labels.back(), 1);
  std::vector<std::string> failed;
  for (const auto& [p, why] : c.failed) {
    failed.push_back(p);
    EXPECT_HAS(why, p);
  }
  EXPECT_EQ(failed,
            (std::vector<std::string>{"bird/garbage.png", "cat/empty.jpg", "cat/truncated.jpg"}));
  EXPECT_TRUE(c.meta.complete);
  EXPECT_EQ(c.meta.feature_shape, (std::vector<std::int64_t>{8, 8, 128}));
  EXPECT_FALSE(c.meta.weights_pretrained);

  // Each row equals the library's own forward of that image.
  Vgg16 net(load_weights("random:3"), cfg.net);
  // The file records the machine and what ran on it (issue 14, item 7).
  EXPECT_EQ(c.meta.cpu_isa, machine().isa);
  EXPECT_EQ(c.meta.algo, to_string(net.algo_used()));
  EXPECT_EQ(c.meta.implementations, net.describe());
  const size_t in_row = 32 * 32 * 3, out_row = net.output_shape().per_image();
  std::vector<float> x(in_row), y(net.output_shape().elems());
  for (size_t r = 0; r < c.paths.size(); ++r) {
    load_image(d / "imgs" / c.paths[r], cfg.image, x.data());
    net.forward(x.data(), 1, y.data());
    for (size_t k = 0; k < out_row; ++k)
      ASSERT_NEAR(c.features[r * out_row + k], y[k], 1e-5f * (1 + std::abs(y[k]))) << c.paths[r];
  }
}

TEST(Extract, SameOutputAtOneAndTwoThreadsAndBothSchedules) {
  TempDir d;
  make_mixed_folder(d / "imgs");
  auto a = small_config(d / "imgs", d / "a.h5");
  a.threads = 1;
  auto b = small_config(d / "imgs", d / "b.h5");
  b.threads = 2;
  auto c = small_config(d / "imgs", d / "c.h5");
  c.schedule = Schedule::net_per_thread;
  run(a);
  run(b);
  run(c);
  const Contents ca = read_all(a.output), cb = read_all(b.output), cc = read_all(c.output);
  EXPECT_EQ(ca.features, cb.features);
  EXPECT_EQ(ca.features, cc.features);
  EXPECT_EQ(ca.paths, cc.paths);
  EXPECT_EQ(ca.labels, cc.labels);
  EXPECT_EQ(ca.failed, cc.failed);
}

TEST(Extract, PoolingAndHalfPrecisionStorage) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a", "b"}, 3);
  auto full = small_config(d / "imgs", d / "full.h5");
  auto avg = small_config(d / "imgs", d / "avg.h5");
  avg.pool = Pool::avg;
  auto mx = small_config(d / "imgs", d / "max.h5");
  mx.pool = Pool::max;
  auto half = small_config(d / "imgs", d / "half.h5");
  half.dtype = StorageType::f16;
  for (const auto* c : {&full, &avg, &mx, &half}) run(*c);
  const Contents f = read_all(full.output), a = read_all(avg.output), m = read_all(mx.output),
                 h = read_all(half.output);
  ASSERT_EQ(a.meta.feature_shape, (std::vector<std::int64_t>{128}));
  const int hw = 64, ch = 128;
  for (size_t r = 0; r < f.paths.size(); ++r)
    for (int k = 0; k < ch; ++k) {
      double sum = 0, best = -1e30;
      for (int p = 0; p < hw; ++p) {
        const double v = f.features[(r * hw + p) * ch + k];
        sum += v;
        best = std::max(best, v);
      }
      EXPECT_NEAR(a.features[r * ch + k], sum / hw, 1e-5 * (1 + std::abs(sum / hw)));
      EXPECT_EQ(m.features[r * ch + k], static_cast<float>(best));
    }
  for (size_t i = 0; i < f.features.size(); ++i)  // f16: 11-bit significand
    ASSERT_NEAR(h.features[i], f.features[i], 1e-3 * std::abs(f.features[i]) + 1e-6);
  // One pooling, one rounding: a head's global_pool of the stored rows gives the pooled rows
  // tl-extract stores, to the bit (issue 17: the two implementations rounded differently).
  std::vector<float> pooled(ch);
  for (size_t r = 0; r < f.paths.size(); ++r)
    for (const auto& [pool, stored] : {std::pair{Pool::avg, &a}, std::pair{Pool::max, &m}}) {
      global_pool(pool, &f.features[r * hw * ch], 8, 8, ch, pooled.data());
      ASSERT_EQ(0, std::memcmp(pooled.data(), &stored->features[r * ch], ch * sizeof(float)))
          << to_string(pool) << " row " << r;
    }
}

TEST(Extract, Int8IsCalibratedStoredAndReused) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a", "b"}, 5);
  auto f32 = small_config(d / "imgs", d / "f32.h5");
  auto i8 = small_config(d / "imgs", d / "i8.h5");
  i8.net.precision = Precision::int8;
  i8.calibrate = 6;
  run(f32);
  run(i8);
  const Contents a = read_all(f32.output), b = read_all(i8.output);
  ASSERT_TRUE(b.meta.calibration);
  EXPECT_EQ(b.meta.calibration->images, 6);
  EXPECT_EQ(b.meta.calibration->outputs.size(), 6u);  // block1_conv1 .. block2_pool
  EXPECT_EQ(b.meta.precision, Precision::int8);
  double err = 0, scale = 0;
  for (size_t i = 0; i < a.features.size(); ++i) {
    err = std::max(err, static_cast<double>(std::abs(a.features[i] - b.features[i])));
    scale = std::max(scale, static_cast<double>(std::abs(a.features[i])));
  }
  EXPECT_LT(err / scale, 4e-2);  // the int8 bounds of tests/test_vgg16.cpp (every ISA)

  // --calibration FILE reuses the ranges: the same rows, bit for bit.
  auto again = i8;
  again.output = d / "again.h5";
  again.calibration_file = i8.output;
  run(again);
  EXPECT_EQ(read_all(again.output).features, b.features);
  // A resumed int8 file keeps its own ranges (here: the stop flag ends the first run early).
  auto resumed = i8;
  resumed.output = d / "resumed.h5";
  resumed.net.batch = 2;
  std::atomic<bool> stop{true};  // the first run creates the file and stops before a batch
  std::ostringstream log;
  run_extract(resumed, log, &stop);
  run(resumed);
  EXPECT_EQ(read_all(resumed.output).features, b.features);
  // Shards calibrate on the same sample of the whole list.
  auto s1 = i8;
  s1.output = d / "s1.h5";
  s1.shard = {1, 2};
  run(s1);
  EXPECT_EQ(read_all(s1.output).meta.calibration->outputs, b.meta.calibration->outputs);

  auto bad = i8;
  bad.output = d / "bad.h5";
  bad.calibration_file = f32.output;  // made in f32: no ranges
  EXPECT_HAS(testing::error_of([&] { run(bad); }), "f32.h5");
  bad.calibration_file.clear();
  bad.calibrate = 0;
  EXPECT_HAS(testing::error_of([&] { run(bad); }), "--calibrate");
}

TEST(Extract, ShardsConcatenateToTheWholeRun) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a", "b", "c"}, 3);
  auto whole = small_config(d / "imgs", d / "whole.h5");
  run(whole);
  const Contents w = read_all(whole.output);
  std::vector<std::string> paths;
  std::vector<float> feats;
  for (int k = 0; k < 4; ++k) {
    auto s = small_config(d / "imgs", d / fmt::format("s{}.h5", k));
    s.shard = {k, 4};
    run(s);
    const Contents c = read_all(s.output);
    EXPECT_EQ(c.meta.shard_index, k);
    EXPECT_EQ(c.meta.shard_count, 4);
    paths.insert(paths.end(), c.paths.begin(), c.paths.end());
    feats.insert(feats.end(), c.features.begin(), c.features.end());
  }
  EXPECT_EQ(paths, w.paths);
  EXPECT_EQ(feats, w.features);
}

TEST(Extract, FinishedOutputIsLeftAloneOverwriteStartsAgain) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a"}, 2);
  auto cfg = small_config(d / "imgs", d / "out.h5");
  run(cfg);
  const auto stamp = fs::last_write_time(cfg.output);
  EXPECT_TRUE(run(cfg).already_complete);
  EXPECT_EQ(fs::last_write_time(cfg.output), stamp);
  cfg.overwrite = true;
  const auto s = run(cfg);
  EXPECT_FALSE(s.already_complete);
  EXPECT_EQ(s.rows_this_run, 2);
}

// The algorithm recorded is the one that ran: oneDNN's Winograd ("winograd") where it has one,
// else tlkit's ("winograd-tlkit"); --algo winograd-tlkit records tlkit's everywhere.
TEST(Extract, RecordedAlgorithmIsTheOneThatRan) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a"}, 2);
  auto cfg = small_config(d / "imgs", d / "out.h5");
  cfg.net.algo = ConvAlgo::winograd;
  run(cfg);
  const FeatureMeta m = read_all(cfg.output).meta;
  const bool onednn = machine().f32_winograd.native;
  EXPECT_EQ(m.algo, onednn ? "winograd" : "winograd-tlkit");
  EXPECT_HAS(m.implementations, onednn ? "wino" : "tlkit winograd");
  auto tlkit = small_config(d / "imgs", d / "tlkit.h5");
  tlkit.net.algo = ConvAlgo::winograd_tlkit;
  run(tlkit);
  EXPECT_EQ(read_all(tlkit.output).meta.algo, "winograd-tlkit");
  EXPECT_HAS(read_all(tlkit.output).meta.implementations, "block2_conv1: tlkit winograd");
  // int8 runs direct convolutions whatever --algo says, and the file says so.
  auto i8 = small_config(d / "imgs", d / "i8.h5");
  i8.net.precision = Precision::int8;
  i8.net.algo = ConvAlgo::winograd;
  run(i8);
  EXPECT_EQ(read_all(i8.output).meta.algo, "direct");
}

TEST(Extract, ResumingWithOtherOptionsNamesTheDifference) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a"}, 2);
  auto cfg = small_config(d / "imgs", d / "out.h5");
  run(cfg);
  auto other = cfg;
  other.net.to = "block1_pool";
  EXPECT_HAS(testing::error_of([&] { run(other); }), "layer: the file has block2_pool");
  other = cfg;
  other.weights = "random:4";
  EXPECT_HAS(testing::error_of([&] { run(other); }), "weights");
  other = cfg;
  other.image.preprocess = Preprocess::torch;
  EXPECT_HAS(testing::error_of([&] { run(other); }), "preprocess");
  testing::write_image(d / "imgs" / "a" / "new.png", testing::make_image(9, 9, 3));
  EXPECT_HAS(testing::error_of([&] { run(cfg); }), "input list");
}

// Issue 15, item 2: another folder holding the same file names is other images. A killed run
// resumed with --images pointing elsewhere mixed rows of both folders; it is refused, naming
// both. The same folder spelt otherwise (trailing '/', './', a symlink) still resumes.
TEST(Extract, ResumeOverAnotherImageFolderWithTheSameNamesIsRefused) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a", "b"}, 3);
  testing::make_class_folders(d / "alt", {"a", "b"}, 3, 40, 44);
  auto cfg = small_config(d / "imgs", d / "out.h5");
  std::ostringstream log;
  std::atomic<bool> now{true};  // stops before the first batch: an unfinished file
  run_extract(cfg, log, &now);
  auto alt = cfg;
  alt.images = d / "alt";
  const std::string msg = testing::error_of([&] { run(alt); });
  EXPECT_HAS(msg, "images: the file has");
  EXPECT_HAS(msg, (d / "alt").string());
  fs::create_directory_symlink(d / "imgs", d / "same");
  for (const fs::path& spelt : {fs::path((d / "imgs").string() + "/"), d / "same"}) {
    auto same = cfg;
    same.images = spelt;
    EXPECT_NO_THROW(run_extract(same, log, &now)) << spelt;
  }
  EXPECT_TRUE(run(cfg).complete);
  // Shards over two folders are not merged either.
  const fs::path shards = d / "s.shards";
  fs::create_directories(shards);
  run(small_config(d / "imgs", shards / "shard-0-of-2.h5", {0, 2}));
  run(small_config(d / "alt", shards / "shard-1-of-2.h5", {1, 2}));
  EXPECT_HAS(testing::error_of([&] { check_shard_folder(shards); }), "images");
}

TEST(Extract, StrictStopsAtTheFirstFailureAndStopFlagStopsEarly) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a"}, 6);
  testing::write_text(d / "imgs" / "a" / "img2x.png", "broken");
  auto cfg = small_config(d / "imgs", d / "out.h5");
  cfg.strict = true;
  cfg.net.batch = 2;
  const auto s = run(cfg);
  EXPECT_TRUE(s.stopped);
  EXPECT_FALSE(s.complete);
  EXPECT_EQ(s.failed, 0);  // not consumed: a rerun with --strict stops there again
  EXPECT_EQ(s.rows, 3);    // img0, img1, img2 before img2x
  EXPECT_HAS(s.strict_failure, "img2x.png");
  const auto again = run(cfg);
  EXPECT_TRUE(again.stopped);
  EXPECT_EQ(again.rows, 3);
  cfg.strict = false;  // without --strict the same file carries on past it
  const auto rest = run(cfg);
  EXPECT_TRUE(rest.complete);
  EXPECT_EQ(rest.rows, 6);
  EXPECT_EQ(rest.failed, 1);
  std::atomic<bool> stop{true};
  auto cfg2 = small_config(d / "imgs", d / "out2.h5");
  std::ostringstream log;
  const auto s2 = run_extract(cfg2, log, &stop);
  EXPECT_TRUE(s2.stopped);
  EXPECT_EQ(s2.rows, 0);
  EXPECT_EQ(FeatureReader(cfg2.output).rows(), 0u);
}

TEST(ExtractErrors, BadOptionsInputsAndOutputs) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a"}, 1);
  auto cfg = small_config(d / "imgs", d / "out.h5");
  auto bad = cfg;
  // --pool and --dtype are typed: their names are parsed (and refused) where they are read.
  EXPECT_HAS(testing::error_of([] { parse_pool("mean"); }), "'mean' (accepted: none, avg, max");
  EXPECT_HAS(testing::error_of([] { parse_storage_type("f64"); }), "'f64' (accepted: f32, f16)");
  bad.images = d / "nope";
  EXPECT_HAS(testing::error_of([&] { run(bad); }), "nope");
  bad = cfg;
  bad.output = d / "no-such-dir" / "out.h5";
  EXPECT_HAS(testing::error_of([&] { run(bad); }), "out.h5");
  // An existing file that is not ours is not touched.
  testing::write_text(d / "notes.h5", "precious");
  bad = cfg;
  bad.output = d / "notes.h5";
  EXPECT_HAS(testing::error_of([&] { run(bad); }), "--overwrite");
  EXPECT_EQ(testing::read_bytes(d / "notes.h5"), "precious");
}

TEST(ExtractErrors, SecondWriterIsRefusedNamingTheFirst) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a"}, 1);
  const OutputLock held(d / "out.h5");
  const auto msg = testing::error_of([&] { run(small_config(d / "imgs", d / "out.h5")); });
  EXPECT_HAS(msg, "pid " + std::to_string(getpid()));
  EXPECT_FALSE(fs::exists(d / "out.h5"));
}

// Issue 15, item 1: the lock meets the output by any name. A run in progress on a.h5 (its lock
// held here) refuses a second run whose --output is a symlink or a hard link to a.h5; before
// the fix both wrote, and /paths held another run's strings.
TEST(ExtractErrors, SymlinkOrHardLinkToAnOutputInProgressIsRefused) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a"}, 3);
  const auto cfg = small_config(d / "imgs", d / "a.h5");
  std::atomic<bool> stop{true};
  std::ostringstream log;
  run_extract(cfg, log, &stop);  // an unfinished a.h5, as a killed run leaves it
  ASSERT_TRUE(fs::exists(d / "a.h5"));
  fs::create_symlink("a.h5", d / "link.h5");
  fs::create_hard_link(d / "a.h5", d / "hard.h5");
  EXPECT_EQ(resolve_output_path(d / "link.h5"), resolve_output_path(d / "a.h5"));
  {
    OutputLock first(d / "a.h5");  // the first run, still writing
    for (const char* alias : {"link.h5", "hard.h5"}) {
      auto other = cfg;
      other.output = d / alias;
      other.net.batch = 7;
      EXPECT_HAS(testing::error_of([&] { run(other); }), "being written by another process")
          << alias;
    }
    // A dangling symlink names its target too.
    fs::create_symlink("new.h5", d / "dangling.h5");
    OutputLock target(d / "new.h5");
    EXPECT_THROW(OutputLock(d / "dangling.h5"), Error);
  }
  EXPECT_TRUE(run(cfg).complete);  // the first run's command resumes it, untouched
  EXPECT_EQ(read_all(d / "a.h5").paths.size(), 3u);
}

// ---- SIGKILL at random points -------------------------------------------------------------

TEST(ExtractResume, KilledAtRandomPointsEndsEqualToAnUninterruptedRun) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a", "b", "c"}, 40, 120, 140);
  testing::write_text(d / "imgs" / "b" / "broken.jpg", "nope");
  auto args = [&](const fs::path& out) {
    return std::vector<std::string>{TL_EXTRACT_BIN,
                                    "--images",
                                    (d / "imgs").string(),
                                    "--output",
                                    out.string(),
                                    "--weights",
                                    "random:2",
                                    "--size",
                                    "128",
                                    "--layer",
                                    "block5_pool",
                                    "--batch",
                                    "2",
                                    "--threads",
                                    "2",
                                    "--quiet"};
  };
  pid_t pid;
  int status = 0;
  ASSERT_EQ(testing::spawn_quiet(args(d / "ref.h5"), pid), 0);
  waitpid(pid, &status, 0);
  ASSERT_EQ(WEXITSTATUS(status), 3);  // one image failed

  // Each run takes about a second (0.4 s of it loading weights): kill at 30..900 ms, then
  // finish it (or confirm it finished).
  int exit_code = -1;
  const int kills = testing::kill_at_random_then_finish(
      args(d / "out.h5"), 12345, 30, 12,
      [&] {
        // Readable after every kill, holding only committed rows (a kill before the file was
        // created leaves none).
        if (!fs::exists(d / "out.h5")) return;
        FeatureReader r(d / "out.h5");
        EXPECT_EQ(r.paths().size(), r.rows());
      },
      exit_code);
  EXPECT_TRUE(exit_code == 0 || exit_code == 3);
  RecordProperty("kills", kills);
  EXPECT_GE(kills, 3);
  const Contents ref = read_all(d / "ref.h5"), got = read_all(d / "out.h5");
  EXPECT_TRUE(got.meta.complete);
  EXPECT_EQ(got.features, ref.features);
  EXPECT_EQ(got.labels, ref.labels);
  EXPECT_EQ(got.paths, ref.paths);
  EXPECT_EQ(got.failed, ref.failed);
}

TEST(ExtractErrors, FullDiskKeepsCommittedRowsAndResumes) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a", "b"}, 30, 40, 40);
  const std::vector<std::string> args{TL_EXTRACT_BIN,
                                      "--images",
                                      (d / "imgs").string(),
                                      "--output",
                                      (d / "out.h5").string(),
                                      "--weights",
                                      "random:2",
                                      "--size",
                                      "64",
                                      "--layer",
                                      "block1_pool",
                                      "--batch",
                                      "4",
                                      "--threads",
                                      "2",
                                      "--quiet"};
  // block1_pool rows are 32x32x64 floats = 256 KiB (15 MiB in all): the limit falls mid-run.
  EXPECT_EQ(testing::run_with_file_limit(args, 12 << 20), 1);
  FeatureMeta m;
  {
    FeatureReader r(d / "out.h5");  // readable, holding the committed rows
    m = r.meta();
    EXPECT_FALSE(m.complete);
    EXPECT_GT(m.rows_done, 0);
    EXPECT_LT(m.rows_done, 60);
    EXPECT_EQ(r.paths().size(), r.rows());
  }
  // Space freed: the same command finishes, equal to a run that never failed.
  EXPECT_EQ(testing::run_with_file_limit(args, RLIM_INFINITY), 0);
  auto ref = args;
  ref[4] = (d / "ref.h5").string();
  EXPECT_EQ(testing::run_with_file_limit(ref, RLIM_INFINITY), 0);
  const Contents a = read_all(d / "out.h5"), b = read_all(d / "ref.h5");
  EXPECT_TRUE(a.meta.complete);
  EXPECT_EQ(a.features, b.features);
  EXPECT_EQ(a.paths, b.paths);
}

// Issue 15, item 15: a disk full at the start left a 0-byte output that the same command then
// refused ("cannot be resumed ... --overwrite"). A failed creation leaves nothing, and an
// empty file (left by an older tlkit) is started again.
TEST(ExtractErrors, FullDiskAtTheStartLeavesNothingAndTheSameCommandRuns) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a"}, 2);
  const std::vector<std::string> args{TL_EXTRACT_BIN,
                                      "--images",
                                      (d / "imgs").string(),
                                      "--output",
                                      (d / "out.h5").string(),
                                      "--weights",
                                      "random:2",
                                      "--size",
                                      "32",
                                      "--layer",
                                      "block1_pool",
                                      "--quiet"};
  EXPECT_EQ(testing::run_with_file_limit(args, 0), 1);  // not even HDF5's header fits
  EXPECT_FALSE(fs::exists(d / "out.h5"));
  testing::write_text(d / "out.h5", "");  // what the failed creation used to leave
  pid_t pid = 0;
  ASSERT_EQ(testing::spawn_quiet(args, pid), 0);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(read_all(d / "out.h5").paths.size(), 2u);
}

// Issue 15, item 22: every finished file kept the ~6 MiB reserved for a next batch (a 3-row
// file took 6.3 MB on disk). Finishing releases it.
TEST(Extract, AFinishedFileKeepsNoReservedSpace) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a"}, 3);
  auto cfg = small_config(d / "imgs", d / "out.h5");
  cfg.net.batch = 32;  // a 32-row reservation: 32 x 16x16x64 floats = 2 MiB at block1_pool
  cfg.net.to = "block1_pool";
  run(cfg);
  haddr_t eoa = 0;
  {
    const auto f = h5::File::open(cfg.output, h5::Mode::read_only, h5::Access::reader);
    h5::call(f.where(), "H5Fget_eoa", H5Fget_eoa, f.id(), &eoa);
  }
  struct stat st {};
  ASSERT_EQ(::stat(cfg.output.c_str(), &st), 0);
  EXPECT_EQ(static_cast<haddr_t>(st.st_size), eoa);  // nothing past HDF5's end
  EXPECT_LT(st.st_blocks * 512, st.st_size + (256 << 10));
  EXPECT_EQ(read_all(cfg.output).paths.size(), 3u);
}

// Issue 15, item 13: a FIFO named like an image (in a folder or in --list) hung tl-extract for
// good, deaf to SIGINT. It is never opened: a /failed entry with the reason.
TEST(Extract, APipeNamedLikeAnImageIsFailedNeverOpened) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a"}, 2);
  ASSERT_EQ(::mkfifo((d / "imgs" / "a" / "pipe.png").c_str(), 0644), 0);
  testing::write_text(d / "list.txt", "a/img0.png\na/pipe.png\n");
  for (const bool use_list : {false, true}) {
    auto cfg = small_config(d / "imgs", d / (use_list ? "l.h5" : "f.h5"));
    if (use_list) cfg.list = d / "list.txt";
    const auto s = run(cfg);  // returns: nothing blocks on the pipe
    EXPECT_TRUE(s.complete);
    const Contents c = read_all(cfg.output);
    ASSERT_EQ(c.failed.size(), 1u);
    EXPECT_EQ(c.failed[0].first, "a/pipe.png");
    EXPECT_HAS(c.failed[0].second, "not a regular file");
  }
}

// Issue 15, item 18: --strict said "fix or remove the image", but a resume after removing it
// is refused (the image list changed). The message now says what works.
TEST(Extract, StrictSaysHowToGoOn) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a"}, 2);
  testing::write_text(d / "imgs" / "a" / "bad.png", "broken");
  auto cfg = small_config(d / "imgs", d / "out.h5");
  cfg.strict = true;
  cfg.quiet = false;
  std::ostringstream log;
  const auto s = run_extract(cfg, log);
  EXPECT_TRUE(s.stopped);
  EXPECT_HAS(log.str(), "Fix the image in place and run the same command to resume");
  EXPECT_HAS(log.str(), "Removing or renaming it changes the image list");
  testing::write_image(d / "imgs" / "a" / "bad.png", testing::make_image(40, 40, 1));
  cfg.strict = false;
  EXPECT_TRUE(run(cfg).complete);  // fixed in place: the same list resumes
  EXPECT_EQ(read_all(cfg.output).paths.size(), 3u);
}

}  // namespace
}  // namespace tl
