// Running a head over a whole FeatureSource: probabilities for tl-predict, loss and accuracy
// for validation. Rows are read in order, `batch` at a time.
//
//   std::vector<float> probs = tl::predict(head, source);          // {rows, C}
//   tl::Evaluation e = tl::evaluate(head, val_source);             // e.loss, e.accuracy
#pragma once

#include <atomic>
#include <cstddef>
#include <vector>

#include "tl/dense_head.hpp"
#include "tl/feature_source.hpp"

namespace tl {

struct Evaluation {
  double loss = 0;      // mean softmax cross-entropy (unweighted)
  double accuracy = 0;  // fraction of rows whose most probable class is the label
  size_t rows = 0;      // rows evaluated (fewer than src.rows() if stopped)
};

// Throws Error when the source's row shape is not the head's input shape.
void check_source(const DenseHead& head, const FeatureSource& src, const char* what);

// Probabilities {src.rows(), C} in row order. Never calls src.label(), so a source without
// labels may return anything there.
std::vector<float> predict(DenseHead& head, FeatureSource& src, int batch = 256);

// Loss and accuracy over every row; probs (optional) receives {rows, C}. Stops between batches
// when *stop becomes true (rows then says how far it got).
Evaluation evaluate(DenseHead& head, FeatureSource& src, int batch = 256,
                    std::vector<float>* probs = nullptr, const std::atomic<bool>* stop = nullptr);

}  // namespace tl
