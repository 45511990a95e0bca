// Classification metrics for tl-predict: accuracy, top-k, the confusion matrix and
// per-class precision / recall / F1 (scikit-learn's definitions; 0 where a denominator is 0,
// like its zero_division=0).
//
//   std::vector<int> pred = tl::argmax_rows(probs, classes);
//   tl::ConfusionMatrix cm = tl::confusion_matrix(labels, pred, classes);
//   tl::ClassificationReport rep = tl::classification_report(cm);  // rep.per_class[c].f1
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace tl {

// Most probable class of each row of {N, C} (the lowest index on ties).
std::vector<int> argmax_rows(std::span<const float> probs, int classes);

// The k most probable classes of one row, most probable first (lower index first on ties).
std::vector<int> top_k(std::span<const float> row, int k);

// Fraction of rows whose predicted class equals the label (0 for no rows).
double accuracy(std::span<const int> labels, std::span<const int> predicted);

// Fraction of rows whose label is among the k most probable classes, ties broken as top_k.
double top_k_accuracy(std::span<const float> probs, int classes, std::span<const int> labels,
                      int k);

struct ConfusionMatrix {
  int classes = 0;
  std::vector<std::int64_t> counts{};  // [truth][predicted], row-major
  std::int64_t at(int truth, int predicted) const {
    return counts[static_cast<size_t>(truth) * classes + predicted];
  }
};

// Error for a label or prediction outside [0, classes) or different lengths.
ConfusionMatrix confusion_matrix(std::span<const int> labels, std::span<const int> predicted,
                                 int classes);

struct ClassMetrics {
  double precision = 0;      // tp / (tp + fp)
  double recall = 0;         // tp / (tp + fn)
  double f1 = 0;             // 2 p r / (p + r)
  std::int64_t support = 0;  // rows whose label is the class
};

struct ClassificationReport {
  std::vector<ClassMetrics> per_class{};
  ClassMetrics macro;     // unweighted mean over classes; support = all rows
  ClassMetrics weighted;  // mean weighted by support
  double accuracy = 0;
};

ClassificationReport classification_report(const ConfusionMatrix& cm);

}  // namespace tl
