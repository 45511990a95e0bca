// Adam, SGD with momentum and RMSprop in Keras's update forms (see optimizer.hpp).
#include "tl/optimizer.hpp"

#include <cmath>
#include <functional>

#include <fmt/format.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>

#include "tl/error.hpp"

namespace tl {

OptimizerKind parse_optimizer(std::string_view s) {
  if (s == "adam") return OptimizerKind::adam;
  if (s == "sgd") return OptimizerKind::sgd;
  if (s == "rmsprop") return OptimizerKind::rmsprop;
  throw UsageError(fmt::format("unknown optimizer '{}' (accepted: adam, sgd, rmsprop)", s));
}

std::string_view to_string(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::adam:
      return "adam";
    case OptimizerKind::sgd:
      return "sgd";
    case OptimizerKind::rmsprop:
      return "rmsprop";
  }
  return "?";
}

Optimizer::Optimizer(const OptimizerConfig& cfg, std::span<const Param> params) : cfg_(cfg) {
  if (cfg_.learning_rate == 0) cfg_.learning_rate = cfg_.kind == OptimizerKind::sgd ? 1e-2f : 1e-3f;
  if (!(cfg_.learning_rate > 0))
    throw UsageError(fmt::format("learning rate {} (must be > 0)", cfg_.learning_rate));
  if (!(cfg_.momentum >= 0 && cfg_.momentum < 1))
    throw UsageError(fmt::format("momentum {} not in [0, 1)", cfg_.momentum));
  if (!(cfg_.beta1 >= 0 && cfg_.beta1 < 1 && cfg_.beta2 >= 0 && cfg_.beta2 < 1))
    throw UsageError(fmt::format("adam betas {}, {} not in [0, 1)", cfg_.beta1, cfg_.beta2));
  if (!(cfg_.rho >= 0 && cfg_.rho < 1))
    throw UsageError(fmt::format("rho {} not in [0, 1)", cfg_.rho));
  if (!(cfg_.epsilon > 0)) throw UsageError(fmt::format("epsilon {} (must be > 0)", cfg_.epsilon));
  if (!(cfg_.weight_decay >= 0))
    throw UsageError(fmt::format("weight decay {} (must be >= 0)", cfg_.weight_decay));
  for (const Param& p : params) {
    slot1_.emplace_back(p.value.size(), 0.f);
    if (cfg_.kind == OptimizerKind::adam) slot2_.emplace_back(p.value.size(), 0.f);
  }
}

void Optimizer::step(std::span<Param> params) {
  if (params.size() != slot1_.size())
    throw Error(
        fmt::format("optimizer built for {} params, given {}", slot1_.size(), params.size()));
  ++t_;
  const float lr = cfg_.learning_rate, eps = cfg_.epsilon, b1 = cfg_.beta1, b2 = cfg_.beta2;
  const float rho = cfg_.rho, mom = cfg_.momentum;
  // Adam's step size with both bias corrections folded in (Keras's "alpha").
  const double t = static_cast<double>(t_);
  const float alpha = static_cast<float>(lr * std::sqrt(1.0 - std::pow(double{b2}, t)) /
                                         (1.0 - std::pow(double{b1}, t)));
  for (size_t k = 0; k < params.size(); ++k) {
    Param& p = params[k];
    if (p.value.size() != slot1_[k].size() || p.grad.size() != p.value.size())
      throw Error(fmt::format("optimizer: {} changed size", p.name));
    float* w = p.value.data();
    const float* grad = p.grad.data();
    float* s1 = slot1_[k].data();
    float* s2 = cfg_.kind == OptimizerKind::adam ? slot2_[k].data() : nullptr;
    const float wd = p.is_kernel ? cfg_.weight_decay : 0.f;
    const auto kind = cfg_.kind;
    // Element-wise, so any split into chunks gives the same bits.
    tbb::parallel_for(tbb::blocked_range<size_t>(0, p.value.size(), 1 << 14), [&](const auto& r) {
      for (size_t i = r.begin(); i != r.end(); ++i) {
        const float g = grad[i] + wd * w[i];
        switch (kind) {
          case OptimizerKind::adam:
            s1[i] = b1 * s1[i] + (1 - b1) * g;
            s2[i] = b2 * s2[i] + (1 - b2) * g * g;
            w[i] -= alpha * s1[i] / (std::sqrt(s2[i]) + eps);
            break;
          case OptimizerKind::sgd:
            s1[i] = mom * s1[i] - lr * g;
            w[i] += s1[i];
            break;
          case OptimizerKind::rmsprop:
            s1[i] = rho * s1[i] + (1 - rho) * g * g;
            w[i] -= lr * g / std::sqrt(s1[i] + eps);
            break;
        }
      }
    });
  }
}

double Optimizer::penalty(std::span<const Param> params) const {
  if (cfg_.weight_decay == 0) return 0;
  double sum = 0;
  for (const Param& p : params) {
    if (!p.is_kernel) continue;
    // Fixed chunks combined in a fixed tree: the same sum for any thread count.
    sum += tbb::parallel_deterministic_reduce(
        tbb::blocked_range<size_t>(0, p.value.size(), 1 << 16), 0.0,
        [&](const tbb::blocked_range<size_t>& r, double acc) {
          for (size_t i = r.begin(); i != r.end(); ++i)
            acc += static_cast<double>(p.value[i]) * p.value[i];
          return acc;
        },
        std::plus<double>());
  }
  return 0.5 * cfg_.weight_decay * sum;
}

}  // namespace tl
