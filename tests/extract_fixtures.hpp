// Test helpers shared by the extraction, merge and prediction tests: a small, fast
// extraction configuration and a feature file read back whole.
#pragma once

#include <filesystem>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tl/extract.hpp"
#include "tl/feature_file.hpp"

namespace tl::testing {

// 32x32 inputs cut at block2_pool ([8, 8, 128] rows), random:3 weights, batch 4, 2 threads.
inline ExtractConfig small_config(const std::filesystem::path& images,
                                  const std::filesystem::path& output, Shard shard = {}) {
  ExtractConfig c;
  c.images = images;
  c.output = output;
  c.weights = "random:3";
  c.net = {.batch = 4, .height = 32, .width = 32, .to = "block2_pool"};
  c.image = {.height = 32, .width = 32};
  c.quiet = true;
  c.threads = 2;
  c.shard = shard;
  return c;
}

// run_extract with its log kept out of the test output.
inline ExtractSummary run(const ExtractConfig& c) {
  std::ostringstream log;
  return run_extract(c, log);
}

struct Contents {
  std::vector<float> features;
  std::vector<std::int32_t> labels;
  std::vector<std::string> paths, classes;
  std::vector<std::pair<std::string, std::string>> failed;
  FeatureMeta meta;
};

// Everything a feature file holds, through tlkit's reader (HDF5's own API underneath).
inline Contents read_all(const std::filesystem::path& p) {
  FeatureReader r(p);
  return {r.read_rows(0, r.rows()), r.labels(), r.paths(), r.meta().classes, r.failed(), r.meta()};
}

}  // namespace tl::testing
