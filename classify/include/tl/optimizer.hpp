// Keras's optimizers, applied to a head's Params after each train_step. The update forms are
// Keras 3's (keras/src/optimizers/{adam,sgd,rmsprop}.py), in float32 like Keras's variables:
//   adam:    a = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
//            m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;  w -= a m / (sqrt(v) +
//            eps)
//   sgd:     v = momentum v - lr g;  w += v                 (momentum 0: w -= lr g)
//   rmsprop: s = rho s + (1 - rho) g^2;  w -= lr g / sqrt(s + eps)
// L2 weight decay adds weight_decay * w to the gradient of kernels, not of biases (the usual
// practice, and Keras's kernel_regularizer=l2(weight_decay / 2): its loss term
// 0.5 * weight_decay * sum(w^2), see penalty(), has exactly this gradient).
//
//   tl::Optimizer opt({.kind = tl::OptimizerKind::adam}, head.params());
//   head.train_step(...);
//   opt.step(head.params());
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "tl/dense_head.hpp"

namespace tl {

enum class OptimizerKind { adam, sgd, rmsprop };
OptimizerKind parse_optimizer(std::string_view s);  // "adam" | "sgd" | "rmsprop"
std::string_view to_string(OptimizerKind k);

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::adam;
  float learning_rate = 0;  // 0: Keras's default for the kind (adam, rmsprop 1e-3; sgd 1e-2)
  float momentum = 0;       // sgd; Keras's default 0
  float beta1 = 0.9f, beta2 = 0.999f;  // adam
  float rho = 0.9f;                    // rmsprop
  float epsilon = 1e-7f;               // adam, rmsprop
  float weight_decay = 0;              // L2 on kernels
};

class Optimizer {
 public:
  // Creates zeroed slots (moments, velocities) shaped like `params`. UsageError on a bad value.
  Optimizer(const OptimizerConfig& cfg, std::span<const Param> params);

  // One update of every param from its grad. Element-wise (parallel over chunks with oneTBB,
  // hence the same result for any thread count).
  void step(std::span<Param> params);

  // The L2 term that weight decay adds to the loss: 0.5 * weight_decay * sum of kernels^2
  // (summed in a fixed order).
  double penalty(std::span<const Param> params) const;

  const OptimizerConfig& config() const { return cfg_; }  // learning_rate resolved
  std::int64_t iterations() const { return t_; }

 private:
  OptimizerConfig cfg_;
  std::int64_t t_ = 0;
  std::vector<std::vector<float>> slot1_, slot2_;  // adam m, v; sgd velocity; rmsprop s
};

}  // namespace tl
