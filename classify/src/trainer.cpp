// The one training loop (see trainer.hpp).
#include "tl/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include <fmt/format.h>

#include "tl/error.hpp"
#include "tl/layer_plan.hpp"
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
  if (o.guard_retries < 0)
    throw UsageError(fmt::format("guard retries {} (must be >= 0)", o.guard_retries));
  if (!(o.explode_factor > 1))
    throw UsageError(fmt::format("explode factor {} (must be > 1)", o.explode_factor));
  if (!(o.clip_norm >= 0))
    throw UsageError(fmt::format("clip norm {} (must be >= 0)", o.clip_norm));
  if (!(o.start_margin >= 0 && o.start_margin < 1))
    throw UsageError(fmt::format("start margin {} (must be in [0, 1))", o.start_margin));
}

void check_rows(const Trainable& m, const FeatureSource& src, const char* what) {
  const Shape a = src.row_shape(), b = m.input_row();
  if (a.h != b.h || a.w != b.w || a.c != b.c)
    throw Error(fmt::format("{} features are [{}, {}, {}] per row, the model takes [{}, {}, {}]",
                            what, a.h, a.w, a.c, b.h, b.w, b.c));
}

bool stopped(const std::atomic<bool>* stop) {
  return stop && stop->load();
}

using Groups = std::vector<std::vector<Param>*>;
using Weights = std::vector<std::vector<float>>;

Weights snapshot(const Groups& groups) {
  Weights w;
  for (const auto* g : groups)
    for (const Param& p : *g) w.push_back(p.value);
  return w;
}

void restore(const Groups& groups, const Weights& w) {
  size_t k = 0;
  for (auto* g : groups)  // copied into place: oneDNN primitives read these buffers
    for (Param& p : *g) std::copy(w.at(k).begin(), w.at(k).end(), p.value.begin()), ++k;
}

// L2 norm of every gradient together, summed in a fixed order.
double grad_norm(const Groups& groups) {
  double sum = 0;
  for (const auto* g : groups)
    for (const Param& p : *g)
      for (float v : p.grad) sum += static_cast<double>(v) * v;
  return std::sqrt(sum);
}

void scale_grads(const Groups& groups, float factor) {
  for (auto* g : groups)
    for (Param& p : *g)
      for (float& v : p.grad) v *= factor;
}

std::vector<Optimizer> optimizers(const OptimizerConfig& cfg, const Groups& groups) {
  std::vector<Optimizer> o;
  for (const auto* g : groups) o.emplace_back(cfg, *g);
  return o;
}

// A network has collapsed when, over the last quarter of an epoch, its logits vary by less
// than kCollapsedSpread between rows and its loss is at least kCollapsedLoss of the loss of
// predicting the class frequencies: what dead ReLUs leave (the output biases alone). A slow
// but sound learner has the loss and not the flat outputs.
constexpr double kCollapsedLoss = 0.99;
constexpr double kCollapsedSpread = 0.05;

// The loss of the best constant prediction: p_c proportional to the class's weighted count.
double constant_prediction_loss(const std::vector<int>& labels, const std::vector<float>& w,
                                int classes) {
  std::vector<double> mass(classes, 0.0);
  for (int y : labels) mass[y] += w[y];
  double total = 0, loss = 0;
  for (double m : mass) total += m;
  for (double m : mass)
    if (m > 0) loss -= m / static_cast<double>(labels.size()) * std::log(m / total);
  return loss;
}

int distinct_labels(const std::vector<int>& labels) {
  std::vector<int> l = labels;
  std::sort(l.begin(), l.end());
  return static_cast<int>(std::unique(l.begin(), l.end()) - l.begin());
}

// The weights a head is trained through fit(): its own params, evaluated with tl::evaluate.
class HeadTrainable : public Trainable {
 public:
  explicit HeadTrainable(DenseHead& head) : head_(&head) {}
  Shape input_row() const override { return head_->config().input; }
  int classes() const override { return head_->config().classes; }
  std::vector<std::vector<Param>*> param_groups() override { return {&head_->params()}; }
  BatchResult train_step(const float* rows, int n, std::span<const int> labels,
                         std::span<const float> w, std::mt19937_64& rng) override {
    return head_->train_step(rows, n, labels, w, rng);
  }
  Evaluation evaluate(FeatureSource& src, int batch, const std::atomic<bool>* stop) override {
    return tl::evaluate(*head_, src, batch, nullptr, stop);
  }

 private:
  DenseHead* head_;
};

}  // namespace

TrainResult fit(Trainable& model, FeatureSource& train_src, FeatureSource* val,
                const TrainOptions& opt, const TrainCallbacks& cb) {
  check_options(opt, val);
  check_rows(model, train_src, "training");
  if (val) check_rows(model, *val, "validation");
  const size_t rows = train_src.rows();
  if (rows == 0) throw Error("no training rows");
  if (val && val->rows() == 0) throw Error("no validation rows");
  const int classes = model.classes();

  TrainResult res;
  const std::vector<int> labels = labels_of(train_src);
  res.class_weights = class_weights(labels, classes, opt.class_weighting);  // checks labels
  if (val) class_weights(labels_of(*val), classes, ClassWeighting::none);   // checks labels
  // One predicted class for a whole epoch is a collapse only with enough rows: with fewer
  // than 10 a class, it can be an honest early state.
  const bool can_collapse =
      distinct_labels(labels) > 1 && rows >= 10 * static_cast<size_t>(classes);
  const double prior_loss = constant_prediction_loss(labels, res.class_weights, classes);

  const Groups groups = model.param_groups();
  OptimizerConfig ocfg = Optimizer(opt.optimizer, {}).config();  // learning rate resolved
  std::vector<Optimizer> optim = optimizers(ocfg, groups);
  std::mt19937_64 shuffle_rng(derive_seed(opt.seed, SeedStream::shuffle));
  std::mt19937_64 dropout_rng(derive_seed(opt.seed, SeedStream::dropout));
  std::vector<size_t> order(rows);
  std::iota(order.begin(), order.end(), size_t{0});

  // Batch buffers, allocated once.
  const size_t batch = std::min<size_t>(opt.batch, rows);
  AlignedBuffer batch_rows(batch * train_src.row_size() * sizeof(float));
  std::vector<int> batch_labels(batch);
  std::vector<float> batch_weights(batch);

  // Weights of the last good epoch (the guard's rollback) and of the best one on validation.
  const Weights start = snapshot(groups);
  Weights good = start, best_weights;
  int good_epoch = 0, wait = 0, retries = 0;
  double best_val = std::numeric_limits<double>::infinity();
  if (opt.keep_start && val) {
    res.start = model.evaluate(*val, opt.eval_batch, opt.stop);
    if (std::isfinite(res.start.loss) && res.start.rows == val->rows()) {
      best_val = res.start.loss * (1 - opt.start_margin);  // what an epoch must beat
      best_weights = good;
      res.kept_start = true;
    }
  }
  double start_loss = std::numeric_limits<double>::quiet_NaN();
  using clock = std::chrono::steady_clock;

  for (int epoch = 1; epoch <= opt.epochs && !res.interrupted;) {
    const auto t0 = clock::now();
    if (opt.shuffle) shuffle(shuffle_rng, std::span(order));
    double loss_sum = 0, tail_loss = 0, tail_spread = 0;  // tail: the last quarter of batches
    size_t correct = 0, done = 0, batches = 0, tail_rows = 0;
    const size_t per_epoch = (rows + batch - 1) / batch;
    const size_t tail_from = per_epoch - std::max<size_t>(1, per_epoch / 4);
    int min_class = classes, max_class = -1;
    std::string trouble;
    bool collapsed = false;  // a collapse builds up unseen: it rolls back to the start
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
      const BatchResult r = model.train_step(batch_rows.floats(), n, y, w, dropout_rng);
      ++batches;
      if (std::isnan(start_loss) && std::isfinite(r.loss))
        start_loss = std::max(r.loss, std::log(static_cast<double>(classes)));
      const double norm = grad_norm(groups);
      if (!std::isfinite(r.loss))
        trouble = "the loss is not finite";
      else if (!std::isfinite(norm))
        trouble = "the gradient is not finite";
      else if (r.loss > opt.explode_factor * start_loss)
        trouble = fmt::format("the batch loss {:.4g} is over {:g} x the starting {:.4g}", r.loss,
                              opt.explode_factor, start_loss);
      else
        collapsed = !(trouble = model.collapse()).empty();
      if (!trouble.empty()) break;
      if (opt.clip_norm > 0 && norm > opt.clip_norm)
        scale_grads(groups, static_cast<float>(opt.clip_norm / norm));
      double penalty = 0;  // of the weights this batch used
      for (size_t g = 0; g < groups.size(); ++g) penalty += optim[g].penalty(*groups[g]);
      for (size_t g = 0; g < groups.size(); ++g) optim[g].step(*groups[g]);
      loss_sum += (r.loss + penalty) * n;
      if (batches > tail_from) {
        tail_loss += r.loss * n;
        tail_rows += n;
        tail_spread = std::max(tail_spread, r.logit_spread);
      }
      correct += r.correct;
      done += n;
      min_class = std::min(min_class, r.min_class);
      max_class = std::max(max_class, r.max_class);
      if (cb.on_batch) cb.on_batch(epoch, done, rows);
    }
    if (res.interrupted) break;
    if (trouble.empty() && can_collapse && min_class == max_class) {
      trouble =
          fmt::format("the network collapsed: every training row predicted as class {}", min_class);
      collapsed = true;
      batches = 0;  // found after the epoch
    } else if (trouble.empty() && can_collapse && tail_rows > 0 &&
               tail_loss / static_cast<double>(tail_rows) >= kCollapsedLoss * prior_loss &&
               tail_spread < kCollapsedSpread) {
      trouble = fmt::format(
          "the network collapsed: its outputs no longer depend on the input (logits vary by "
          "{:.2g} over the rows) and its loss {:.4f} is the {:.4f} of predicting the class "
          "frequencies",
          tail_spread, tail_loss / static_cast<double>(tail_rows), prior_loss);
      collapsed = true;
      batches = 0;
    }

    EpochRecord rec;
    if (trouble.empty()) {
      rec.epoch = epoch;
      rec.loss = loss_sum / static_cast<double>(done);
      rec.accuracy = static_cast<double>(correct) / static_cast<double>(done);
      rec.learning_rate = ocfg.learning_rate;
      rec.guard_retries = retries;
      if (val) {
        const Evaluation e = model.evaluate(*val, opt.eval_batch, opt.stop);
        if (stopped(opt.stop) && e.rows < val->rows()) {  // validation cut short: not an epoch
          res.interrupted = true;
          break;
        }
        rec.has_val = true;
        rec.val_loss = e.loss;
        rec.val_accuracy = e.accuracy;
        if (!std::isfinite(e.loss)) {
          trouble = "the validation loss is not finite";
          batches = 0;
        }
      }
    }
    if (!trouble.empty()) {  // the guard: roll back, halve the learning rate, redo the epoch
      GuardEvent ev{.epoch = epoch,
                    .batch = batches,
                    .reason = trouble,
                    .rolled_back_to = collapsed ? 0 : good_epoch,
                    .learning_rate = ocfg.learning_rate / 2,
                    .gave_up = retries >= opt.guard_retries};
      res.guard_events.push_back(ev);
      if (collapsed) good = start, good_epoch = 0;
      restore(groups, good);
      if (cb.on_guard) cb.on_guard(ev);
      if (ev.gave_up) {
        res.guard_stop = fmt::format(
            "training diverged in epoch {} ({}) and the guard gave up after {} rollback(s) "
            "halving the learning rate (last tried {:g})",
            epoch, trouble, retries, ocfg.learning_rate);
        break;
      }
      ++retries;
      ocfg.learning_rate /= 2;
      optim = optimizers(ocfg, groups);  // fresh moments: the old ones carry the blow-up
      continue;
    }
    if (rec.has_val && rec.val_loss < best_val - opt.min_delta) {  // Keras: beyond min_delta
      best_val = rec.val_loss;
      best_weights = snapshot(groups);
      res.best_epoch = epoch;
      res.kept_start = false;
      rec.best = true;
      wait = 0;
    } else if (rec.has_val) {
      ++wait;
    }
    good = snapshot(groups);
    good_epoch = epoch;
    rec.seconds = std::chrono::duration<double>(clock::now() - t0).count();
    res.history.push_back(rec);
    if (cb.on_epoch) cb.on_epoch(rec);
    if (opt.patience > 0 && wait >= opt.patience) {
      res.early_stopped = true;
      break;
    }
    ++epoch;
  }

  // The model holds the last completed epoch's weights (or, after the guard gave up, the
  // last good ones), plus the updates of an interrupted epoch.
  const int last = res.history.empty() ? 0 : res.history.back().epoch;
  const bool holds_best =
      res.best_epoch == last && !res.kept_start && !res.interrupted && res.guard_stop.empty();
  if (val && opt.restore_best && !best_weights.empty() && !holds_best) {
    restore(groups, best_weights);
    res.restored_best = true;
  } else if (!res.guard_stop.empty()) {
    restore(groups, good);
  }
  return res;
}

TrainResult train(DenseHead& head, FeatureSource& train_src, FeatureSource* val,
                  const TrainOptions& opt, const TrainCallbacks& cb) {
  HeadTrainable model(head);
  return fit(model, train_src, val, opt, cb);
}

}  // namespace tl
