// Softmax cross-entropy and its gradient (hand-written, see loss.hpp), class weights.
#include "tl/loss.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "tl/error.hpp"

namespace tl {

namespace {
void check_label(int y, int classes) {
  if (y < 0 || y >= classes)
    throw Error(fmt::format("label {} out of range for {} classes", y, classes));
}
}  // namespace

double softmax_cross_entropy(const float* logits, const float* probs, std::span<const int> labels,
                             std::span<const float> sample_weights, int classes,
                             float* diff_logits) {
  const size_t n = labels.size();
  if (!sample_weights.empty() && sample_weights.size() != n)
    throw Error(fmt::format("{} sample weights for {} labels", sample_weights.size(), n));
  if (n == 0) return 0.0;
  double total = 0;
  for (size_t i = 0; i < n; ++i) {
    const int y = labels[i];
    check_label(y, classes);
    const float* z = logits + i * classes;
    const double w = sample_weights.empty() ? 1.0 : sample_weights[i];
    // {C} logits -> ce = log(sum exp(z - max)) + max - z[y]
    const double zmax = *std::max_element(z, z + classes);
    double sum = 0;
    for (int k = 0; k < classes; ++k) sum += std::exp(static_cast<double>(z[k]) - zmax);
    total += w * (std::log(sum) + zmax - z[y]);
    if (diff_logits) {  // {C} -> {C}: (p - onehot) * w / N
      const float scale = static_cast<float>(w / static_cast<double>(n));
      const float* p = probs + i * classes;
      float* d = diff_logits + i * classes;
      for (int k = 0; k < classes; ++k) d[k] = (p[k] - (k == y ? 1.f : 0.f)) * scale;
    }
  }
  return total / static_cast<double>(n);
}

int argmax(std::span<const float> row) {
  return static_cast<int>(std::max_element(row.begin(), row.end()) - row.begin());
}

ClassWeighting parse_class_weighting(std::string_view s) {
  if (s == "none") return ClassWeighting::none;
  if (s == "balanced") return ClassWeighting::balanced;
  throw UsageError(fmt::format("unknown class weighting '{}' (accepted: none, balanced)", s));
}

std::string_view to_string(ClassWeighting w) {
  return w == ClassWeighting::balanced ? "balanced" : "none";
}

std::vector<float> class_weights(std::span<const int> labels, int classes, ClassWeighting w) {
  std::vector<long long> count(classes, 0);
  for (int y : labels) {
    check_label(y, classes);
    ++count[y];
  }
  std::vector<float> out(classes, 1.f);
  if (w == ClassWeighting::none) return out;
  const long long present =
      std::count_if(count.begin(), count.end(), [](long long c) { return c > 0; });
  for (int k = 0; k < classes; ++k)
    out[k] = count[k] == 0 ? 0.f
                           : static_cast<float>(static_cast<double>(labels.size()) /
                                                (static_cast<double>(present) * count[k]));
  return out;
}

}  // namespace tl
