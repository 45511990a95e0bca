// The L-BFGS linear probe (see logreg.hpp).
#include "tl/logreg.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <optional>
#include <tuple>

#include <fmt/format.h>

#include "tl/error.hpp"
#include "tl/evaluate.hpp"

namespace tl {

std::vector<double> default_c_grid() {
  std::vector<double> cs;
  for (int k = -12; k <= 8; ++k) cs.push_back(std::pow(10.0, k / 2.0));
  return cs;
}

namespace {

// The rows of one or more sources as head inputs {n, F}: prepared once and kept in memory, or,
// above the memory limit, read and prepared again chunk by chunk at every pass.
class Rows {
 public:
  Rows(const DenseHead& head, std::vector<FeatureSource*> sources, std::uint64_t memory_limit,
       int batch)
      : head_(&head), sources_(std::move(sources)), batch_(batch), f_(head.features()) {
    for (auto* s : sources_) {
      const auto l = labels_of(*s);
      labels_.insert(labels_.end(), l.begin(), l.end());
    }
    const std::uint64_t bytes = labels_.size() * static_cast<std::uint64_t>(f_) * sizeof(float);
    if (memory_limit == 0 || bytes <= memory_limit) {
      x_.resize(labels_.size() * static_cast<size_t>(f_));
      size_t at = 0;
      for (auto* s : sources_)
        each_chunk_of(*s, [&](const float* x, int n) {
          std::copy(x, x + static_cast<size_t>(n) * f_, x_.data() + at * f_);
          at += n;
        });
    }
  }
  size_t rows() const { return labels_.size(); }
  const std::vector<int>& labels() const { return labels_; }
  std::uint64_t bytes() const { return x_.size() * sizeof(float); }  // kept in memory

  // fn(x {n, F}, first row, n) over every row, `batch` rows at a time, source by source (the
  // same chunks whether kept or streamed, so the same sums to the bit).
  template <typename Fn>
  void each_chunk(Fn&& fn) {
    if (!x_.empty()) {
      size_t start = 0;
      for (auto* s : sources_) {
        const size_t end = start + s->rows();
        for (size_t first = start; first < end; first += batch_)
          fn(x_.data() + first * f_, first,
             static_cast<int>(std::min<size_t>(batch_, end - first)));
        start = end;
      }
      return;
    }
    size_t first = 0;
    for (auto* s : sources_)
      each_chunk_of(*s, [&](const float* x, int n) {
        fn(x, first, n);
        first += n;
      });
  }

 private:
  // fn(x {n, F}, n) over the rows of `s`, prepared (pooled, standardized) `batch` at a time.
  template <typename Fn>
  void each_chunk_of(FeatureSource& s, Fn&& fn) {
    for_each_batch(s, batch_, [&](size_t, int n, const float* rows) {
      x_buf_.resize(static_cast<size_t>(n) * f_);
      head_->prepare(rows, n, x_buf_.data());  // {n, h, w, c} -> {n, F}
      fn(x_buf_.data(), n);
      return true;
    });
  }

  const DenseHead* head_;
  std::vector<FeatureSource*> sources_;
  int batch_;
  size_t f_;
  std::vector<int> labels_;
  std::vector<float> x_, x_buf_;
};

// The objective over some Rows, evaluated with a linear head on the prepared inputs.
// theta = [kernel F x C row-major (Keras's layout), bias C].
class LogLoss {
 public:
  LogLoss(DenseHead& probe, Rows& rows, std::span<const float> class_weight)
      : probe_(&probe), rows_(&rows), class_weight_(class_weight) {}

  double operator()(std::span<const double> theta, std::span<double> g, double c) {
    set(theta);
    const auto& ps = probe_->params();  // kernel, bias
    const size_t nk = ps[0].value.size();
    std::fill(g.begin(), g.end(), 0.0);
    double f = 0;
    const auto& labels = rows_->labels();
    rows_->each_chunk([&](const float* x, size_t first, int n) {
      weights_.resize(n);
      for (int i = 0; i < n; ++i) weights_[i] = class_weight_[labels[first + i]];
      const BatchResult r =
          probe_->train_step(x, n, {labels.data() + first, static_cast<size_t>(n)}, weights_, rng_);
      f += r.loss * n;  // the batch mean -> its sum
      for (size_t i = 0; i < nk; ++i) g[i] += static_cast<double>(ps[0].grad[i]) * n;
      for (size_t i = 0; i < ps[1].grad.size(); ++i)
        g[nk + i] += static_cast<double>(ps[1].grad[i]) * n;
    });
    const double rows = static_cast<double>(rows_->rows()), l2 = 1.0 / (c * rows);
    double w2 = 0;
    for (size_t i = 0; i < g.size(); ++i) g[i] /= rows;
    for (size_t i = 0; i < nk; ++i) w2 += theta[i] * theta[i], g[i] += l2 * theta[i];
    return f / rows + 0.5 * l2 * w2;
  }

  // Mean unweighted cross-entropy and accuracy of theta on `rows`.
  std::pair<double, double> score(std::span<const double> theta, Rows& rows) {
    set(theta);
    double loss = 0;
    size_t hits = 0;
    const auto& labels = rows.labels();
    rows.each_chunk([&](const float* x, size_t first, int n) {
      const BatchResult r =
          probe_->evaluate(x, n, {labels.data() + first, static_cast<size_t>(n)}, nullptr);
      loss += r.loss * n;
      hits += r.correct;
    });
    const double n = static_cast<double>(rows.rows());
    return {loss / n, static_cast<double>(hits) / n};
  }

  void set(std::span<const double> theta) {
    auto& ps = probe_->params();
    size_t k = 0;
    for (auto& p : ps)
      for (float& v : p.value) v = static_cast<float>(theta[k++]);
  }

 private:
  DenseHead* probe_;
  Rows* rows_;
  std::span<const float> class_weight_;
  std::vector<float> weights_;
  std::mt19937_64 rng_{0};  // a linear head draws nothing
};

void check(const DenseHead& head, const LogregOptions& o, bool has_val) {
  if (head.config().kind != HeadKind::linear)
    throw UsageError("logistic regression fits a linear head");
  if (o.batch < 1) throw UsageError(fmt::format("batch size {} (must be >= 1)", o.batch));
  if (o.patience < 1)
    throw UsageError(fmt::format("logreg patience {} (must be >= 1)", o.patience));
  for (size_t i = 0; i < o.cs.size(); ++i)
    if (!(o.cs[i] > 0) || !std::isfinite(o.cs[i]) || (i > 0 && o.cs[i] <= o.cs[i - 1]))
      throw UsageError(fmt::format("logreg C grid: {} (need finite values > 0, ascending)",
                                   fmt::join(o.cs, ", ")));
  const size_t grid = o.cs.empty() ? default_c_grid().size() : o.cs.size();
  if (!has_val && grid != 1)
    throw UsageError(
        "logistic regression chooses C on validation rows: give validation data or "
        "one C");
}

}  // namespace

LogregResult fit_logreg(DenseHead& head, FeatureSource& train, FeatureSource* val,
                        const LogregOptions& opt,
                        const std::function<void(const LogregPoint&)>& on_point) {
  check(head, opt, val != nullptr);
  check_source(head, train, "training");
  if (val) check_source(head, *val, "validation");
  if (train.rows() == 0) throw Error("no training rows");
  if (val && val->rows() == 0) throw Error("no validation rows");
  const int classes = head.config().classes;
  const std::vector<double> cs = opt.cs.empty() ? default_c_grid() : opt.cs;

  // The probe reads prepared rows {n, F}: a linear head with nothing before its Dense layer.
  DenseHead probe({.kind = HeadKind::linear,
                   .pool = Pool::none,
                   .classes = classes,
                   .input = {1, 1, 1, head.features()}},
                  0);
  // The memory limit covers the kept rows together: training first, validation in what is left.
  const std::uint64_t limit = opt.memory_limit;
  std::optional<Rows> train_rows, val_rows;
  train_rows.emplace(head, std::vector<FeatureSource*>{&train}, limit, opt.batch);
  if (val) {
    const std::uint64_t left = limit == 0 ? 0 : limit - std::min(limit, train_rows->bytes());
    val_rows.emplace(head, std::vector<FeatureSource*>{val},
                     limit == 0 ? 0 : std::max<std::uint64_t>(left, 1), opt.batch);
  }
  const std::vector<float> cw = class_weights(train_rows->labels(), classes, opt.class_weighting);
  if (val) class_weights(val_rows->labels(), classes, ClassWeighting::none);  // checks labels
  LogLoss objective(probe, *train_rows, cw);

  const size_t nk = static_cast<size_t>(head.features()) * classes;
  std::vector<double> theta(nk + classes, 0.0), best_theta;  // zeros, as scikit-learn starts
  LogregResult res;
  double best_acc = -1, best_loss = std::numeric_limits<double>::infinity();
  int wait = 0;
  using clock = std::chrono::steady_clock;
  for (double c : cs) {
    const auto t0 = clock::now();
    LbfgsOptions lo = opt.lbfgs;
    lo.stop = opt.stop;
    const LbfgsResult r = minimize_lbfgs(
        theta, [&](std::span<const double> x, std::span<double> g) { return objective(x, g, c); },
        lo);
    if (r.stop == LbfgsStop::stopped && !res.path.empty()) {
      res.interrupted = true;
      break;
    }
    LogregPoint pt{.c = c, .iterations = r.iterations, .stop = r.stop, .loss = r.f};
    pt.accuracy = objective.score(theta, *train_rows).second;
    if (val) {
      std::tie(pt.val_loss, pt.val_accuracy) = objective.score(theta, *val_rows);
      pt.has_val = true;
    }
    pt.seconds = std::chrono::duration<double>(clock::now() - t0).count();
    res.path.push_back(pt);
    if (on_point) on_point(pt);
    const bool better_acc = pt.val_accuracy > best_acc;
    const bool tie = pt.val_accuracy == best_acc && pt.val_loss < best_loss;
    if (!val || better_acc || tie) {
      res.chosen = res.path.size() - 1;
      best_theta = theta;
    }
    const bool progress = better_acc || pt.val_loss < best_loss;
    best_acc = std::max(best_acc, pt.val_accuracy);
    best_loss = std::min(best_loss, pt.val_loss);
    wait = progress ? 0 : wait + 1;
    if (r.stop == LbfgsStop::stopped) {
      res.interrupted = true;
      break;
    }
    if (val && wait >= opt.patience) break;
  }
  res.c = res.path.at(res.chosen).c;
  theta = best_theta;

  if (opt.refit && val && !res.interrupted) {
    const auto t0 = clock::now();
    // The refit's rows are all the training rows: standardized by their own mean and std.
    train_rows.reset();  // the walk's rows make room for the refit's
    val_rows.reset();
    const Standardization walked = head.standardization();
    if (!walked.empty())
      head.set_standardization(input_statistics(head, std::vector<FeatureSource*>{&train, val}));
    Rows all_rows(head, {&train, val}, limit, opt.batch);
    const std::vector<float> cw_all =
        class_weights(all_rows.labels(), classes, opt.class_weighting);
    LogLoss all(probe, all_rows, cw_all);
    LbfgsOptions lo = opt.lbfgs;
    lo.stop = opt.stop;
    const LbfgsResult r = minimize_lbfgs(
        theta, [&](std::span<const double> x, std::span<double> g) { return all(x, g, res.c); },
        lo);
    if (r.stop == LbfgsStop::stopped) {  // keep the walk's best, with its standardisation
      res.interrupted = true;
      theta = best_theta;
      head.set_standardization(walked);
    } else {
      res.refitted = true;
      res.refit = {.c = res.c, .iterations = r.iterations, .stop = r.stop, .loss = r.f};
      res.refit.accuracy = all.score(theta, all_rows).second;
      res.refit.seconds = std::chrono::duration<double>(clock::now() - t0).count();
      if (on_point) on_point(res.refit);
    }
  }
  // The fit, into the head's kernel and bias (its standardisation is what the rows had).
  auto& ps = head.params();
  for (size_t i = 0; i < nk; ++i) ps[0].value[i] = static_cast<float>(theta[i]);
  for (int k = 0; k < classes; ++k) ps[1].value[k] = static_cast<float>(theta[nk + k]);
  return res;
}

}  // namespace tl
