// Fine-tuning block5 on block4_pool features: conv / ReLU / max-pool backward against central
// finite differences of float64 references, one block5 + head step against a float64
// backpropagation, fine-tuning lowering the loss, tl-train --finetune and tl-predict end to
// end (images == tl-extract at block4_pool + features), and the errors.
#include <algorithm>
#include <bit>
#include <cmath>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "classify_reference.hpp"
#include "image_fixtures.hpp"
#include "keras_file_writer.hpp"
#include "reference_vgg16.hpp"
#include "test_util.hpp"
#include "tl/block5.hpp"
#include "tl/error.hpp"
#include "tl/extract.hpp"
#include "tl/feature_file.hpp"
#include "tl/finetune.hpp"
#include "tl/machine.hpp"
#include "tl/model_file.hpp"
#include "tl/optimizer.hpp"
#include "tl/predict_run.hpp"
#include "tl/train_run.hpp"

namespace tl {
namespace {

namespace fs = std::filesystem;
using ref::Vec;
using testing::TempDir;

// ---- float64 references -------------------------------------------------------------------

// {n, h, w, cin} -> {n, h, w, cout}: 3x3 pad 1, HWIO kernel, bias, optional ReLU.
Vec conv(const Vec& x, int n, int h, int w, int cin, int cout, const Vec& k, const Vec& b,
         bool relu) {
  Vec y(static_cast<size_t>(n) * h * w * cout);
  for (int s = 0; s < n; ++s)
    for (int i = 0; i < h; ++i)
      for (int j = 0; j < w; ++j) {
        double* py = &y[((static_cast<size_t>(s) * h + i) * w + j) * cout];
        for (int o = 0; o < cout; ++o) py[o] = b[o];
        for (int ki = 0; ki < 3; ++ki)
          for (int kj = 0; kj < 3; ++kj) {
            const int ii = i + ki - 1, jj = j + kj - 1;
            if (ii < 0 || jj < 0 || ii >= h || jj >= w) continue;
            const double* px = &x[((static_cast<size_t>(s) * h + ii) * w + jj) * cin];
            const double* pk = &k[static_cast<size_t>(ki * 3 + kj) * cin * cout];
            for (int c = 0; c < cin; ++c)
              for (int o = 0; o < cout; ++o) py[o] += px[c] * pk[c * cout + o];
          }
        if (relu)
          for (int o = 0; o < cout; ++o) py[o] = std::max(py[o], 0.0);
      }
  return y;
}

// Backward of conv (dy w.r.t. the output after ReLU; y the output): dx (when wanted), dk, db.
void conv_backward(const Vec& x, const Vec& y, Vec dy, int n, int h, int w, int cin, int cout,
                   const Vec& k, bool relu, Vec* dx, Vec& dk, Vec& db) {
  if (relu)
    for (size_t i = 0; i < dy.size(); ++i)
      if (y[i] <= 0) dy[i] = 0;
  dk.assign(9ull * cin * cout, 0.0);
  db.assign(cout, 0.0);
  if (dx) dx->assign(x.size(), 0.0);
  for (int s = 0; s < n; ++s)
    for (int i = 0; i < h; ++i)
      for (int j = 0; j < w; ++j) {
        const double* g = &dy[((static_cast<size_t>(s) * h + i) * w + j) * cout];
        for (int o = 0; o < cout; ++o) db[o] += g[o];
        for (int ki = 0; ki < 3; ++ki)
          for (int kj = 0; kj < 3; ++kj) {
            const int ii = i + ki - 1, jj = j + kj - 1;
            if (ii < 0 || jj < 0 || ii >= h || jj >= w) continue;
            const size_t xo = ((static_cast<size_t>(s) * h + ii) * w + jj) * cin;
            const size_t ko = static_cast<size_t>(ki * 3 + kj) * cin * cout;
            for (int c = 0; c < cin; ++c) {
              double acc = 0;
              for (int o = 0; o < cout; ++o) {
                dk[ko + c * cout + o] += x[xo + c] * g[o];
                acc += k[ko + c * cout + o] * g[o];
              }
              if (dx) (*dx)[xo + c] += acc;
            }
          }
      }
}

// {n, h, w, c} -> {n, h/2, w/2, c}: max 2x2 stride 2 (floor); argmax the first maximum.
Vec pool(const Vec& x, int n, int h, int w, int c, std::vector<size_t>* argmax = nullptr) {
  const int oh = h / 2, ow = w / 2;
  Vec y(static_cast<size_t>(n) * oh * ow * c);
  if (argmax) argmax->resize(y.size());
  for (int s = 0; s < n; ++s)
    for (int i = 0; i < oh; ++i)
      for (int j = 0; j < ow; ++j)
        for (int k = 0; k < c; ++k) {
          size_t best = 0;
          double m = -INFINITY;
          for (int di = 0; di < 2; ++di)
            for (int dj = 0; dj < 2; ++dj) {
              const size_t at =
                  ((static_cast<size_t>(s) * h + 2 * i + di) * w + 2 * j + dj) * c + k;
              if (x[at] > m) m = x[at], best = at;
            }
          const size_t o = ((static_cast<size_t>(s) * oh + i) * ow + j) * c + k;
          y[o] = m;
          if (argmax) (*argmax)[o] = best;
        }
  return y;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

Vec randn(size_t n, std::uint64_t seed, double lo = -1, double hi = 1) {
  return ref::to_double(ref::random_floats(n, seed, lo, hi));
}

std::vector<float> to_float(const Vec& v) {
  return {v.begin(), v.end()};
}

// ---- layers against finite differences ----------------------------------------------------

// L = sum(g * conv(x)): d L / d x, kernel and bias from oneDNN vs central differences.
void check_conv(bool relu) {
  const int n = 2, h = 5, w = 4, cin = 3, cout = 4;
  Vec x = randn(static_cast<size_t>(n) * h * w * cin, 1), k = randn(9 * cin * cout, 2, -0.5, 0.5),
      b = randn(cout, 3, -0.2, 0.2);
  const Vec g = randn(static_cast<size_t>(n) * h * w * cout, 4);
  auto loss = [&] { return dot(g, conv(x, n, h, w, cin, cout, k, b, relu)); };

  Scratchpad scratch;
  ConvLayer layer(n, h, w, cin, cout, relu, Pass::training, scratch);
  const auto xf = to_float(x), kf = to_float(k), bf = to_float(b), gf = to_float(g);
  std::vector<float> y(g.size()), dx(x.size()), dk(k.size()), db(b.size());
  layer.set_weights(kf.data(), bf.data());
  layer.forward(xf.data(), y.data());
  EXPECT_LT(ref::rel_error(y, conv(x, n, h, w, cin, cout, k, b, relu)), 1e-6);
  layer.backward(xf.data(), y.data(), gf.data(), dx.data(), dk.data(), db.data());
  EXPECT_LT(ref::rel_error(dx, ref::numeric_grad(x, loss)), 1e-5) << "diff_src";
  EXPECT_LT(ref::rel_error(dk, ref::numeric_grad(k, loss)), 1e-5) << "diff_weights";
  EXPECT_LT(ref::rel_error(db, ref::numeric_grad(b, loss)), 1e-5) << "diff_bias";
}

TEST(ConvLayer, BackwardMatchesFiniteDifferences) {
  check_conv(false);
}

TEST(ConvLayer, ReluBackwardMatchesFiniteDifferences) {
  check_conv(true);
}

TEST(MaxPoolLayer, BackwardMatchesFiniteDifferencesOddSizesFloor) {
  const int n = 2, h = 5, w = 6, c = 3;  // 5x6 -> 2x3: the last row is dropped, as Keras does
  Vec x = randn(static_cast<size_t>(n) * h * w * c, 5);
  const Vec g = randn(static_cast<size_t>(n) * (h / 2) * (w / 2) * c, 6);
  auto loss = [&] { return dot(g, pool(x, n, h, w, c)); };
  Scratchpad scratch;
  MaxPoolLayer layer(n, h, w, c, Pass::training, scratch);
  const auto xf = to_float(x), gf = to_float(g);
  std::vector<float> y(g.size()), dx(x.size());
  layer.forward(xf.data(), y.data());
  EXPECT_LT(ref::rel_error(y, pool(x, n, h, w, c)), 1e-7);
  layer.backward(gf.data(), dx.data());
  EXPECT_LT(ref::rel_error(dx, ref::numeric_grad(x, loss)), 1e-6);
}

TEST(ConvLayer, BadSizesAreRefused) {
  Scratchpad scratch;
  EXPECT_THROW(ConvLayer(0, 4, 4, 3, 3, true, Pass::training, scratch), Error);
  EXPECT_THROW(MaxPoolLayer(1, 1, 4, 3, Pass::training, scratch), Error);
}

// ---- one block5 + head step against float64 ----------------------------------------------

// block5 weights as the library loads them: only the three block5 convs.
Vgg16Weights block5_weights(std::uint64_t seed) {
  Vgg16Weights all = ref::test_weights(seed), w;
  for (const auto& name : block5_layers()) w.convs.push_back(all.conv(name));
  w.source = all.source;
  return w;
}

TEST(Block5, ShapesAndParamsInKerasLayout) {
  Block5 b5(block5_weights(1), {1, 9, 7, 512});
  EXPECT_EQ(b5.output_row(), (Shape{1, 4, 3, 512}));
  ASSERT_EQ(b5.params().size(), 6u);
  EXPECT_EQ(b5.params()[0].name, "block5_conv1/kernel");
  EXPECT_EQ(b5.params()[0].shape, (std::vector<int>{3, 3, 512, 512}));
  EXPECT_EQ(b5.params()[5].name, "block5_conv3/bias");
  EXPECT_EQ(b5.conv_weights()[2].kernel, block5_weights(1).conv("block5_conv3").kernel);
}

// The skip reason where tlkit's Winograd does not run (below AVX2), else empty.
std::string no_tlkit_winograd() {
  const Machine& m = machine();
  return m.f32_winograd_tlkit.native ? "" : m.f32_winograd_tlkit.impl;  // names the ISA
}

// block5's f32 forward on each algorithm: odd 5x5 maps (4x4 Winograd tiles do not divide
// them; pooled to 2x2) and 8x6, batches of 2 and 3.
TEST(Block5, InferenceForwardOnEachAlgoEqualsTheFloat64Reference) {
  const Vgg16Weights w = block5_weights(2);
  for (const ConvAlgo algo : {ConvAlgo::direct, ConvAlgo::winograd_tlkit}) {
    if (algo == ConvAlgo::winograd_tlkit && !no_tlkit_winograd().empty()) {
      EXPECT_THROW(Block5(w, {1, 5, 5, 512}, Precision::f32, algo), Error);
      GTEST_SKIP() << no_tlkit_winograd();
    }
    for (const Shape in : {Shape{2, 5, 5, 512}, Shape{3, 8, 6, 512}}) {
      const auto x = ref::random_input(static_cast<size_t>(in.elems()), 3, 0.f, 1.f);
      Block5 b5(w, in, Precision::f32, algo);
      EXPECT_EQ(b5.forward_algo(), algo);
      std::vector<float> y(in.n * b5.output_size());
      b5.forward(x.data(), in.n, y.data());
      const double err = ref::rel_error(
          y, ref::forward(w, Vec(x.begin(), x.end()), in, "block4_pool", "block5_pool"));
      RecordProperty(fmt::format("rel_error_{}_{}x{}", to_string(algo), in.h, in.w),
                     fmt::format("{:.2e}", err));
      EXPECT_LT(err, 1e-5) << to_string(algo) << " " << in.h << "x" << in.w << "\n"
                           << b5.describe();
      if (algo == ConvAlgo::winograd_tlkit) {     // a batch of 1 next (another plan, the same
        std::vector<float> y1(b5.output_size());  // Winograd layers): the first row, bit for bit
        b5.forward(x.data(), 1, y1.data());
        EXPECT_TRUE(std::equal(y1.begin(), y1.end(), y.begin())) << in.h << "x" << in.w;
      }
    }
  }
}

// auto: tlkit's Winograd from kBlock5WinogradSide (where it is faster, bench/RESULTS.md) where
// it runs, else direct; oneDNN's Winograd is not offered for block5.
TEST(Block5, AutoForwardAlgoFollowsTheMapSizeAndTheCpu) {
  const Vgg16Weights w = block5_weights(2);
  const ConvAlgo wino = no_tlkit_winograd().empty() ? ConvAlgo::winograd_tlkit : ConvAlgo::direct;
  EXPECT_EQ(Block5(w, {1, kBlock5WinogradSide, 9, 512}).forward_algo(), wino);
  EXPECT_EQ(Block5(w, {1, 9, kBlock5WinogradSide - 1, 512}).forward_algo(), ConvAlgo::direct);
  EXPECT_EQ(Block5(w, {1, 14, 14, 512}, Precision::f32, ConvAlgo::direct).forward_algo(),
            ConvAlgo::direct);
  try {
    Block5(w, {1, 14, 14, 512}, Precision::f32, ConvAlgo::winograd);
    ADD_FAILURE() << "no error for block5 on oneDNN's Winograd";
  } catch (const Error& e) {
    EXPECT_HAS(e.what(), "block5: forward convolutions 'winograd'");
    EXPECT_HAS(e.what(), "accepted: auto, direct, winograd-tlkit");
  }
}

// x rounded as oneDNN rounds f32 to bf16 (to nearest, ties to even).
double round_bf16(double x) {
  std::uint32_t bits = std::bit_cast<std::uint32_t>(static_cast<float>(x));
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return std::bit_cast<float>(bits & 0xffff0000u);
}

// One block5 + head step with block5's training convs in `precision`, against float64: the
// loss within `loss_tol` (relative), every gradient and the SGD update within `tol` relative.
// bf16: the float64 reference rounds to bf16 what the bf16 convs read (their input, the
// kernels, d pre-activation) and nothing else, so that it takes the same ReLU and max-pool
// branches: against an unrounded reference a few activations within bf16 rounding of 0 flip
// their ReLU mask, and at this size (32 positions per kernel entry) one flip moves a kernel
// gradient by up to ~25%.
void check_step_against_float64(Precision precision, double loss_tol, double tol,
                                ConvAlgo algo = ConvAlgo::automatic) {
  const int n = 2, h = 4, wd = 4, c = 512, classes = 3;
  const Vgg16Weights w = block5_weights(3);
  const auto xf = ref::random_input(static_cast<size_t>(n) * h * wd * c, 4, 0.f, 1.f);
  const std::vector<int> labels{2, 0};
  Block5 b5(w, {1, h, wd, c}, precision, algo);
  DenseHead head(
      {.kind = HeadKind::linear, .pool = Pool::none, .classes = classes, .input = b5.output_row()},
      5);
  FinetuneStep step(b5, head);
  std::mt19937_64 rng(1);
  const BatchResult r = step.train_step(xf.data(), n, labels, {}, rng);

  // float64: three convs + ReLU, pool, dense, softmax cross-entropy, and back.
  const bool bf16 = precision == Precision::bf16;
  auto rounded = [bf16](Vec v) {
    if (bf16)
      for (double& x : v) x = round_bf16(x);
    return v;
  };
  std::vector<Vec> a{Vec(xf.begin(), xf.end())}, kern, conv_kern, bias;
  for (const auto& name : block5_layers()) {
    kern.push_back(ref::to_double(w.conv(name).kernel));
    conv_kern.push_back(rounded(kern.back()));
    bias.push_back(ref::to_double(w.conv(name).bias));
    a.push_back(conv(rounded(a.back()), n, h, wd, c, c, conv_kern.back(), bias.back(), true));
  }
  std::vector<size_t> arg;
  const Vec y = pool(a.back(), n, h, wd, c, &arg);
  const int f = static_cast<int>(y.size() / n);
  const Vec hk = ref::to_double(head.params()[0].value),
            hb = ref::to_double(head.params()[1].value);
  const Vec logits = ref::dense(y, n, f, classes, hk, hb);
  const double want_loss = ref::ce_loss(logits, classes, labels, {});
  EXPECT_NEAR(r.loss, want_loss, loss_tol * std::max(1.0, std::abs(want_loss)));
  Vec dlogits = ref::softmax(logits, classes);
  for (int i = 0; i < n; ++i) dlogits[i * classes + labels[i]] -= 1;
  for (double& v : dlogits) v /= n;
  Vec dhk(hk.size(), 0.0), dhb(classes, 0.0), dy(y.size(), 0.0);
  for (int i = 0; i < n; ++i)
    for (int o = 0; o < classes; ++o) {
      const double g = dlogits[i * classes + o];
      dhb[o] += g;
      for (int k = 0; k < f; ++k) {
        dhk[k * classes + o] += y[i * f + k] * g;
        dy[i * f + k] += hk[k * classes + o] * g;
      }
    }
  Vec da(a.back().size(), 0.0);
  for (size_t o = 0; o < arg.size(); ++o) da[arg[o]] += dy[o];
  std::vector<Vec> dk(3), db(3);
  for (int l = 2; l >= 0; --l) {
    Vec dx;
    for (size_t i = 0; i < da.size(); ++i)  // ReLU backward, then what the conv reads
      if (a[l + 1][i] <= 0) da[i] = 0;
    conv_backward(rounded(a[l]), a[l + 1], rounded(da), n, h, wd, c, c, conv_kern[l], false,
                  l > 0 ? &dx : nullptr, dk[l], db[l]);
    da = std::move(dx);
  }
  EXPECT_LT(ref::rel_error(head.params()[0].grad, dhk), tol);
  EXPECT_LT(ref::rel_error(head.params()[1].grad, dhb), tol);
  for (int l = 0; l < 3; ++l) {
    EXPECT_LT(ref::rel_error(b5.params()[2 * l].grad, dk[l]), tol) << block5_layers()[l];
    EXPECT_LT(ref::rel_error(b5.params()[2 * l + 1].grad, db[l]), tol) << block5_layers()[l];
  }
  // The update: new = old - lr * grad (SGD, no momentum), against the float64 gradients.
  const float lr = 0.5f;
  Optimizer sgd({.kind = OptimizerKind::sgd, .learning_rate = lr}, b5.params());
  sgd.step(b5.params());
  for (int l = 0; l < 3; ++l) {  // off by at most `tol` of the step plus float rounding
    double err = 0, step_size = 0, scale = 0;
    for (size_t i = 0; i < kern[l].size(); ++i) {
      const double want = kern[l][i] - lr * dk[l][i];
      err = std::max(err, std::abs(b5.params()[2 * l].value[i] - want));
      step_size = std::max(step_size, std::abs(lr * dk[l][i]));
      scale = std::max(scale, std::abs(kern[l][i]));
    }
    EXPECT_GT(step_size, 1e-3 * scale) << "a step too small to test";
    EXPECT_LT(err, tol * step_size + 1.2e-7 * scale) << block5_layers()[l];
  }
}

// The f32 step with block5's forward on oneDNN's direct convolutions and on tlkit's Winograd
// (the backward passes are oneDNN's either way).
TEST(FinetuneStep, OneSgdStepEqualsTheFloat64ReferenceStep) {
  check_step_against_float64(Precision::f32, 1e-5, 1e-4, ConvAlgo::direct);
}

TEST(FinetuneStep, OneSgdStepWithTheWinogradForwardEqualsTheFloat64ReferenceStep) {
  if (!no_tlkit_winograd().empty()) GTEST_SKIP() << no_tlkit_winograd();
  check_step_against_float64(Precision::f32, 1e-5, 1e-4, ConvAlgo::winograd_tlkit);
}

TEST(FinetuneStep, OneBf16SgdStepIsWithin2PercentOfTheFloat64ReferenceStep) {
  // bf16 keeps 8 significant bits (relative rounding 2^-9 ~ 2e-3 per value); through three
  // convs of 4608 products and back, 2e-2 relative (the f32 step: 1e-4). The master weights
  // and the update stay f32.
  if (!machine().bf16_training.native)
    GTEST_SKIP() << "bf16 fine-tuning needs native oneDNN bf16 convolutions; oneDNN ISA "
                 << machine().isa << " has none (" << machine().bf16_training.impl << ")";
  check_step_against_float64(Precision::bf16, 2e-2, 2e-2);
}

TEST(FinetuneStep, MlpWithGlobalPoolGradientMatchesFiniteDifferenceOfTheLoss) {
  // The head's input gradient through avg pooling and an mlp (dropout 0), checked end to end
  // on a few block5 kernel entries: a float64 loss of (block5 -> head) vs the step's gradient.
  const int n = 2, h = 2, wd = 2, c = 512, classes = 2;
  const Vgg16Weights w = block5_weights(6);
  const auto xf = ref::random_input(static_cast<size_t>(n) * h * wd * c, 7, 0.f, 1.f);
  const std::vector<int> labels{1, 0};
  Block5 b5(w, {1, h, wd, c});
  const HeadConfig hc{.kind = HeadKind::mlp,
                      .pool = Pool::avg,
                      .hidden = 8,
                      .dropout = 0.f,
                      .classes = classes,
                      .input = b5.output_row()};
  DenseHead head(hc, 8);
  FinetuneStep step(b5, head);
  std::mt19937_64 rng(1);
  step.train_step(xf.data(), n, labels, {}, rng);
  std::vector<Vec> kern, bias;
  for (const auto& name : block5_layers()) {
    kern.push_back(ref::to_double(w.conv(name).kernel));
    bias.push_back(ref::to_double(w.conv(name).bias));
  }
  const auto hp = ref::params_of(head);
  auto loss = [&] {
    Vec a(xf.begin(), xf.end());
    for (int l = 0; l < 3; ++l) a = conv(a, n, h, wd, c, c, kern[l], bias[l], true);
    const Vec y = pool(a, n, h, wd, c);
    return ref::ce_loss(ref::head_logits(hc, hp, y, n, {}), classes, labels, {});
  };
  for (int l = 0; l < 3; ++l)
    for (size_t i : {size_t{0}, size_t{12345}, size_t{9ull * 512 * 512 - 1}}) {
      const double keep = kern[l][i];
      kern[l][i] = keep + 1e-4;
      const double up = loss();
      kern[l][i] = keep - 1e-4;
      const double down = loss();
      kern[l][i] = keep;
      const double want = (up - down) / 2e-4;
      EXPECT_NEAR(b5.params()[2 * l].grad[i], want, 1e-5 + 1e-3 * std::abs(want))
          << block5_layers()[l] << " kernel[" << i << "]";
    }
}

// The head is frozen: only block5's updates (its training convs in `precision`) can lower
// the loss.
void check_block5_alone_lowers_the_loss(Precision precision) {
  const int n = 12, h = 2, wd = 2, c = 512;
  auto xf = ref::random_input(static_cast<size_t>(n) * h * wd * c, 9, 0.f, 1.f);
  std::vector<int> labels(n);
  for (int i = 0; i < n; ++i) labels[i] = i % 3;
  Block5 b5(block5_weights(10), {1, h, wd, c}, precision);
  DenseHead head({.classes = 3, .input = b5.output_row()}, 11);
  FinetuneStep step(b5, head);
  Optimizer sgd({.kind = OptimizerKind::sgd, .learning_rate = 1e-3f, .momentum = 0.9f},
                b5.params());
  std::mt19937_64 rng(1);
  double first = 0, last = 0;
  for (int it = 0; it < 15; ++it) {
    last = step.train_step(xf.data(), n, labels, {}, rng).loss;
    if (it == 0) first = last;
    sgd.step(b5.params());
  }
  EXPECT_LT(last, 0.5 * first) << "first " << first << ", last " << last;
}

TEST(FinetuneStep, TrainingBlock5AloneLowersTheLoss) {
  check_block5_alone_lowers_the_loss(Precision::f32);
}

TEST(FinetuneStep, TrainingBlock5AloneInBf16LowersTheLoss) {
  if (!machine().bf16_training.native)
    GTEST_SKIP() << "bf16 fine-tuning needs native oneDNN bf16 convolutions; oneDNN ISA "
                 << machine().isa << " has none (" << machine().bf16_training.impl << ")";
  check_block5_alone_lowers_the_loss(Precision::bf16);
}

// ---- tl-train --finetune and tl-predict ----------------------------------------------------

ExtractConfig extract_config(const fs::path& images, const fs::path& out, std::string layer) {
  ExtractConfig c;
  c.images = images;
  c.output = out;
  c.weights = "random:3";
  c.net = {.batch = 4, .height = 32, .width = 32, .to = std::move(layer)};
  c.image = {.height = 32, .width = 32};
  c.threads = 2;
  c.quiet = true;
  return c;
}

TrainRunConfig finetune_config(const fs::path& train, const fs::path& out) {
  TrainRunConfig c;
  c.train = {train};
  c.output = out;
  c.options.epochs = 3;
  c.options.batch = 4;
  c.options.seed = 7;
  c.quiet = true;
  c.finetune.enabled = true;
  c.finetune.weights = "random:3";
  c.finetune.epochs = 3;
  c.finetune.optimizer.learning_rate = 1e-3f;
  return c;
}

std::vector<std::string> csv_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string train_error(const TrainRunConfig& c) {
  std::ostringstream log;
  return testing::error_of([&] { run_training(c, log); });
}

struct Images {
  TempDir d;
  Images() {
    testing::make_class_folders(d / "train", {"circle", "square"}, 4);
    testing::make_class_folders(d / "test", {"circle", "square"}, 3, 36, 30);
    std::ostringstream log;
    run_extract(extract_config(d / "train", d / "train4.h5", "block4_pool"), log);
    run_extract(extract_config(d / "test", d / "test4.h5", "block4_pool"), log);
  }
};

TEST(FinetuneRun, TwoPhasesThenPredictOnImagesEqualsExtractAtBlock4PoolThenFeatures) {
  Images im;
  const fs::path d = im.d.path();
  auto tc = finetune_config(d / "train4.h5", d / "ft.h5");
  tc.val_split = 0.25;
  tc.history_csv = d / "history.csv";
  std::ostringstream log;
  const TrainRunSummary s = run_training(tc, log);
  EXPECT_EQ(s.head_phase.history.size(), 3u);
  EXPECT_EQ(s.result.history.size(), 3u);
  EXPECT_HAS(log.str(), "phase 1");
  EXPECT_HAS(log.str(), "phase 2");
  const Model m = load_model(d / "ft.h5");
  EXPECT_EQ(m.info.finetuned, "block5");
  EXPECT_EQ(m.info.features.layer, "block4_pool");
  EXPECT_EQ(m.info.head.input, (Shape{1, 1, 1, 512}));
  ASSERT_EQ(m.block5.size(), 3u);
  EXPECT_NE(m.block5[0].kernel, random_weights(3).conv("block5_conv1").kernel);  // trained

  PredictRunConfig f;
  f.model = d / "ft.h5";
  f.features = d / "test4.h5";
  f.output = d / "from_features.csv";
  f.quiet = true;
  std::ostringstream plog;
  const auto sf = run_prediction(f, plog);
  PredictRunConfig i = f;
  i.features.clear();
  i.images = d / "test";
  i.output = d / "from_images.csv";
  i.batch = 4;
  i.threads = 2;
  const auto si = run_prediction(i, plog);
  EXPECT_EQ(si.rows, 6u);
  // The same rows, classes and predictions; probabilities within 1e-4: the two extractions ran
  // at different batch sizes (rows agree within 2e-5 of their scale, docs/FORMAT.md), and the
  // head's standardisation scales such differences by 1 / std.
  const auto a = csv_lines(testing::read_bytes(d / "from_features.csv"));
  const auto b = csv_lines(testing::read_bytes(d / "from_images.csv"));
  ASSERT_EQ(a.size(), b.size());
  for (size_t r = 0; r < a.size(); ++r) {
    const size_t ca = a[r].rfind(','), cb = b[r].rfind(',');
    EXPECT_EQ(a[r].substr(0, ca), b[r].substr(0, cb)) << "row " << r;
    if (r > 0) {
      EXPECT_NEAR(std::stod(a[r].substr(ca + 1)), std::stod(b[r].substr(cb + 1)), 1e-4);
    }
  }
  EXPECT_EQ(sf.accuracy, si.accuracy);

  // --head-init: a head trained on block5_pool features of the same images.
  run_extract(extract_config(d / "train", d / "train5.h5", "block5_pool"), plog);
  TrainRunConfig hc;
  hc.train = {d / "train5.h5"};
  hc.output = d / "head5.h5";
  hc.options.epochs = 2;
  hc.quiet = true;
  run_training(hc, plog);
  auto tc2 = finetune_config(d / "train4.h5", d / "ft2.h5");
  tc2.finetune.head_init = d / "head5.h5";
  std::ostringstream log2;
  const TrainRunSummary s2 = run_training(tc2, log2);
  EXPECT_TRUE(s2.head_phase.history.empty());
  EXPECT_EQ(s2.result.history.size(), 3u);
  EXPECT_HAS(log2.str(), "head5.h5");
}

TEST(FinetuneRunErrors, OtherLayerHeadInitAndWeightsWithoutBlock5AreRefused) {
  Images im;
  const fs::path d = im.d.path();
  std::ostringstream log;
  // Features from another layer.
  run_extract(extract_config(d / "train", d / "train5.h5", "block5_pool"), log);
  auto msg = train_error(finetune_config(d / "train5.h5", d / "x.h5"));
  EXPECT_HAS(msg, "block4_pool");
  EXPECT_HAS(msg, "block5_pool");
  EXPECT_HAS(msg, "train5.h5");
  // A head-init of another shape (trained on block4_pool rows) ...
  TrainRunConfig hc;
  hc.train = {d / "train4.h5"};
  hc.output = d / "head4.h5";
  hc.options.epochs = 1;
  hc.quiet = true;
  run_training(hc, log);
  auto tc = finetune_config(d / "train4.h5", d / "x.h5");
  tc.finetune.head_init = d / "head4.h5";
  msg = train_error(tc);
  EXPECT_HAS(msg, "head4.h5");
  EXPECT_HAS(msg, "[1, 1, 512]");
  // ... or other classes.
  testing::make_class_folders(d / "three", {"a", "b", "c"}, 2);
  run_extract(extract_config(d / "three", d / "three5.h5", "block5_pool"), log);
  hc.train = {d / "three5.h5"};
  hc.output = d / "head3.h5";
  run_training(hc, log);
  tc.finetune.head_init = d / "head3.h5";
  msg = train_error(tc);
  EXPECT_HAS(msg, "head3.h5");
  EXPECT_HAS(msg, "classes");
  // A weights file without block5.
  Vgg16Weights partial = random_weights(3);
  partial.convs.resize(10);  // up to block4_conv3
  testing::write_keras_file(d / "no_block5.h5", partial, {});
  tc.finetune.head_init.clear();
  tc.finetune.weights = (d / "no_block5.h5").string();
  msg = train_error(tc);
  EXPECT_HAS(msg, "block5_conv1");
  EXPECT_HAS(msg, "no_block5.h5");
  // Options.
  tc.finetune.weights = "random:3";
  tc.finetune.epochs = 0;
  tc.options.epochs = 0;
  EXPECT_THROW(run_training(tc, log), UsageError);
}

}  // namespace
}  // namespace tl
