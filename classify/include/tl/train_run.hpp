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
#include <string>
#include <string_view>
#include <vector>

#include "tl/dense_head.hpp"
#include "tl/logreg.hpp"
#include "tl/optimizer.hpp"
#include "tl/trainer.hpp"
#include "tl/vgg16.hpp"

namespace tl {

// tl-train --finetune block5: block5_conv1..3 + block5_pool + the head, trained on
// block4_pool features. Phase 1 trains the head on block5_pool features computed once (block5
// frozen) with TrainRunConfig::options (or logreg), unless head_init gives the head; phase 2
// trains block5 and the head together with `optimizer` for `epochs`, from phase 1's head, and
// keeps the weights best on validation over both phases.
struct FinetuneConfig {
  bool enabled = false;
  std::string weights{};              // VGG16 file or random:SEED; "" = the features' weights
  std::filesystem::path head_init{};  // a model trained on block5_pool features; "" = phase 1
  int epochs = 0;                     // phase 2 epochs; 0 = options.epochs
  OptimizerConfig optimizer{.kind = OptimizerKind::sgd, .learning_rate = 1e-4f, .momentum = 0.9f};
  Precision precision = Precision::f32;  // block5's training convs: f32 or bf16 (phase 2)
  // Phase 2 clips the gradient of block5 and the head together to this L2 norm (0 = off).
  double clip_norm = 1.0;
};

struct TrainRunConfig {
  std::vector<std::filesystem::path> train{};  // feature files, concatenated
  std::vector<std::filesystem::path> val{};    // validation feature files (or val_split)
  double val_split = 0;                        // stratified fraction of train held out
  std::filesystem::path output{};              // the model file
  std::filesystem::path history_csv{}, metrics_json{};
  std::filesystem::path plot{};  // training curves PNG; "" = <output stem>.curves.png
  bool overwrite = false;        // replace outputs that hold another kind of file
  HeadConfig head{};             // kind, pool, hidden, dropout (classes and input from the data)
  // Standardize the head's input by the training rows' per-feature mean and std (stored in
  // the model, applied by tl-predict alike). Off: the rows as they are.
  bool standardize = true;
  // Fit a linear head by L-BFGS logistic regression (tl/logreg.hpp) instead of the SGD-family
  // loop; head.kind must be linear. Without validation data, C is chosen on `logreg_split`
  // of the training rows (stratified by image), then the model is refitted on all of them.
  bool logreg = false;
  double logreg_split = 0.2;
  TrainOptions options{};          // epochs, batch, optimizer, patience, class weights, seed
  std::uint64_t memory_limit = 0;  // bytes of features to load in memory; 0 = half the RAM
  bool quiet = false;
  FinetuneConfig finetune{};
};

struct TrainRunSummary {
  TrainResult result{};      // the training (phase 2 when fine-tuning)
  TrainResult head_phase{};  // fine-tuning's phase 1 (empty with head_init or without finetune)
  LogregResult logreg{};     // the logistic regression's walk over C (cfg.logreg)
  std::filesystem::path model{}, plot{};
  bool saved = false;  // false when stopped before an epoch completed: nothing written
  bool in_memory = true;
  double seconds = 0;
};

// tl-train's choice of head from its command line: `head` as given ("" when not: logreg, or
// linear when an SGD-family option is given, which keeps that option's older meaning),
// `sgd_options` the SGD-family options given ("--lr", ...). Sets cfg.logreg and cfg.head.kind.
// UsageError for an unknown head, and for --head logreg with SGD options (unless fine-tuning,
// where they drive phase 2).
void choose_head(TrainRunConfig& cfg, std::string_view head,
                 const std::vector<std::string>& sgd_options);

// UsageError naming the option for settings that cannot run, whatever the data: epochs,
// patience, fine-tuning's epochs, clip norm and precision (refused on a CPU without native
// kernels for it), --weights / --head-init without fine-tuning. run_training checks them first.
void validate(const TrainRunConfig& cfg);

// Throws UsageError for options that do not fit the data or outputs that would destroy an
// input, another output or a file of another kind (tl::check_outputs; `overwrite` allows the
// last), Error for unreadable or mismatched files, for a second writer of the same model and
// for a model with non-finite weights (nothing written). When `stop` is set during training,
// the best model so far is written; stopped before any epoch completed, nothing is written
// (an existing model is left as it was) and `saved` is false.
TrainRunSummary run_training(const TrainRunConfig& cfg, std::ostream& log,
                             const std::atomic<bool>* stop = nullptr);

// Half of the physical memory: the default budget for loading features.
std::uint64_t default_memory_limit();

}  // namespace tl
