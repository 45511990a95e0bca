// A plain float64 reference of the dense head (pool/flatten, dense, relu, dropout mask,
// dense, softmax cross-entropy) and central finite differences, for tests/test_classify.cpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "tl/dense_head.hpp"
#include "tl/feature_source.hpp"

namespace tl::ref {

using Vec = std::vector<double>;

inline std::vector<float> random_floats(size_t n, std::uint64_t seed, double lo, double hi) {
  std::mt19937_64 rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(lo + (hi - lo) * ((rng() >> 11) * 0x1.0p-53));
  return v;
}

inline Vec to_double(std::span<const float> v) {
  return {v.begin(), v.end()};
}

// [h, w, c] -> [c] or the row itself.
inline Vec pool(Pool p, const double* row, int h, int w, int c) {
  if (p == Pool::none) return Vec(row, row + static_cast<size_t>(h) * w * c);
  Vec out(c, p == Pool::avg ? 0.0 : -INFINITY);
  for (int i = 0; i < h * w; ++i)
    for (int k = 0; k < c; ++k)
      out[k] = p == Pool::avg ? out[k] + row[i * c + k] : std::max(out[k], row[i * c + k]);
  if (p == Pool::avg)
    for (double& v : out) v /= h * w;
  return out;
}

// {N, in} x [in, out] + [out] -> {N, out}
inline Vec dense(const Vec& x, int n, int in, int out, const Vec& kernel, const Vec& bias) {
  Vec y(static_cast<size_t>(n) * out);
  for (int i = 0; i < n; ++i)
    for (int o = 0; o < out; ++o) {
      double s = bias[o];
      for (int k = 0; k < in; ++k) s += x[i * in + k] * kernel[k * out + o];
      y[i * out + o] = s;
    }
  return y;
}

// Weighted softmax cross-entropy of {N, C} logits: sum_i w_i ce_i / N.
inline double ce_loss(const Vec& logits, int classes, std::span<const int> labels,
                      std::span<const float> weights) {
  const size_t n = labels.size();
  double total = 0;
  for (size_t i = 0; i < n; ++i) {
    const double* z = logits.data() + i * classes;
    const double m = *std::max_element(z, z + classes);
    double s = 0;
    for (int k = 0; k < classes; ++k) s += std::exp(z[k] - m);
    total += (weights.empty() ? 1.0 : weights[i]) * (std::log(s) + m - z[labels[i]]);
  }
  return total / n;
}

inline Vec softmax(const Vec& logits, int classes) {
  Vec p(logits.size());
  for (size_t i = 0; i < logits.size() / classes; ++i) {
    const double* z = logits.data() + i * classes;
    const double m = *std::max_element(z, z + classes);
    double s = 0;
    for (int k = 0; k < classes; ++k) s += std::exp(z[k] - m);
    for (int k = 0; k < classes; ++k) p[i * classes + k] = std::exp(z[k] - m) / s;
  }
  return p;
}

// The head's logits in float64; params in DenseHead::params() order; mask {N, hidden} or empty;
// z: the head's standardisation (empty: none).
inline Vec head_logits(const HeadConfig& cfg, const std::vector<Vec>& params, const Vec& rows,
                       int n, const Vec& mask, const Standardization& z = {}) {
  const int h = cfg.input.h, w = cfg.input.w, c = cfg.input.c;
  const size_t rs = static_cast<size_t>(h) * w * c;
  Vec x;
  for (int i = 0; i < n; ++i) {
    Vec r = pool(cfg.pool, rows.data() + i * rs, h, w, c);
    for (size_t j = 0; j < r.size() && !z.empty(); ++j) r[j] = (r[j] - z.mean[j]) / z.std[j];
    x.insert(x.end(), r.begin(), r.end());
  }
  const int f = static_cast<int>(x.size() / n);
  if (cfg.kind == HeadKind::linear) return dense(x, n, f, cfg.classes, params[0], params[1]);
  Vec a = dense(x, n, f, cfg.hidden, params[0], params[1]);
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = std::max(a[i], 0.0);
    if (!mask.empty()) a[i] *= mask[i];
  }
  return dense(a, n, cfg.hidden, cfg.classes, params[2], params[3]);
}

inline std::vector<Vec> params_of(const DenseHead& head) {
  std::vector<Vec> v;
  for (const auto& p : head.params()) v.push_back(to_double(p.value));
  return v;
}

// Central differences (f(x + h e_i) - f(x - h e_i)) / 2h for every element of x.
template <typename F>
Vec numeric_grad(Vec& x, F&& f, double h = 1e-6) {
  Vec g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + h;
    const double up = f();
    x[i] = keep - h;
    const double down = f();
    x[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

// max |got - want| / max |want| (0 when both are 0).
inline double rel_error(std::span<const float> got, const Vec& want) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, std::abs(got[i] - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return scale == 0 ? err : err / scale;
}

// Gaussian-ish blobs (sum of uniforms): class k centred at +-spread on axis k mod dims.
inline InMemorySource blobs(size_t rows, int classes, Shape shape, std::uint64_t seed,
                            double spread, double noise) {
  std::mt19937_64 rng(seed);
  auto u = [&] { return (rng() >> 11) * 0x1.0p-53; };
  const size_t rs = static_cast<size_t>(shape.h) * shape.w * shape.c;
  std::vector<float> data(rows * rs);
  std::vector<int> labels(rows);
  for (size_t i = 0; i < rows; ++i) {
    const int y = static_cast<int>(i % classes);
    labels[i] = y;
    for (size_t k = 0; k < rs; ++k) {
      const double centre = static_cast<int>(k) == y % static_cast<int>(rs)
                                ? (y / static_cast<int>(rs) % 2 ? -spread : spread)
                                : 0.0;
      data[i * rs + k] = static_cast<float>(centre + noise * (u() + u() + u() - 1.5));
    }
  }
  return InMemorySource(shape, std::move(data), std::move(labels));
}

}  // namespace tl::ref
