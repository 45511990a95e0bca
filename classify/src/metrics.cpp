// Accuracy, top-k, confusion matrix, precision / recall / F1.
#include "tl/metrics.hpp"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

#include "tl/error.hpp"
#include "tl/loss.hpp"

namespace tl {

namespace {
void check_rows(std::span<const float> probs, int classes) {
  if (classes < 1 || probs.size() % classes != 0)
    throw Error(fmt::format("{} probabilities are not rows of {} classes", probs.size(), classes));
}
double ratio(double a, double b) {
  return b == 0 ? 0.0 : a / b;
}
}  // namespace

std::vector<int> argmax_rows(std::span<const float> probs, int classes) {
  check_rows(probs, classes);
  std::vector<int> out(probs.size() / classes);
  for (size_t i = 0; i < out.size(); ++i) out[i] = argmax(probs.subspan(i * classes, classes));
  return out;
}

std::vector<int> top_k(std::span<const float> row, int k) {
  std::vector<int> idx(row.size());
  std::iota(idx.begin(), idx.end(), 0);
  k = std::clamp(k, 0, static_cast<int>(row.size()));
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int a, int b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
  idx.resize(k);
  return idx;
}

double accuracy(std::span<const int> labels, std::span<const int> predicted) {
  if (labels.size() != predicted.size())
    throw Error(fmt::format("{} labels, {} predictions", labels.size(), predicted.size()));
  size_t hits = 0;
  for (size_t i = 0; i < labels.size(); ++i) hits += labels[i] == predicted[i];
  return ratio(static_cast<double>(hits), static_cast<double>(labels.size()));
}

double top_k_accuracy(std::span<const float> probs, int classes, std::span<const int> labels,
                      int k) {
  check_rows(probs, classes);
  if (labels.size() * classes != probs.size())
    throw Error(fmt::format("{} labels for {} rows", labels.size(), probs.size() / classes));
  size_t hits = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const auto top = top_k(probs.subspan(i * classes, classes), k);
    hits += std::find(top.begin(), top.end(), labels[i]) != top.end();
  }
  return ratio(static_cast<double>(hits), static_cast<double>(labels.size()));
}

ConfusionMatrix confusion_matrix(std::span<const int> labels, std::span<const int> predicted,
                                 int classes) {
  if (labels.size() != predicted.size())
    throw Error(fmt::format("{} labels, {} predictions", labels.size(), predicted.size()));
  if (classes < 1) throw Error(fmt::format("confusion matrix of {} classes", classes));
  ConfusionMatrix cm{classes, std::vector<std::int64_t>(static_cast<size_t>(classes) * classes)};
  for (size_t i = 0; i < labels.size(); ++i) {
    const int t = labels[i], p = predicted[i];
    if (t < 0 || t >= classes || p < 0 || p >= classes)
      throw Error(
          fmt::format("row {}: label {} / prediction {} outside {} classes", i, t, p, classes));
    ++cm.counts[static_cast<size_t>(t) * classes + p];
  }
  return cm;
}

ClassificationReport classification_report(const ConfusionMatrix& cm) {
  const int c = cm.classes;
  ClassificationReport rep;
  rep.per_class.resize(c);
  std::int64_t total = 0, diag = 0;
  for (int k = 0; k < c; ++k) {
    std::int64_t predicted = 0, actual = 0;
    for (int j = 0; j < c; ++j) {
      predicted += cm.at(j, k);
      actual += cm.at(k, j);
    }
    const double tp = static_cast<double>(cm.at(k, k));
    ClassMetrics& m = rep.per_class[k];
    m.precision = ratio(tp, static_cast<double>(predicted));
    m.recall = ratio(tp, static_cast<double>(actual));
    m.f1 = ratio(2 * m.precision * m.recall, m.precision + m.recall);
    m.support = actual;
    total += actual;
    diag += cm.at(k, k);
  }
  for (const ClassMetrics& m : rep.per_class) {
    rep.macro.precision += m.precision / c;
    rep.macro.recall += m.recall / c;
    rep.macro.f1 += m.f1 / c;
    const double w = ratio(static_cast<double>(m.support), static_cast<double>(total));
    rep.weighted.precision += m.precision * w;
    rep.weighted.recall += m.recall * w;
    rep.weighted.f1 += m.f1 * w;
  }
  rep.macro.support = rep.weighted.support = total;
  rep.accuracy = ratio(static_cast<double>(diag), static_cast<double>(total));
  return rep;
}

}  // namespace tl
