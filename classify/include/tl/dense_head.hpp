// The classifier trained on cached VGG16 features, as Keras would build it on top of the base:
//   linear: [Flatten | GlobalPool] -> [Standardize] -> Dense(C) -> softmax
//   mlp:    [Flatten | GlobalPool] -> [Standardize] -> Dense(hidden, relu) -> Dropout(rate)
//           -> Dense(C) -> softmax
// Standardize is fixed per feature (mean and std of the training rows, see standardization.hpp),
// set once before training and stored in the model; a head without it reads the rows as they are.
// Weights are kept in Keras's Dense layout (kernel [in, out], bias [out]) and named like the
// layers of Keras's VGG16 top ("fc1", "predictions"). Not thread-safe: one caller at a time.
//
//   tl::HeadConfig cfg{.kind = tl::HeadKind::mlp, .pool = tl::Pool::none, .classes = 5,
//                      .input = {.h = 7, .w = 7, .c = 512}};
//   tl::DenseHead head(cfg, /*seed=*/42);           // glorot_uniform kernels, zero biases
//   head.set_standardization(tl::input_statistics(head, train_rows));
//   head.predict(rows, n, probs);                   // {n, 7, 7, 512} -> {n, 5}
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tl/global_pool.hpp"
#include "tl/standardization.hpp"
#include "tl/vgg16_spec.hpp"

namespace tl {

enum class HeadKind { linear, mlp };
HeadKind parse_head_kind(std::string_view s);  // "linear" | "mlp"
std::string_view to_string(HeadKind k);

struct HeadConfig {
  HeadKind kind = HeadKind::linear;
  Pool pool = Pool::none;
  int hidden = 256;      // mlp only
  float dropout = 0.5f;  // mlp only; in [0, 1)
  int classes = 0;       // >= 2
  Shape input{};         // one stored row [h, w, c]; n unused
};

// Throws UsageError naming the bad field.
void validate(const HeadConfig& cfg);

// One trainable tensor in Keras's layout, with its gradient from the last train_step.
struct Param {
  std::string name{};        // "fc1/kernel", "fc1/bias", "predictions/kernel", "predictions/bias"
  std::vector<int> shape{};  // kernel {in, out}, bias {out}
  std::vector<float> value{};
  std::vector<float> grad{};
  bool is_kernel = false;  // weight decay applies to kernels only
};

// What one batch gave: the loss as the batch's mean (see softmax_cross_entropy) and the
// number of rows whose most probable class is the label.
struct BatchResult {
  double loss = 0;
  int correct = 0;
  // The smallest and largest predicted class, and the largest difference of one class's logit
  // between two rows: a collapsed network predicts one class, or the same logits, for every row.
  int min_class = 0, max_class = 0;
  double logit_spread = 0;
};

class FeatureSource;

class DenseHead {
 public:
  // Keras's default initialisation: glorot_uniform kernels (U(-l, l), l = sqrt(6 / (in + out)),
  // drawn in [in, out] row-major order, layer by layer, from
  // mt19937_64(derive_seed(seed, SeedStream::init))) and zero biases.
  DenseHead(const HeadConfig& cfg, std::uint64_t seed);
  ~DenseHead();
  DenseHead(DenseHead&&) noexcept;
  DenseHead& operator=(DenseHead&&) noexcept;

  const HeadConfig& config() const;
  size_t row_size() const;  // floats per stored row: h*w*c
  int features() const;     // floats per sample after flatten / pool

  std::vector<Param>& params();  // in order; values may be edited in place, never resized
  const std::vector<Param>& params() const;
  std::vector<std::vector<float>> weights() const;  // a copy of every value, in params() order
  void set_weights(const std::vector<std::vector<float>>& w);  // Error on a size mismatch

  // The input standardisation (empty: none). Error when its size is not features() or a
  // value is not finite or a std not > 0.
  void set_standardization(Standardization s);
  const Standardization& standardization() const;

  // Stored rows {n, h, w, c} -> {n, features()}: flatten or global pool, one row per oneTBB
  // task. prepare() then standardizes: the exact input of the first dense layer.
  void pool(const float* rows, int n, float* x) const;
  void prepare(const float* rows, int n, float* x) const;

  // Inference (dropout is the identity): stored rows {n, h, w, c} -> probabilities {n, C}.
  void predict(const float* rows, int n, float* probs);
  // As predict, and the unweighted loss and hits for `labels` (size n); probs may be null.
  BatchResult evaluate(const float* rows, int n, std::span<const int> labels, float* probs);
  // One training forward + backward: fills every Param::grad with the gradient of the batch
  // loss (weighted by sample_weights, empty = 1). Dropout masks are drawn from dropout_rng.
  // d_rows, when given, receives the gradient of the loss with respect to the stored rows
  // {n, h, w, c} (through the standardisation and the pool): what fine-tuning feeds back
  // into block5.
  BatchResult train_step(const float* rows, int n, std::span<const int> labels,
                         std::span<const float> sample_weights, std::mt19937_64& dropout_rng,
                         float* d_rows = nullptr);

  // The oneDNN implementations of the primitives built so far, one line per layer.
  std::string describe() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Mean and standard deviation of the head's pooled input over every row of `src`, in one
// streamed pass (`batch` rows at a time, in double): what set_standardization takes.
Standardization input_statistics(const DenseHead& head, FeatureSource& src, int batch = 256);
// The same over the rows of several sources together.
Standardization input_statistics(const DenseHead& head, const std::vector<FeatureSource*>& srcs,
                                 int batch = 256);

}  // namespace tl
