// A head over a whole source, batch by batch.
#include "tl/evaluate.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "tl/error.hpp"

namespace tl {

void check_source(const DenseHead& head, const FeatureSource& src, const char* what) {
  const Shape a = src.row_shape(), b = head.config().input;
  if (a.h != b.h || a.w != b.w || a.c != b.c)
    throw Error(fmt::format("{} features are [{}, {}, {}] per row, the head takes [{}, {}, {}]",
                            what, a.h, a.w, a.c, b.h, b.w, b.c));
}

namespace {

void check_batch(int batch) {
  if (batch < 1) throw UsageError(fmt::format("batch size {} (must be >= 1)", batch));
}

}  // namespace

std::vector<float> predict(DenseHead& head, FeatureSource& src, int batch) {
  check_source(head, src, "prediction");
  const size_t classes = head.config().classes;
  std::vector<float> probs(src.rows() * classes);
  check_batch(batch);
  for_each_batch(src, batch, [&](size_t first, int n, const float* rows) {
    head.predict(rows, n, probs.data() + first * classes);
    return true;
  });
  return probs;
}

Evaluation evaluate(DenseHead& head, FeatureSource& src, int batch, std::vector<float>* probs,
                    const std::atomic<bool>* stop) {
  check_source(head, src, "evaluation");
  const size_t classes = head.config().classes;
  if (probs) probs->assign(src.rows() * classes, 0.f);
  Evaluation e;
  double loss_sum = 0;
  size_t correct = 0;
  std::vector<int> labels;
  check_batch(batch);
  for_each_batch(src, batch, [&](size_t first, int n, const float* rows) {
    if (stop && stop->load()) return false;
    labels.resize(n);
    for (int i = 0; i < n; ++i) labels[i] = src.label(first + i);
    const BatchResult r =
        head.evaluate(rows, n, labels, probs ? probs->data() + first * classes : nullptr);
    loss_sum += r.loss * n;  // batch mean -> sum, summed in batch order
    correct += r.correct;
    e.rows += n;
    return true;
  });
  if (e.rows > 0) {
    e.loss = loss_sum / static_cast<double>(e.rows);
    e.accuracy = static_cast<double>(correct) / static_cast<double>(e.rows);
  }
  return e;
}

}  // namespace tl
