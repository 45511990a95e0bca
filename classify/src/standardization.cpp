// Feature standardisation (see standardization.hpp).
#include "tl/standardization.hpp"

#include <cmath>

#include <fmt/format.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "tl/error.hpp"

namespace tl {

namespace {

// Features per oneTBB task: a block of columns, all rows of the batch.
constexpr int kFeatureBlock = 256;

template <typename Fn>
void for_feature_blocks(int features, Fn&& fn) {
  tbb::parallel_for(tbb::blocked_range<int>(0, features, kFeatureBlock),
                    [&](const tbb::blocked_range<int>& r) { fn(r.begin(), r.end()); });
}

}  // namespace

FeatureMoments::FeatureMoments(int features)
    : features_(features),
      mean_(features, 0.0),
      m2_(features, 0.0),
      batch_mean_(features, 0.0),
      batch_m2_(features, 0.0) {
  if (features < 1) throw Error(fmt::format("feature moments of {} features", features));
}

void FeatureMoments::add(const float* x, int n) {
  if (n < 1) return;
  const size_t f = features_;
  const double na = static_cast<double>(rows_), nb = n, total = na + nb;
  for_feature_blocks(features_, [&](int j0, int j1) {
    for (int j = j0; j < j1; ++j) batch_mean_[j] = 0, batch_m2_[j] = 0;
    for (int i = 0; i < n; ++i)  // row by row: the inner loop reads contiguous floats
      for (int j = j0; j < j1; ++j) batch_mean_[j] += x[i * f + j];
    for (int j = j0; j < j1; ++j) batch_mean_[j] /= nb;
    for (int i = 0; i < n; ++i)
      for (int j = j0; j < j1; ++j) {
        const double d = x[i * f + j] - batch_mean_[j];
        batch_m2_[j] += d * d;
      }
    for (int j = j0; j < j1; ++j) {  // Chan et al.: merge (na, mean, m2) with the batch's
      const double delta = batch_mean_[j] - mean_[j];
      mean_[j] += delta * nb / total;
      m2_[j] += batch_m2_[j] + delta * delta * na * nb / total;
    }
  });
  rows_ += n;
}

Standardization FeatureMoments::result() const {
  if (rows_ == 0) throw Error("standardisation: no rows to take the mean and deviation of");
  std::vector<double> var(features_);
  double mean_var = 0;
  for (int j = 0; j < features_; ++j) {
    var[j] = m2_[j] / static_cast<double>(rows_);
    mean_var += var[j] / features_;
  }
  Standardization s;
  s.mean.resize(features_);
  s.std.resize(features_);
  for (int j = 0; j < features_; ++j) {
    const double sd = std::sqrt(var[j] + kVarianceFloor * mean_var);
    s.mean[j] = static_cast<float>(mean_[j]);
    s.std[j] = static_cast<float>(sd) > 0.f ? static_cast<float>(sd) : 1.f;
  }
  return s;
}

void standardize(const Standardization& s, float* x, int n) {
  const int f = static_cast<int>(s.mean.size());
  tbb::parallel_for(tbb::blocked_range<int>(0, n, 16), [&](const tbb::blocked_range<int>& r) {
    for (int i = r.begin(); i != r.end(); ++i) {
      float* row = x + static_cast<size_t>(i) * f;
      for (int j = 0; j < f; ++j) row[j] = (row[j] - s.mean[j]) / s.std[j];
    }
  });
}

void standardize_backward(const Standardization& s, float* dx, int n) {
  const int f = static_cast<int>(s.std.size());
  tbb::parallel_for(tbb::blocked_range<int>(0, n, 16), [&](const tbb::blocked_range<int>& r) {
    for (int i = r.begin(); i != r.end(); ++i) {
      float* row = dx + static_cast<size_t>(i) * f;
      for (int j = 0; j < f; ++j) row[j] /= s.std[j];
    }
  });
}

}  // namespace tl
