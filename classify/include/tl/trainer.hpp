// tl-train's one fit loop, for a head alone and for block5 + head (a Trainable): epochs of
// shuffled mini-batches through train_step and an Optimizer, validation loss after each
// epoch, early stopping with Keras's semantics, a stop flag for Ctrl-C, and a divergence
// guard. Same seed and same thread count give bit-identical weights.
//
// The guard watches every batch for a non-finite loss or gradient, a loss far above the
// starting one, and a collapsed network (every row of an epoch predicted as one class; a loss
// over the epoch's last quarter no better than predicting the class frequencies, which is what
// dead ReLUs leave; or a Trainable's own sign such as block5's outputs all zero). Then it rolls
// back to the weights of the last good epoch (to the starting weights after a collapse, which
// builds up unseen over epochs), halves the learning rate (fresh optimizer state), says so
// through on_guard and in the next epoch's record, and redoes the epoch; after guard_retries
// rollbacks it stops, keeps the best weights so far and sets TrainResult::guard_stop.
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

#include <string>

#include "tl/dense_head.hpp"
#include "tl/evaluate.hpp"
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
  // The guard (see above): rollbacks before giving up (0: the first trigger stops training),
  // and how far above the first batch's loss (or ln C, if larger) a batch loss counts as
  // exploding.
  int guard_retries = 4;
  double explode_factor = 10;
  // Clip the gradient of all parameters together to this L2 norm (Keras's global_clipnorm)
  // before each update; 0 = off.
  double clip_norm = 0;
  // With validation data: the starting weights compete for the kept model as "epoch 0" (a
  // fine-tuning that never beats its own phase 1 on validation ends with phase 1's weights);
  // an epoch replaces them only with a val_loss below (1 - start_margin) x theirs.
  bool keep_start = false;
  double start_margin = 0;
};

// One intervention of the guard.
struct GuardEvent {
  int epoch = 0;            // the epoch it interrupted (1-based)
  size_t batch = 0;         // 1-based batch of that epoch; 0 = after the epoch
  std::string reason{};     // "non-finite loss", "loss 412 > 10 x 2.3 at start", ...
  int rolled_back_to = 0;   // the epoch whose weights were restored (0 = the start)
  float learning_rate = 0;  // the new learning rate (half the old)
  bool gave_up = false;     // retries exhausted: training stopped here
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
  bool best = false;        // val_loss improved in this epoch (its weights are kept)
  float learning_rate = 0;  // the learning rate this epoch ran with
  int guard_retries = 0;    // rollbacks the guard made before this epoch completed
};

struct TrainCallbacks {
  std::function<void(const EpochRecord&)> on_epoch{};  // after each completed epoch
  // After each batch: epoch (1-based), rows done in this epoch, rows per epoch.
  std::function<void(int epoch, size_t done, size_t total)> on_batch{};
  // Each time the guard steps in, after the rollback.
  std::function<void(const GuardEvent&)> on_guard{};
};

struct TrainResult {
  std::vector<EpochRecord> history{};  // completed epochs only
  int best_epoch = 0;                  // lowest val_loss (1-based); 0 without validation
  bool early_stopped = false;
  bool interrupted = false;            // the stop flag ended training
  bool restored_best = false;          // the head's weights were set back to best_epoch's
  std::vector<float> class_weights{};  // as used (all 1 for ClassWeighting::none)
  std::vector<GuardEvent> guard_events{};
  std::string guard_stop{};  // why the guard stopped training ("" = it did not)
  bool kept_start = false;   // keep_start: no epoch beat the starting weights on validation
  Evaluation start{};        // keep_start: the starting weights on validation
};

// What the loop trains: its parameter groups (each updated by its own Optimizer with the
// same settings), one training step, and validation.
class Trainable {
 public:
  virtual ~Trainable() = default;
  virtual Shape input_row() const = 0;  // the rows train_step reads
  virtual int classes() const = 0;
  virtual std::vector<std::vector<Param>*> param_groups() = 0;
  // As DenseHead::train_step: fills every Param::grad.
  virtual BatchResult train_step(const float* rows, int n, std::span<const int> labels,
                                 std::span<const float> sample_weights,
                                 std::mt19937_64& dropout_rng) = 0;
  virtual Evaluation evaluate(FeatureSource& src, int batch, const std::atomic<bool>* stop) = 0;
  // After a train_step: why the network has collapsed in a way its predictions may not show
  // yet (block5's outputs all zero), or "".
  virtual std::string collapse() const { return {}; }
};

// Trains `model` in place. `val` may be null. Throws UsageError for bad options (patience
// without validation, epochs or batch < 1) and Error for data that does not fit the model
// (row shape, labels outside [0, classes), an empty training source).
TrainResult fit(Trainable& model, FeatureSource& train_src, FeatureSource* val,
                const TrainOptions& opt, const TrainCallbacks& callbacks = {});

// fit() for a head alone.
TrainResult train(DenseHead& head, FeatureSource& train_src, FeatureSource* val,
                  const TrainOptions& opt, const TrainCallbacks& callbacks = {});

}  // namespace tl
