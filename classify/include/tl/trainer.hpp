// tl-train's loop: epochs of shuffled mini-batches through DenseHead::train_step and an
// Optimizer, validation loss after each epoch, early stopping with Keras's semantics, and a
// stop flag for Ctrl-C. Same seed and same thread count give bit-identical weights.
//
//   tl::DenseHead head(cfg, seed);
//   tl::TrainOptions opt{.epochs = 30, .seed = seed, .patience = 5};
//   std::atomic<bool> stop{false};  // set by a SIGINT handler
//   opt.stop = &stop;
//   tl::TrainResult r = tl::train(head, train_src, &val_src, opt,
//                                 {.on_epoch = [](const tl::EpochRecord& e) { print(e); }});
//   // head now holds the weights of epoch r.best_epoch (the lowest val_loss)
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include "tl/dense_head.hpp"
#include "tl/feature_source.hpp"
#include "tl/loss.hpp"
#include "tl/optimizer.hpp"

namespace tl {

struct TrainOptions {
  int epochs = 10;
  int batch = 32;
  // Shuffling and dropout streams (derive_seed(seed, SeedStream::shuffle / ::dropout)); the
  // head's initialisation has its own seed (DenseHead's constructor).
  std::uint64_t seed = 0;
  bool shuffle = true;  // a new Fisher-Yates order of the training rows every epoch
  ClassWeighting class_weighting = ClassWeighting::none;
  OptimizerConfig optimizer{};
  // Early stopping on val_loss (Keras EarlyStopping(monitor="val_loss")): stop after
  // `patience` epochs in a row without val_loss < best - min_delta. 0 = never stop early.
  // Needs validation data.
  int patience = 0;
  double min_delta = 0;
  // With validation data: end with the weights of the epoch with the lowest val_loss, however
  // training ends (last epoch, early stop, stop flag). Keras's restore_best_weights restores
  // only on an early stop; we always do, like ModelCheckpoint(save_best_only=True).
  bool restore_best = true;
  int eval_batch = 256;                     // batch size for validation
  const std::atomic<bool>* stop = nullptr;  // checked between batches
};

struct EpochRecord {
  int epoch = 0;        // 1-based
  double loss = 0;      // training loss: mean over the epoch's batches weighted by their
                        // size, as Keras reports it (class-weighted, dropout on, plus the
                        // weight-decay penalty)
  double accuracy = 0;  // training accuracy over the epoch (dropout on, unweighted)
  double val_loss = 0;  // unweighted; only when has_val
  double val_accuracy = 0;
  double seconds = 0;  // training and validation of this epoch
  bool has_val = false;
  bool best = false;  // val_loss improved in this epoch (its weights are kept)
};

struct TrainCallbacks {
  std::function<void(const EpochRecord&)> on_epoch{};  // after each completed epoch
  // After each batch: epoch (1-based), rows done in this epoch, rows per epoch.
  std::function<void(int epoch, size_t done, size_t total)> on_batch{};
};

struct TrainResult {
  std::vector<EpochRecord> history{};  // completed epochs only
  int best_epoch = 0;                  // lowest val_loss (1-based); 0 without validation
  bool early_stopped = false;
  bool interrupted = false;            // the stop flag ended training
  bool restored_best = false;          // the head's weights were set back to best_epoch's
  std::vector<float> class_weights{};  // as used (all 1 for ClassWeighting::none)
};

// Trains `head` in place. `val` may be null. Throws UsageError for bad options (patience
// without validation, epochs or batch < 1) and Error for data that does not fit the head
// (row shape, labels outside [0, classes), an empty training source).
TrainResult train(DenseHead& head, FeatureSource& train_src, FeatureSource* val,
                  const TrainOptions& opt, const TrainCallbacks& callbacks = {});

}  // namespace tl
