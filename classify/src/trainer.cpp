// The training loop (see trainer.hpp).
#include "tl/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include <fmt/format.h>

#include "aligned_buffer.hpp"
#include "tl/error.hpp"
#include "tl/evaluate.hpp"
#include "tl/seeded_random.hpp"

namespace tl {

namespace {

void check_options(const TrainOptions& o, const FeatureSource* val) {
  if (o.epochs < 1) throw UsageError(fmt::format("epochs {} (must be >= 1)", o.epochs));
  if (o.batch < 1) throw UsageError(fmt::format("batch size {} (must be >= 1)", o.batch));
  if (o.eval_batch < 1)
    throw UsageError(fmt::format("evaluation batch size {} (must be >= 1)", o.eval_batch));
  if (o.patience < 0) throw UsageError(fmt::format("patience {} (must be >= 0)", o.patience));
  if (o.patience > 0 && !val) throw UsageError("early stopping (patience) needs validation data");
}

bool stopped(const std::atomic<bool>* stop) {
  return stop && stop->load();
}

}  // namespace

TrainResult train(DenseHead& head, FeatureSource& train_src, FeatureSource* val,
                  const TrainOptions& opt, const TrainCallbacks& cb) {
  check_options(opt, val);
  check_source(head, train_src, "training");
  if (val) check_source(head, *val, "validation");
  const size_t rows = train_src.rows();
  if (rows == 0) throw Error("no training rows");
  if (val && val->rows() == 0) throw Error("no validation rows");
  const int classes = head.config().classes;

  TrainResult res;
  const std::vector<int> labels = labels_of(train_src);
  res.class_weights = class_weights(labels, classes, opt.class_weighting);  // checks labels
  if (val) class_weights(labels_of(*val), classes, ClassWeighting::none);   // checks labels

  Optimizer optimizer(opt.optimizer, head.params());
  std::mt19937_64 shuffle_rng(derive_seed(opt.seed, SeedStream::shuffle));
  std::mt19937_64 dropout_rng(derive_seed(opt.seed, SeedStream::dropout));
  std::vector<size_t> order(rows);
  std::iota(order.begin(), order.end(), size_t{0});

  // Batch buffers, allocated once.
  const size_t batch = std::min<size_t>(opt.batch, rows);
  detail::AlignedBuffer batch_rows(batch * head.row_size() * sizeof(float));
  std::vector<int> batch_labels(batch);
  std::vector<float> batch_weights(batch);

  double best_val = std::numeric_limits<double>::infinity();
  std::vector<std::vector<float>> best_weights;
  int wait = 0;
  using clock = std::chrono::steady_clock;

  for (int epoch = 1; epoch <= opt.epochs && !res.interrupted; ++epoch) {
    const auto t0 = clock::now();
    if (opt.shuffle) shuffle(shuffle_rng, std::span(order));
    double loss_sum = 0;
    size_t correct = 0, done = 0;
    for (size_t first = 0; first < rows; first += batch) {
      if (stopped(opt.stop)) {
        res.interrupted = true;
        break;
      }
      const int n = static_cast<int>(std::min(batch, rows - first));
      const std::span<const size_t> idx(order.data() + first, n);
      // Gather: {n, h, w, c} rows (the source may copy in parallel), labels, class weights.
      train_src.read(idx, batch_rows.floats());
      for (int i = 0; i < n; ++i) {
        batch_labels[i] = labels[idx[i]];
        batch_weights[i] = res.class_weights[batch_labels[i]];
      }
      const std::span<const int> y(batch_labels.data(), n);
      const std::span<const float> w(batch_weights.data(), n);
      const BatchResult r = head.train_step(batch_rows.floats(), n, y, w, dropout_rng);
      const double penalty = optimizer.penalty(head.params());  // weights this batch used
      optimizer.step(head.params());
      loss_sum += (r.loss + penalty) * n;
      correct += r.correct;
      done += n;
      if (cb.on_batch) cb.on_batch(epoch, done, rows);
    }
    if (res.interrupted) break;

    EpochRecord rec;
    rec.epoch = epoch;
    rec.loss = loss_sum / static_cast<double>(done);
    rec.accuracy = static_cast<double>(correct) / static_cast<double>(done);
    if (val) {
      const Evaluation e = evaluate(head, *val, opt.eval_batch, nullptr, opt.stop);
      if (stopped(opt.stop) && e.rows < val->rows()) {  // validation cut short: not an epoch
        res.interrupted = true;
        break;
      }
      rec.has_val = true;
      rec.val_loss = e.loss;
      rec.val_accuracy = e.accuracy;
      if (rec.val_loss < best_val - opt.min_delta) {  // Keras: improvement beyond min_delta
        best_val = rec.val_loss;
        best_weights = head.weights();
        res.best_epoch = epoch;
        rec.best = true;
        wait = 0;
      } else {
        ++wait;
      }
    }
    rec.seconds = std::chrono::duration<double>(clock::now() - t0).count();
    res.history.push_back(rec);
    if (cb.on_epoch) cb.on_epoch(rec);
    if (opt.patience > 0 && wait >= opt.patience) {
      res.early_stopped = true;
      break;
    }
  }

  // The head holds the last completed epoch's weights, plus the updates of an interrupted one.
  const int last = res.history.empty() ? 0 : res.history.back().epoch;
  const bool head_is_best = res.best_epoch == last && !res.interrupted;
  if (val && opt.restore_best && res.best_epoch > 0 && !head_is_best) {
    head.set_weights(best_weights);
    res.restored_best = true;
  }
  return res;
}

}  // namespace tl
