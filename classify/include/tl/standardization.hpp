// The head's input standardisation: per feature, x' = (x - mean) / std, with the mean and the
// population standard deviation (ddof 0) of the training rows, as scikit-learn's StandardScaler
// - except that each variance gets kVarianceFloor of the features' mean variance added, as
// batch normalisation adds its epsilon. A feature that hardly varies in training (a ReLU that
// fired for one image) would otherwise be multiplied by 1 / std: float rounding between two
// ways of computing the same row, and the gradient fine-tuning sends back into block5, would be
// multiplied alike. A feature of typical spread changes by 0.005%; a constant one (std 0) is
// divided by 1% of the typical std instead of StandardScaler's 1 (1 when every feature is
// constant). Why at all: large features (VGG16 has no batch normalisation; mean |x| is in the
// hundreds) otherwise make every learning rate a guess.
//
//   tl::FeatureMoments m(features);
//   for (each batch {n, features}) m.add(x, n);        // one streamed pass, in double
//   tl::Standardization s = m.result();
//   tl::standardize(s, x, n);                          // {n, features} in place
#pragma once

#include <cstddef>
#include <vector>

namespace tl {

inline constexpr double kVarianceFloor = 1e-4;

struct Standardization {
  std::vector<float> mean{}, std{};  // [features] each; std > 0
  bool empty() const { return mean.empty(); }
};

// Running per-feature mean and sum of squared deviations over batches of rows, in double:
// each batch's own moments (two passes over it) merged into the total with Chan, Golub and
// LeVeque's pairwise update, so neither a large mean nor millions of rows cost precision.
class FeatureMoments {
 public:
  explicit FeatureMoments(int features);
  void add(const float* x, int n);  // {n, features}, row-major
  size_t rows() const { return rows_; }
  // Error when no row was added.
  Standardization result() const;

 private:
  int features_;
  size_t rows_ = 0;
  std::vector<double> mean_, m2_, batch_mean_, batch_m2_;
};

// {n, features} in place: x = (x - mean) / std.
void standardize(const Standardization& s, float* x, int n);
// The backward of standardize: d x = d x' / std, {n, features} in place.
void standardize_backward(const Standardization& s, float* dx, int n);

}  // namespace tl
