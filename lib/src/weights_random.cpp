// Seeded He-normal VGG16 conv weights, bit-identical on every machine and compiler.
//
// std::normal_distribution and the libm functions (log, cos, sin) are allowed to differ
// between implementations, so this file uses std::mt19937_64 (its output is fixed by the
// standard), a Box-Muller transform, and its own log and sin/cos built from +, -, *, / only
// (IEEE-754 rounds those exactly), evaluated in double without fused multiply-adds.
#include <array>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <random>

#include "tl/vgg16_spec.hpp"
#include "tl/weights.hpp"

#if defined(__FAST_MATH__)
#error "weights_random.cpp must not be built with -ffast-math: its results would change"
#endif
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")  // GCC fuses a*b+c even in ISO C++ mode otherwise
#endif
static_assert(FLT_EVAL_METHOD == 0, "double arithmetic must round to double (no x87)");

namespace tl {
namespace {

// log(x) for 0 < x <= 1: x = m * 2^e with m in [sqrt(1/2), sqrt(2)), then
// log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716, by its series to s^23.
double portable_log(double x) {
  int e = 0;
  double m = std::frexp(x, &e);  // exact
  if (m < 0.70710678118654752440) {
    m *= 2.0;  // exact
    --e;
  }
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  // 1/3, 1/5, ..., 1/23 (compile-time constants, exactly rounded by the compiler).
  constexpr auto kInv = [] {
    std::array<double, 11> a{};
    for (int i = 0; i < 11; ++i) a[i] = 1.0 / (2 * i + 3);
    return a;
  }();
  double p = kInv[10];
  for (int i = 9; i >= 0; --i) p = p * s2 + kInv[i];
  const double log_m = 2.0 * s + 2.0 * s * s2 * p;
  // ln 2 split so that e * kLn2Hi is exact (fdlibm's constants).
  constexpr double kLn2Hi = 6.93147180369123816490e-01;
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  return e * kLn2Hi + (e * kLn2Lo + log_m);
}

// sin(a) and cos(a) for 0 <= a <= pi/4 by their Taylor series to a^19 and a^20.
// Horner from the highest term: sin a = a (1 - a^2/(2*3) (1 - a^2/(4*5) (1 - ...))),
// cos a = 1 - a^2/(1*2) (1 - a^2/(3*4) (1 - ...)).
void sincos_small(double a, double& s, double& c) {
  // 1/(k(k+1)) for k = 1..19 (compile-time constants, exactly rounded by the compiler).
  constexpr auto kInv = [] {
    std::array<double, 20> t{};
    for (int k = 1; k <= 19; ++k) t[k] = 1.0 / (static_cast<double>(k) * (k + 1));
    return t;
  }();
  const double a2 = a * a;
  double ps = 1.0;
  double pc = 1.0;
  for (int k = 18; k >= 2; k -= 2) ps = 1.0 - a2 * kInv[k] * ps;
  for (int k = 19; k >= 1; k -= 2) pc = 1.0 - a2 * kInv[k] * pc;
  s = a * ps;
  c = pc;
}

// sin and cos of 2 pi u for 0 <= u < 1, reduced exactly to an octant: 8u = q + r.
void sincos_turn(double u, double& s, double& c) {
  const double t = 8.0 * u;  // exact
  const int q = static_cast<int>(t);
  const double r = t - q;  // exact, in [0, 1)
  constexpr double kQuarterPi = 0.78539816339744830962;
  double sa, ca;
  sincos_small((q % 2 == 0 ? r : 1.0 - r) * kQuarterPi, sa, ca);
  switch (q) {
    case 0:
      s = sa, c = ca;
      break;  // a
    case 1:
      s = ca, c = sa;
      break;  // pi/2 - a
    case 2:
      s = ca, c = -sa;
      break;  // pi/2 + a
    case 3:
      s = sa, c = -ca;
      break;  // pi - a
    case 4:
      s = -sa, c = -ca;
      break;  // pi + a
    case 5:
      s = -ca, c = -sa;
      break;  // 3pi/2 - a
    case 6:
      s = -ca, c = sa;
      break;  // 3pi/2 + a
    default:
      s = -sa, c = ca;
      break;  // 2pi - a
  }
}

// Standard normal deviates by Box-Muller, two per pair of 53-bit uniforms.
class Normal {
 public:
  explicit Normal(std::uint64_t seed) : gen_(seed) {}
  double operator()() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = static_cast<double>((gen_() >> 11) + 1) * 0x1p-53;  // (0, 1]
    const double u2 = static_cast<double>(gen_() >> 11) * 0x1p-53;        // [0, 1)
    const double r = std::sqrt(-2.0 * portable_log(u1));                  // sqrt is exactly rounded
    double s, c;
    sincos_turn(u2, s, c);
    spare_ = r * s;
    has_spare_ = true;
    return r * c;
  }

 private:
  std::mt19937_64 gen_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace

Vgg16Weights random_weights(std::uint64_t seed) {
  Vgg16Weights w;
  w.source = "random:" + std::to_string(seed);
  w.pretrained = false;
  Normal normal(seed);
  // One stream through the layers in network order: kernels in HWIO order, biases zero.
  for (const LayerSpec& l : vgg16_layers()) {
    if (l.kind != LayerKind::conv) continue;
    ConvWeights c;
    c.name = std::string(l.name);
    c.cin = l.cin;
    c.cout = l.cout;
    const double stddev = std::sqrt(2.0 / (9.0 * l.cin));
    c.kernel.resize(static_cast<std::size_t>(9) * l.cin * l.cout);
    for (float& v : c.kernel) v = static_cast<float>(normal() * stddev);
    c.bias.assign(static_cast<std::size_t>(l.cout), 0.0f);
    w.convs.push_back(std::move(c));
  }
  return w;
}

}  // namespace tl
