// tl-predict's engine: a model applied to a feature file, or to images through tl-extract's
// own pipeline, written as CSV with metrics when the inputs carry labels.
//
//   tl::PredictRunConfig cfg{.model = "model.h5", .features = "test.h5", .output = "pred.csv"};
//   tl::PredictRunSummary s = tl::run_prediction(cfg, std::cerr);
#pragma once

#include <atomic>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>

#include "tl/extract.hpp"
#include "tl/metrics.hpp"

namespace tl {

struct PredictRunConfig {
  std::filesystem::path model;
  std::filesystem::path features;  // either features ...
  std::filesystem::path images;    // ... or an image folder
  std::string weights;             // for images: "" = the model's random:SEED or the Keras cache
  std::filesystem::path output;    // predictions CSV
  std::filesystem::path metrics_json;
  std::filesystem::path plot;  // confusion matrix PNG; "" = <output stem>.confusion.png
  int top_k = 1;
  bool force = false;      // accept features from other VGG16 weights
  bool overwrite = false;  // replace outputs that hold another kind of file
  // Extraction settings for --images (the model decides layer, size, preprocessing, ...).
  int batch = 32, threads = 0;
  bool quiet = false;
  std::uint64_t memory_limit = 0;
};

struct PredictRunSummary {
  std::size_t rows = 0, failed = 0;
  std::optional<double> accuracy{};  // when every row has a label
  std::filesystem::path csv{}, plot{}, metrics_json{};
};

PredictRunSummary run_prediction(const PredictRunConfig& cfg, std::ostream& log,
                                 const std::atomic<bool>* stop = nullptr);

}  // namespace tl
