// The exact linear probe: multinomial logistic regression with L2 on the head's input (pooled
// and standardized rows), fitted to convergence by L-BFGS on full batches, its L2 strength
// chosen on validation rows from a log-spaced grid and then refitted on all rows: the
// linear-probe protocol of the CLIP paper (Radford et al. 2021, appendix A.3). The objective is
// scikit-learn's LogisticRegression(C) divided by C * N:
//   mean_i w_i * CE(x_i W + b, y_i) + ||W||^2 / (2 C N)     (the bias is not penalised)
// It fits the kernel and bias of a linear DenseHead (the same Dense + softmax model as the
// SGD-trained linear head). Matrix products run on oneDNN (DenseHead's layers), the
// optimiser's state in double; deterministic for a given thread count.
//
//   tl::DenseHead head({.kind = tl::HeadKind::linear, .classes = 10, .input = row}, 0);
//   head.set_standardization(tl::input_statistics(head, train));
//   tl::LogregResult r = tl::fit_logreg(head, train, &val, {.refit = true});
//   // r.c is the chosen C; head holds the refit on the training and validation rows
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include "tl/dense_head.hpp"
#include "tl/feature_source.hpp"
#include "tl/lbfgs.hpp"
#include "tl/loss.hpp"

namespace tl {

struct LogregOptions {
  // Inverse L2 strengths to try, ascending (scikit-learn's C); empty = the default grid,
  // 10^-6 .. 10^4 in half decades, walked upwards with warm starts.
  std::vector<double> cs{};
  // The walk stops after this many grid points in a row that neither raise the validation
  // accuracy nor lower the validation loss below its best.
  int patience = 3;
  LbfgsOptions lbfgs{};
  ClassWeighting class_weighting = ClassWeighting::none;
  // Head inputs are kept in memory up to this many bytes, else recomputed from the sources
  // for every evaluation of the objective (0 = no limit).
  std::uint64_t memory_limit = 0;
  int batch = 4096;  // rows per matrix product
  // After choosing C, fit again on the training and validation rows together (warm-started):
  // for validation rows split off the training data.
  bool refit = false;
  const std::atomic<bool>* stop = nullptr;
};

// One fit of the walk (or the refit).
struct LogregPoint {
  double c = 0;
  int iterations = 0;
  LbfgsStop stop = LbfgsStop::iterations;
  double loss = 0, accuracy = 0;  // training rows: the objective (with the L2 term), accuracy
  double val_loss = 0, val_accuracy = 0;  // validation rows (unweighted mean cross-entropy)
  bool has_val = false;
  double seconds = 0;
};

struct LogregResult {
  std::vector<LogregPoint> path{};  // the walk over the grid, in order
  size_t chosen = 0;                // index into path
  double c = 0;                     // the chosen C
  LogregPoint refit{};              // on training + validation rows (has_val false)
  bool refitted = false;
  bool interrupted = false;  // the stop flag ended the walk; the head holds the best so far
};

// Fits `head` (linear, standardisation already set) on `train`. With `val`, C is chosen by the
// highest validation accuracy (ties: the lower validation loss); without it, the grid must hold
// one C. `on_point` is called after each fit. Throws UsageError for a head that is not linear
// or a bad option, Error for data that does not fit the head.
LogregResult fit_logreg(DenseHead& head, FeatureSource& train, FeatureSource* val,
                        const LogregOptions& opt,
                        const std::function<void(const LogregPoint&)>& on_point = {});

// The default grid: 10^-6 .. 10^4 in half decades (21 values).
std::vector<double> default_c_grid();

}  // namespace tl
