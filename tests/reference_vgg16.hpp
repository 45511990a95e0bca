// Plain float64 reference of VGG16's layers (NHWC, HWIO kernels), for tests only: every
// optimised path is compared against these loops on seeded random data.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

#include "tl/vgg16_spec.hpp"
#include "tl/weights.hpp"

namespace tl::ref {

// {n, h, w, cin} -> {n, h, w, cout}: 3x3, pad 1, stride 1, bias, ReLU.
inline std::vector<double> conv3x3_relu(const std::vector<double>& x, const Shape& s,
                                        const ConvWeights& w) {
  std::vector<double> y(static_cast<size_t>(s.n) * s.h * s.w * w.cout);
  std::vector<double> acc(w.cout);
  for (int n = 0; n < s.n; ++n)
    for (int i = 0; i < s.h; ++i)
      for (int j = 0; j < s.w; ++j) {
        for (int o = 0; o < w.cout; ++o) acc[o] = w.bias[o];
        for (int ki = 0; ki < 3; ++ki)
          for (int kj = 0; kj < 3; ++kj) {
            const int ii = i + ki - 1, jj = j + kj - 1;
            if (ii < 0 || jj < 0 || ii >= s.h || jj >= s.w) continue;
            const double* px = &x[((static_cast<size_t>(n) * s.h + ii) * s.w + jj) * s.c];
            const float* k = &w.kernel[static_cast<size_t>(ki * 3 + kj) * w.cin * w.cout];
            for (int c = 0; c < w.cin; ++c)
              for (int o = 0; o < w.cout; ++o) acc[o] += px[c] * k[c * w.cout + o];
          }
        double* py = &y[((static_cast<size_t>(n) * s.h + i) * s.w + j) * w.cout];
        for (int o = 0; o < w.cout; ++o) py[o] = std::max(0.0, acc[o]);
      }
  return y;
}

// {n, h, w, c} -> {n, h/2, w/2, c}: max 2x2 stride 2, floor.
inline std::vector<double> maxpool2x2(const std::vector<double>& x, const Shape& s) {
  const int oh = s.h / 2, ow = s.w / 2;
  std::vector<double> y(static_cast<size_t>(s.n) * oh * ow * s.c);
  for (int n = 0; n < s.n; ++n)
    for (int i = 0; i < oh; ++i)
      for (int j = 0; j < ow; ++j)
        for (int c = 0; c < s.c; ++c) {
          double m = -INFINITY;
          for (int di = 0; di < 2; ++di)
            for (int dj = 0; dj < 2; ++dj)
              m = std::max(
                  m, x[((static_cast<size_t>(n) * s.h + 2 * i + di) * s.w + 2 * j + dj) * s.c + c]);
          y[((static_cast<size_t>(n) * oh + i) * ow + j) * s.c + c] = m;
        }
  return y;
}

// Layers (from, to] on x of shape `s` (the output of `from`).
inline std::vector<double> forward(const Vgg16Weights& w, std::vector<double> x, Shape s,
                                   std::string_view from, std::string_view to) {
  const int first = layer_index(from) + 1, last = layer_index(to);
  for (int i = first; i <= last; ++i) {
    const auto& l = vgg16_layers()[i];
    if (l.kind == LayerKind::conv) {
      x = conv3x3_relu(x, s, w.conv(l.name));
      s.c = l.cout;
    } else {
      x = maxpool2x2(x, s);
      s.h /= 2;
      s.w /= 2;
    }
  }
  return x;
}

// Seeded He-normal-ish weights built here, independent of the library's random_weights.
inline Vgg16Weights test_weights(std::uint64_t seed) {
  Vgg16Weights w;
  std::mt19937_64 rng(seed);
  for (const auto& l : vgg16_layers()) {
    if (l.kind != LayerKind::conv) continue;
    ConvWeights c{std::string(l.name), l.cin, l.cout, {}, {}};
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    const double a = std::sqrt(6.0 / (9.0 * l.cin));  // He-uniform: keeps activations O(1)
    c.kernel.resize(9ull * l.cin * l.cout);
    for (auto& v : c.kernel) v = static_cast<float>(a * u(rng));
    c.bias.resize(l.cout);
    for (auto& v : c.bias) v = static_cast<float>(0.1 * u(rng));
    w.convs.push_back(std::move(c));
  }
  w.source = "test:" + std::to_string(seed);
  return w;
}

inline std::vector<float> random_input(size_t count, std::uint64_t seed, float lo = -1.f,
                                       float hi = 1.f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(count);
  for (auto& x : v) x = u(rng);
  return v;
}

// max |got - want| / max |want|: the error relative to the output's scale.
inline double rel_error(const std::vector<float>& got, const std::vector<double>& want) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, std::abs(got[i] - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return scale > 0 ? err / scale : err;
}

}  // namespace tl::ref
