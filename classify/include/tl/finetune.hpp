// Fine-tuning VGG16's block5 together with a dense head on features cached at block4_pool:
// each step runs block5 forward (oneDNN), the head forward and backward (with the gradient
// of its input), then block5 backward, and one optimizer update of both.
//
//   tl::Block5 b5(tl::load_weights("random:1", tl::block5_layers()), {.h = 14, .w = 14, .c = 512});
//   tl::DenseHead head({.classes = 5, .input = b5.output_row()}, 7);
//   tl::TrainOptions opt{.epochs = 5, .optimizer = {.kind = tl::OptimizerKind::sgd,
//                                                   .learning_rate = 1e-4f, .momentum = 0.9f}};
//   tl::TrainResult r = tl::finetune(b5, head, train_src, &val_src, opt);
#pragma once

#include <random>
#include <span>
#include <vector>

#include "tl/block5.hpp"
#include "tl/dense_head.hpp"
#include "tl/feature_source.hpp"
#include "tl/trainer.hpp"

namespace tl {

// The rows of `base` (block4_pool, [h, w, 512]) as block5 turns them into block5_pool rows
// ([h/2, w/2, 512]), computed on read, `batch` rows at a time. base and block5 must outlive it.
class Block5Source : public FeatureSource {
 public:
  Block5Source(FeatureSource& base, Block5& block5, int batch = 32);
  size_t rows() const override { return base_->rows(); }
  Shape row_shape() const override { return block5_->output_row(); }
  int label(size_t row) const override { return base_->label(row); }
  void read(std::span<const size_t> rows, float* out) override;

 private:
  FeatureSource* base_;
  Block5* block5_;
  int batch_;
  std::vector<float> in_;
};

// Every row of `src` (block4_pool) through tl::Vgg16 from block4_pool to block5_pool with
// `weights`, once, in memory with the same labels: the head's training data while block5 is
// frozen.
InMemorySource block5_features(FeatureSource& src, const Vgg16Weights& weights, int batch = 32);

// One training step of block5 + head: block5 forward, the head's own train_step with the
// gradient of its input (through its standardisation and pool), block5 backward. Fills every
// Param::grad of both; updates nothing.
class FinetuneStep {
 public:
  FinetuneStep(Block5& block5, DenseHead& head);
  ~FinetuneStep();
  FinetuneStep(FinetuneStep&&) noexcept;
  FinetuneStep& operator=(FinetuneStep&&) noexcept;
  // rows: {n, h, w, 512} block4_pool; as DenseHead::train_step otherwise.
  BatchResult train_step(const float* rows, int n, std::span<const int> labels,
                         std::span<const float> sample_weights, std::mt19937_64& dropout_rng);
  // The last step's block5 output was all zero (every ReLU dead: the network collapsed).
  bool block5_output_is_zero() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// tl::fit, the loop every head trains in (shuffling, class weights, early stopping, restoring
// the best epoch, the stop flag, the divergence guard), for block5 + head, validated through
// block5. The same optimizer settings update both. On return both hold the kept weights.
TrainResult finetune(Block5& block5, DenseHead& head, FeatureSource& train_src, FeatureSource* val,
                     const TrainOptions& opt, const TrainCallbacks& callbacks = {});

}  // namespace tl
