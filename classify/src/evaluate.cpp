// A head over a whole source, batch by batch.
#include "tl/evaluate.hpp"

#include <algorithm>
#include <numeric>

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

// Calls fn(first_row, n, rows_buffer) for consecutive batches; false from fn stops.
template <typename Fn>
void for_each_batch(DenseHead& head, FeatureSource& src, int batch, Fn&& fn) {
  if (batch < 1) throw UsageError(fmt::format("batch size {} (must be >= 1)", batch));
  const size_t total = src.rows();
  std::vector<float> rows(std::min<size_t>(batch, total) * head.row_size());
  std::vector<size_t> idx;
  for (size_t first = 0; first < total; first += batch) {
    const int n = static_cast<int>(std::min<size_t>(batch, total - first));
    idx.resize(n);
    std::iota(idx.begin(), idx.end(), first);
    src.read(idx, rows.data());
    if (!fn(first, n, rows.data())) return;
  }
}

}  // namespace

std::vector<float> predict(DenseHead& head, FeatureSource& src, int batch) {
  check_source(head, src, "prediction");
  const size_t classes = head.config().classes;
  std::vector<float> probs(src.rows() * classes);
  for_each_batch(head, src, batch, [&](size_t first, int n, const float* rows) {
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
  for_each_batch(head, src, batch, [&](size_t first, int n, const float* rows) {
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
