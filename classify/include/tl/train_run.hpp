// tl-train's engine: feature files in, a model file (and history, metrics, curves) out.
//
//   tl::TrainRunConfig cfg;
//   cfg.train = {"train.h5"};
//   cfg.val_split = 0.2;
//   cfg.output = "model.h5";
//   tl::TrainRunSummary s = tl::run_training(cfg, std::cerr);
#pragma once

#include <atomic>
#include <filesystem>
#include <iosfwd>
#include <vector>

#include "tl/dense_head.hpp"
#include "tl/trainer.hpp"

namespace tl {

struct TrainRunConfig {
  std::vector<std::filesystem::path> train{};  // feature files, concatenated
  std::vector<std::filesystem::path> val{};    // validation feature files (or val_split)
  double val_split = 0;                        // stratified fraction of train held out
  std::filesystem::path output{};              // the model file
  std::filesystem::path history_csv{}, metrics_json{};
  std::filesystem::path plot{};    // training curves PNG; "" = <output stem>.curves.png
  HeadConfig head{};               // kind, pool, hidden, dropout (classes and input from the data)
  TrainOptions options{};          // epochs, batch, optimizer, patience, class weights, seed
  std::uint64_t memory_limit = 0;  // bytes of features to load in memory; 0 = half the RAM
  bool quiet = false;
};

struct TrainRunSummary {
  TrainResult result{};
  std::filesystem::path model{}, plot{};
  bool in_memory = true;
  double seconds = 0;
};

// Throws UsageError for options that do not fit the data, Error for unreadable or
// mismatched files. When `stop` is set during training, the best model so far is written.
TrainRunSummary run_training(const TrainRunConfig& cfg, std::ostream& log,
                             const std::atomic<bool>* stop = nullptr);

// Half of the physical memory: the default budget for loading features.
std::uint64_t default_memory_limit();

}  // namespace tl
