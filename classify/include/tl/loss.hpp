// Softmax cross-entropy, the loss of every head, and Keras's class weights.
//
//   std::vector<float> diff(n * classes);
//   double loss = tl::softmax_cross_entropy(logits, probs, labels, weights, classes, diff.data());
//   auto w = tl::class_weights(labels, classes, tl::ClassWeighting::balanced);
#pragma once

#include <span>
#include <string_view>
#include <vector>

namespace tl {

// Loss of one batch of N = labels.size() rows: sum_i w_i * ce_i / N, where
// ce_i = logsumexp(logits_i) - logits_i[y_i] (computed in double from the logits, stable for
// any scale) and w_i = sample_weights[i] (1 when sample_weights is empty). Dividing by N, not
// by the sum of weights, is Keras's SUM_OVER_BATCH_SIZE reduction.
//
// When diff_logits is not null it receives d loss / d logits = (probs - onehot(y)) * w_i / N,
// {N, C}. Hand-written rather than oneDNN's softmax backward: fused with the cross-entropy the
// Jacobian collapses to this subtraction, which is exact and one pass, while softmax backward
// followed by a log-loss gradient would divide by probabilities that can underflow.
//
// Throws Error for a label outside [0, classes).
double softmax_cross_entropy(const float* logits, const float* probs, std::span<const int> labels,
                             std::span<const float> sample_weights, int classes,
                             float* diff_logits);

// Index of the largest value of one row (the first one on ties, like numpy.argmax).
int argmax(std::span<const float> row);

enum class ClassWeighting { none, balanced };
ClassWeighting parse_class_weighting(std::string_view s);  // "none" | "balanced"
std::string_view to_string(ClassWeighting w);

// One weight per class. none: all 1. balanced (Keras's recipe from scikit-learn's
// compute_class_weight): n_samples / (n_present * count_c), where n_present is the number of
// classes that occur in `labels` (== classes when all do); an absent class gets 0 (it has no
// samples to weigh). Throws Error for a label outside [0, classes).
std::vector<float> class_weights(std::span<const int> labels, int classes, ClassWeighting w);

}  // namespace tl
