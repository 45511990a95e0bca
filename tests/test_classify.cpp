// tl::classify against a float64 reference: every layer's gradient by central differences,
// the optimizers against hand-computed steps, and training behaviour (learning, determinism,
// early stopping, class weights, splits, the stop flag) on small seeded synthetic data.
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <numeric>
#include <set>

#include <gtest/gtest.h>

#include "classify_reference.hpp"
#include "test_util.hpp"
#include "tl/dense_head.hpp"
#include "tl/error.hpp"
#include "tl/evaluate.hpp"
#include "tl/feature_source.hpp"
#include "tl/global_pool.hpp"
#include "tl/head_layers.hpp"
#include "tl/loss.hpp"
#include "tl/metrics.hpp"
#include "tl/optimizer.hpp"
#include "tl/seeded_random.hpp"
#include "tl/trainer.hpp"

namespace tl {
namespace {

using ref::Vec;

// float32 oneDNN results against float64 central differences, relative to the largest
// reference value: f32 rounding of sums of a few dozen terms stays far below this.
constexpr double kGradTol = 1e-4;

// --- layers -------------------------------------------------------------------------------

TEST(DenseLayer, ForwardAndGradientsMatchFiniteDifferences) {
  const int n = 5, in = 7, out = 3;
  Scratchpad scratch;
  DenseLayer fc(n, in, out, Pass::training, scratch);
  auto x = ref::random_floats(n * in, 1, -1, 1);
  auto k = ref::random_floats(in * out, 2, -1, 1);
  auto b = ref::random_floats(out, 3, -1, 1);
  auto r = ref::random_floats(n * out, 4, -1, 1);  // L = sum(y * r), so dL/dy = r
  std::vector<float> y(n * out), dx(n * in), dk(in * out), db(out);
  fc.forward(x.data(), k.data(), b.data(), y.data());
  fc.backward(x.data(), k.data(), r.data(), dx.data(), dk.data(), db.data());

  Vec X = ref::to_double(x), K = ref::to_double(k), B = ref::to_double(b), R = ref::to_double(r);
  EXPECT_LT(ref::rel_error(y, ref::dense(X, n, in, out, K, B)), 1e-6);
  auto loss = [&] {
    const Vec Y = ref::dense(X, n, in, out, K, B);
    return std::inner_product(Y.begin(), Y.end(), R.begin(), 0.0);
  };
  EXPECT_LT(ref::rel_error(dx, ref::numeric_grad(X, loss)), kGradTol);
  EXPECT_LT(ref::rel_error(dk, ref::numeric_grad(K, loss)), kGradTol);
  EXPECT_LT(ref::rel_error(db, ref::numeric_grad(B, loss)), kGradTol);
}

TEST(DenseLayer, InferenceLayerRefusesBackward) {
  Scratchpad scratch;
  DenseLayer fc(2, 3, 2, Pass::inference, scratch);
  std::vector<float> buf(64);
  EXPECT_THROW(fc.backward(buf.data(), buf.data(), buf.data(), buf.data(), buf.data(), buf.data()),
               Error);
}

TEST(ReluLayer, GradientMatchesFiniteDifferences) {
  const int n = 4, size = 9;
  Scratchpad scratch;
  ReluLayer relu(n, size, Pass::training, scratch);
  auto x = ref::random_floats(n * size, 5, -1, 1);
  for (float& v : x)  // keep away from the kink at 0
    if (std::abs(v) < 0.05f) v = 0.3f;
  auto r = ref::random_floats(n * size, 6, -1, 1);
  std::vector<float> y(n * size), dx(n * size);
  relu.forward(x.data(), y.data());
  relu.backward(x.data(), r.data(), dx.data());
  Vec X = ref::to_double(x), R = ref::to_double(r);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], std::max(x[i], 0.f));
  auto loss = [&] {
    double s = 0;
    for (size_t i = 0; i < X.size(); ++i) s += std::max(X[i], 0.0) * R[i];
    return s;
  };
  EXPECT_LT(ref::rel_error(dx, ref::numeric_grad(X, loss)), kGradTol);
}

TEST(Dropout, MaskIsKerasInvertedDropoutAndGradientMatches) {
  const float rate = 0.25f;
  std::vector<float> mask(20000);
  std::mt19937_64 rng(7);
  dropout_mask(rng, rate, mask);
  size_t dropped = 0;
  for (float m : mask) {
    ASSERT_TRUE(m == 0.f || m == 1.f / (1.f - rate)) << m;
    dropped += m == 0.f;
  }
  EXPECT_NEAR(static_cast<double>(dropped) / mask.size(), rate, 0.01);
  std::mt19937_64 again(7);  // same seed, same mask
  std::vector<float> mask2(mask.size());
  dropout_mask(again, rate, mask2);
  EXPECT_EQ(mask, mask2);

  // A fixed mask: y = x * mask, dL/dx = dL/dy * mask.
  const std::vector<float> fixed = {0.f, 2.f, 2.f, 0.f, 2.f, 2.f};
  auto x = ref::random_floats(6, 8, -1, 1), r = ref::random_floats(6, 9, -1, 1);
  std::vector<float> y(6), dx(6);
  apply_mask(x.data(), fixed, y.data());
  apply_mask(r.data(), fixed, dx.data());
  Vec X = ref::to_double(x);
  auto loss = [&] {
    double s = 0;
    for (size_t i = 0; i < 6; ++i) s += X[i] * fixed[i] * r[i];
    return s;
  };
  EXPECT_LT(ref::rel_error(dx, ref::numeric_grad(X, loss)), kGradTol);
  EXPECT_EQ(y[0], 0.f);
  EXPECT_EQ(y[1], 2 * x[1]);
  EXPECT_THROW(dropout_mask(rng, 1.f, mask), Error);
}

class GlobalPoolTest : public ::testing::TestWithParam<Pool> {};

TEST_P(GlobalPoolTest, ForwardAndGradientMatchReference) {
  const Pool p = GetParam();
  const int h = 3, w = 2, c = 4;
  auto row = ref::random_floats(h * w * c, 10, -2, 2);  // distinct values: no max ties
  const long long f = pooled_size(p, h, w, c);
  std::vector<float> out(f), drow(h * w * c);
  auto r = ref::random_floats(f, 11, -1, 1);
  global_pool(p, row.data(), h, w, c, out.data());
  global_pool_backward(p, row.data(), h, w, c, r.data(), drow.data());
  Vec X = ref::to_double(row);
  EXPECT_LT(ref::rel_error(out, ref::pool(p, X.data(), h, w, c)), 1e-6);
  auto loss = [&] {
    const Vec y = ref::pool(p, X.data(), h, w, c);
    double s = 0;
    for (long long i = 0; i < f; ++i) s += y[i] * r[i];
    return s;
  };
  EXPECT_LT(ref::rel_error(drow, ref::numeric_grad(X, loss)), kGradTol);
}

INSTANTIATE_TEST_SUITE_P(Pools, GlobalPoolTest, ::testing::Values(Pool::avg, Pool::max, Pool::none),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(SoftmaxCrossEntropy, LossAndGradientMatchFiniteDifferences) {
  const int n = 4, c = 5;
  Scratchpad scratch;
  SoftmaxLayer sm(n, c, scratch);
  auto z = ref::random_floats(n * c, 12, -3, 3);
  std::vector<float> p(n * c), dz(n * c);
  sm.forward(z.data(), p.data());
  const std::vector<int> y = {0, 4, 2, 2};
  const std::vector<float> w = {1.f, 0.5f, 2.f, 1.5f};
  const double loss = softmax_cross_entropy(z.data(), p.data(), y, w, c, dz.data());
  Vec Z = ref::to_double(z);
  EXPECT_LT(ref::rel_error(p, ref::softmax(Z, c)), 1e-6);
  EXPECT_NEAR(loss, ref::ce_loss(Z, c, y, w), 1e-6);
  auto f = [&] { return ref::ce_loss(Z, c, y, w); };
  EXPECT_LT(ref::rel_error(dz, ref::numeric_grad(Z, f)), kGradTol);
  // Unweighted, and a bad label.
  EXPECT_NEAR(softmax_cross_entropy(z.data(), p.data(), y, {}, c, nullptr),
              ref::ce_loss(Z, c, y, {}), 1e-6);
  const std::vector<int> bad = {0, 5, 1, 1};
  EXPECT_THROW(softmax_cross_entropy(z.data(), p.data(), bad, {}, c, nullptr), Error);
}

// --- the whole head -----------------------------------------------------------------------

struct HeadCase {
  const char* name;
  HeadConfig cfg;
};

void PrintTo(const HeadCase& c, std::ostream* os) {
  *os << c.name;
}

class HeadGradientTest : public ::testing::TestWithParam<HeadCase> {};

TEST_P(HeadGradientTest, TrainStepGradientsMatchFiniteDifferencesOfFloat64Head) {
  const HeadConfig cfg = GetParam().cfg;
  DenseHead head(cfg, 21);
  const int n = 6;
  auto rows = ref::random_floats(n * head.row_size(), 22, -1, 1);
  const std::vector<int> y = {0, 1, 2, 1, 0, 2};
  const std::vector<float> w = {1.f, 2.f, 0.5f, 1.f, 1.f, 3.f};
  // Non-zero biases so their gradient paths are exercised with a generic point.
  for (auto& p : head.params())
    if (!p.is_kernel) p.value = ref::random_floats(p.value.size(), 23, -0.2, 0.2);

  std::mt19937_64 rng(24);
  std::mt19937_64 replay = rng;  // the head draws its mask from the same stream
  const BatchResult r = head.train_step(rows.data(), n, y, w, rng);

  Vec mask;
  if (cfg.kind == HeadKind::mlp && cfg.dropout > 0) {
    std::vector<float> m(static_cast<size_t>(n) * cfg.hidden);
    dropout_mask(replay, cfg.dropout, m);
    mask = ref::to_double(m);
  }
  std::vector<Vec> P = ref::params_of(head);
  const Vec X = ref::to_double(rows);
  auto loss = [&] { return ref::ce_loss(ref::head_logits(cfg, P, X, n, mask), cfg.classes, y, w); };
  EXPECT_NEAR(r.loss, loss(), 1e-5 * std::max(1.0, loss()));
  for (size_t i = 0; i < P.size(); ++i)
    EXPECT_LT(ref::rel_error(head.params()[i].grad, ref::numeric_grad(P[i], loss)), kGradTol)
        << head.params()[i].name;

  // Inference: no dropout, probabilities of the float64 head.
  std::vector<float> probs(n * cfg.classes);
  head.predict(rows.data(), n, probs.data());
  EXPECT_LT(ref::rel_error(probs, ref::softmax(ref::head_logits(cfg, P, X, n, {}), cfg.classes)),
            1e-5);
}

HeadConfig make_cfg(HeadKind kind, Pool pool, float dropout, Shape in) {
  return {.kind = kind, .pool = pool, .hidden = 5, .dropout = dropout, .classes = 3, .input = in};
}

INSTANTIATE_TEST_SUITE_P(
    Heads, HeadGradientTest,
    ::testing::Values(
        HeadCase{"linear_flatten", make_cfg(HeadKind::linear, Pool::none, 0, {0, 2, 2, 3})},
        HeadCase{"linear_avg", make_cfg(HeadKind::linear, Pool::avg, 0, {0, 3, 2, 4})},
        HeadCase{"mlp_flatten", make_cfg(HeadKind::mlp, Pool::none, 0, {0, 2, 2, 3})},
        HeadCase{"mlp_max_dropout", make_cfg(HeadKind::mlp, Pool::max, 0.5f, {0, 2, 3, 4})},
        HeadCase{"mlp_pooled_input", make_cfg(HeadKind::mlp, Pool::none, 0.3f, {0, 1, 1, 6})}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(DenseHead, KerasLayoutNamesAndGlorotInit) {
  HeadConfig cfg = make_cfg(HeadKind::mlp, Pool::none, 0.5f, {0, 7, 7, 8});
  cfg.hidden = 64;
  DenseHead head(cfg, 1);
  const auto& ps = head.params();
  ASSERT_EQ(ps.size(), 4u);
  EXPECT_EQ(ps[0].name, "fc1/kernel");
  EXPECT_EQ(ps[0].shape, (std::vector<int>{7 * 7 * 8, 64}));
  EXPECT_EQ(ps[3].name, "predictions/bias");
  EXPECT_EQ(ps[3].shape, (std::vector<int>{3}));
  const double limit = std::sqrt(6.0 / (392 + 64));
  double sum = 0, sq = 0;
  for (float v : ps[0].value) {
    ASSERT_LE(std::abs(v), limit);
    sum += v, sq += double{v} * v;
  }
  const double m = sum / ps[0].value.size();
  EXPECT_NEAR(m, 0, 0.05 * limit);
  EXPECT_NEAR(sq / ps[0].value.size(), limit * limit / 3, 0.05 * limit * limit);  // var of U(-l,l)
  for (float v : ps[1].value) EXPECT_EQ(v, 0.f);
  EXPECT_EQ(DenseHead(cfg, 1).weights(), head.weights());
  EXPECT_NE(DenseHead(cfg, 2).weights(), head.weights());
  EXPECT_THROW(head.set_weights({{1.f}}), Error);
}

TEST(DenseHead, ConfigValidation) {
  auto bad = [](auto edit) {
    HeadConfig c = make_cfg(HeadKind::mlp, Pool::none, 0.5f, {0, 1, 1, 4});
    edit(c);
    return c;
  };
  EXPECT_THROW(DenseHead(bad([](HeadConfig& c) { c.classes = 1; }), 0), UsageError);
  EXPECT_THROW(DenseHead(bad([](HeadConfig& c) { c.dropout = 1; }), 0), UsageError);
  EXPECT_THROW(DenseHead(bad([](HeadConfig& c) { c.hidden = 0; }), 0), UsageError);
  EXPECT_THROW(DenseHead(bad([](HeadConfig& c) { c.input.c = 0; }), 0), UsageError);
  EXPECT_THROW(parse_head_kind("cnn"), UsageError);
  EXPECT_EQ(parse_pool("max"), Pool::max);
  EXPECT_THROW(parse_pool("sum"), UsageError);
}

// --- optimizers ---------------------------------------------------------------------------

std::vector<Param> two_params() {
  return {{"k", {2, 1}, {0.5f, -1.f}, {0.1f, -0.3f}, true}, {"b", {1}, {0.2f}, {0.4f}, false}};
}

TEST(Optimizer, AdamMatchesHandComputedSteps) {
  auto ps = two_params();
  const float wd = 0.01f;
  Optimizer opt({.kind = OptimizerKind::adam, .weight_decay = wd}, ps);
  EXPECT_FLOAT_EQ(opt.config().learning_rate, 1e-3f);
  // Hand computation in double, Keras's form, two steps with the same gradient.
  double w[3] = {0.5, -1.0, 0.2}, g0[3] = {0.1, -0.3, 0.4}, m[3] = {}, v[3] = {};
  for (int t = 1; t <= 2; ++t) {
    opt.step(ps);
    const double a = 1e-3 * std::sqrt(1 - std::pow(0.999, t)) / (1 - std::pow(0.9, t));
    for (int i = 0; i < 3; ++i) {
      const double g = g0[i] + (i < 2 ? wd * w[i] : 0.0);  // decay on the kernel only
      m[i] = 0.9 * m[i] + 0.1 * g;
      v[i] = 0.999 * v[i] + 0.001 * g * g;
      w[i] -= a * m[i] / (std::sqrt(v[i]) + 1e-7);
    }
  }
  EXPECT_NEAR(ps[0].value[0], w[0], 1e-6);
  EXPECT_NEAR(ps[0].value[1], w[1], 1e-6);
  EXPECT_NEAR(ps[1].value[0], w[2], 1e-6);
  // The first Adam step moves each weight by about lr, whatever the gradient's scale.
  EXPECT_NEAR(ps[1].value[0], 0.2 - 2e-3, 1e-5);
  EXPECT_EQ(opt.iterations(), 2);
}

TEST(Optimizer, SgdMomentumMatchesHandComputedSteps) {
  auto ps = two_params();
  Optimizer opt({.kind = OptimizerKind::sgd, .learning_rate = 0.1f, .momentum = 0.9f}, ps);
  opt.step(ps);  // v = -0.1 g; w += v
  EXPECT_NEAR(ps[0].value[0], 0.5 - 0.01, 1e-7);
  EXPECT_NEAR(ps[1].value[0], 0.2 - 0.04, 1e-7);
  opt.step(ps);  // v = 0.9 (-0.1 g) - 0.1 g = -0.19 g
  EXPECT_NEAR(ps[0].value[0], 0.5 - 0.01 - 0.019, 1e-7);
  EXPECT_NEAR(ps[0].value[1], -1.0 + 0.03 + 0.057, 1e-7);
  auto plain = two_params();
  Optimizer sgd({.kind = OptimizerKind::sgd}, plain);  // Keras's default lr 0.01, momentum 0
  sgd.step(plain);
  EXPECT_NEAR(plain[1].value[0], 0.2 - 0.004, 1e-7);
}

TEST(Optimizer, RmspropMatchesHandComputedStep) {
  auto ps = two_params();
  Optimizer opt({.kind = OptimizerKind::rmsprop}, ps);
  opt.step(ps);  // s = 0.1 g^2; w -= 1e-3 g / sqrt(s + 1e-7)
  for (int i = 0; i < 2; ++i) {
    const double g = ps[0].grad[i], w0 = i == 0 ? 0.5 : -1.0;
    EXPECT_NEAR(ps[0].value[i], w0 - 1e-3 * g / std::sqrt(0.1 * g * g + 1e-7), 1e-7);
  }
  EXPECT_THROW(Optimizer({.learning_rate = -1}, ps), UsageError);
  EXPECT_THROW(parse_optimizer("adagrad"), UsageError);
}

TEST(Optimizer, PenaltyIsHalfDecayTimesKernelSquares) {
  auto ps = two_params();
  Optimizer opt({.weight_decay = 0.1f}, ps);
  EXPECT_NEAR(opt.penalty(ps), 0.5 * 0.1 * (0.25 + 1.0), 1e-7);  // bias excluded
}

// --- training -----------------------------------------------------------------------------

double accuracy_on(DenseHead& head, FeatureSource& src) {
  return evaluate(head, src).accuracy;
}

TEST(Train, LinearHeadSeparatesLinearlySeparableFeatures) {
  const Shape shape{0, 2, 2, 3};  // 12 features, 6 classes at +-3 on distinct axes
  auto train_src = ref::blobs(600, 6, shape, 31, 3.0, 1.0);
  auto test_src = ref::blobs(300, 6, shape, 32, 3.0, 1.0);
  DenseHead head({.kind = HeadKind::linear, .classes = 6, .input = shape}, 33);
  TrainOptions opt{.epochs = 10, .seed = 34, .optimizer = {.learning_rate = 1e-2f}};
  const TrainResult r = train(head, train_src, nullptr, opt);
  ASSERT_EQ(r.history.size(), 10u);
  EXPECT_LT(r.history.back().loss, r.history.front().loss);
  EXPECT_GE(accuracy_on(head, test_src), 0.99);
  // Primitives per batch size: 32 and the short last batch 600 % 32 = 24.
  EXPECT_NE(head.describe().find("batch 24 (training)"), std::string::npos) << head.describe();
}

// XOR of the signs of two inputs: no linear head does much better than chance.
InMemorySource xor_data(size_t rows, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<float> x(rows * 2);
  std::vector<int> y(rows);
  for (size_t i = 0; i < rows; ++i) {
    const int a = static_cast<int>(rng() & 1), b = static_cast<int>(rng() & 1);
    x[2 * i] = static_cast<float>((a ? 1 : -1) + 0.3 * (uniform01(rng) - 0.5));
    x[2 * i + 1] = static_cast<float>((b ? 1 : -1) + 0.3 * (uniform01(rng) - 0.5));
    y[i] = a ^ b;
  }
  return InMemorySource({0, 1, 1, 2}, std::move(x), std::move(y));
}

TEST(Train, MlpLearnsXorWhereLinearCannot) {
  auto train_src = xor_data(400, 41), test_src = xor_data(200, 42);
  const Shape in{0, 1, 1, 2};
  TrainOptions opt{.epochs = 30, .seed = 43, .optimizer = {.learning_rate = 2e-2f}};
  DenseHead mlp({.kind = HeadKind::mlp, .hidden = 16, .dropout = 0.1f, .classes = 2, .input = in},
                44);
  train(mlp, train_src, nullptr, opt);
  EXPECT_GE(accuracy_on(mlp, test_src), 0.97);
  DenseHead linear({.kind = HeadKind::linear, .classes = 2, .input = in}, 44);
  train(linear, train_src, nullptr, opt);
  EXPECT_LE(accuracy_on(linear, test_src), 0.8);
}

std::vector<std::vector<float>> train_mlp(std::uint64_t head_seed, std::uint64_t train_seed) {
  const Shape shape{0, 2, 2, 4};
  auto src = ref::blobs(200, 4, shape, 51, 1.0, 2.0);
  DenseHead head({.kind = HeadKind::mlp,
                  .pool = Pool::avg,
                  .hidden = 32,
                  .dropout = 0.5f,
                  .classes = 4,
                  .input = shape},
                 head_seed);
  train(head, src, nullptr,
        {.epochs = 3,
         .batch = 16,
         .seed = train_seed,
         .class_weighting = ClassWeighting::balanced,
         .optimizer = {.weight_decay = 1e-3f}});
  return head.weights();
}

bool bitwise_equal(const std::vector<std::vector<float>>& a,
                   const std::vector<std::vector<float>>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].size() != b[i].size() ||
        std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)) != 0)
      return false;
  return true;
}

TEST(Train, SameSeedsGiveBitIdenticalWeightsOtherSeedsDiffer) {
  const auto a = train_mlp(1, 2), b = train_mlp(1, 2);
  EXPECT_TRUE(bitwise_equal(a, b));
  EXPECT_FALSE(bitwise_equal(a, train_mlp(1, 3)));  // other shuffling and dropout
  EXPECT_FALSE(bitwise_equal(a, train_mlp(4, 2)));  // other initialisation
}

// Validation rows carry the opposite labels of the training rows: the better the head fits
// the training data, the higher its validation loss, so epoch 1 is the best.
struct Flipped {
  InMemorySource train, val;
};
Flipped flipped_data() {
  auto train_src = ref::blobs(200, 2, {0, 1, 1, 2}, 61, 1.0, 0.5);
  auto val_src = ref::blobs(100, 2, {0, 1, 1, 2}, 62, 1.0, 0.5);
  std::vector<float> x(val_src.data().begin(), val_src.data().end());
  std::vector<int> y = labels_of(val_src);
  for (int& v : y) v = 1 - v;
  return {std::move(train_src), InMemorySource({0, 1, 1, 2}, std::move(x), std::move(y))};
}

TEST(Train, EarlyStoppingRestoresTheBestEpochsWeights) {
  auto d = flipped_data();
  DenseHead head({.kind = HeadKind::linear, .classes = 2, .input = {0, 1, 1, 2}}, 63);
  std::vector<std::vector<std::vector<float>>> after;  // weights after each epoch
  TrainCallbacks cb{.on_epoch = [&](const EpochRecord&) { after.push_back(head.weights()); }};
  const TrainResult r =
      train(head, d.train, &d.val,
            {.epochs = 20, .seed = 64, .optimizer = {.learning_rate = 1e-2f}, .patience = 2}, cb);
  ASSERT_EQ(r.history.size(), 3u);  // best at 1, no improvement at 2 and 3
  EXPECT_TRUE(r.early_stopped);
  EXPECT_EQ(r.best_epoch, 1);
  EXPECT_TRUE(r.restored_best);
  EXPECT_LT(r.history[0].val_loss, r.history[1].val_loss);
  EXPECT_LT(r.history[1].val_loss, r.history[2].val_loss);
  EXPECT_TRUE(r.history[0].best);
  EXPECT_FALSE(r.history[2].best);
  EXPECT_TRUE(bitwise_equal(head.weights(), after[0]));
  EXPECT_FALSE(bitwise_equal(head.weights(), after[2]));
  // The restored head gives epoch 1's validation loss again.
  EXPECT_DOUBLE_EQ(evaluate(head, d.val).loss, r.history[0].val_loss);

  DenseHead last({.kind = HeadKind::linear, .classes = 2, .input = {0, 1, 1, 2}}, 63);
  after.clear();
  TrainCallbacks cb2{.on_epoch = [&](const EpochRecord&) { after.push_back(last.weights()); }};
  train(last, d.train, &d.val,
        {.epochs = 20,
         .seed = 64,
         .optimizer = {.learning_rate = 1e-2f},
         .patience = 2,
         .restore_best = false},
        cb2);
  EXPECT_TRUE(bitwise_equal(last.weights(), after.back()));
}

TEST(Train, StopFlagEndsTrainingAndKeepsTheBestModel) {
  auto d = flipped_data();
  DenseHead head({.kind = HeadKind::linear, .classes = 2, .input = {0, 1, 1, 2}}, 71);
  std::atomic<bool> stop{false};
  std::vector<std::vector<float>> epoch1;
  int batches_in_epoch2 = 0;
  TrainCallbacks cb{.on_epoch = [&](const EpochRecord&) { epoch1 = head.weights(); },
                    .on_batch =
                        [&](int epoch, size_t, size_t) {
                          if (epoch == 2 && ++batches_in_epoch2 == 2) stop = true;
                        }};
  TrainOptions opt{.epochs = 50, .seed = 72, .optimizer = {.learning_rate = 1e-2f}};
  opt.stop = &stop;
  const TrainResult r = train(head, d.train, &d.val, opt, cb);
  EXPECT_TRUE(r.interrupted);
  EXPECT_EQ(r.history.size(), 1u);
  EXPECT_EQ(batches_in_epoch2, 2);
  EXPECT_TRUE(r.restored_best);  // epoch 2's two batches are dropped
  EXPECT_TRUE(bitwise_equal(head.weights(), epoch1));

  // Without validation: the weights as they are when the flag is seen.
  DenseHead h2({.kind = HeadKind::linear, .classes = 2, .input = {0, 1, 1, 2}}, 71);
  stop = true;
  const auto before = h2.weights();
  const TrainResult r2 = train(h2, d.train, nullptr, opt);
  EXPECT_TRUE(r2.interrupted);
  EXPECT_TRUE(r2.history.empty());
  EXPECT_TRUE(bitwise_equal(h2.weights(), before));
}

TEST(Train, RejectsBadOptionsAndData) {
  auto src = ref::blobs(20, 2, {0, 1, 1, 2}, 81, 1.0, 0.5);
  DenseHead head({.kind = HeadKind::linear, .classes = 2, .input = {0, 1, 1, 2}}, 1);
  EXPECT_THROW(train(head, src, nullptr, {.patience = 3}), UsageError);
  EXPECT_THROW(train(head, src, nullptr, {.epochs = 0}), UsageError);
  DenseHead other({.kind = HeadKind::linear, .classes = 2, .input = {0, 1, 1, 3}}, 1);
  EXPECT_THROW(train(other, src, nullptr, {}), Error);
  auto three = ref::blobs(20, 3, {0, 1, 1, 2}, 82, 1.0, 0.5);  // label 2 for a 2-class head
  EXPECT_THROW(train(head, three, nullptr, {}), Error);
}

TEST(ClassWeights, BalancedIsSklearnsFormula) {
  const std::vector<int> y = {0, 0, 0, 1, 2, 2};
  const auto w = class_weights(y, 3, ClassWeighting::balanced);  // 6 / (3 * count)
  EXPECT_FLOAT_EQ(w[0], 6.f / 9);
  EXPECT_FLOAT_EQ(w[1], 2.f);
  EXPECT_FLOAT_EQ(w[2], 1.f);
  const auto absent = class_weights(std::vector<int>{0, 0, 1}, 3, ClassWeighting::balanced);
  EXPECT_FLOAT_EQ(absent[0], 3.f / 4);  // 2 classes present
  EXPECT_FLOAT_EQ(absent[1], 3.f / 2);
  EXPECT_EQ(absent[2], 0.f);
  EXPECT_EQ(class_weights(y, 3, ClassWeighting::none), (std::vector<float>{1, 1, 1}));
  EXPECT_THROW(class_weights(std::vector<int>{3}, 3, ClassWeighting::none), Error);

  // Training reports the weights it used.
  auto src = ref::blobs(30, 3, {0, 1, 1, 3}, 91, 1.0, 0.5);
  DenseHead head({.kind = HeadKind::linear, .classes = 4, .input = {0, 1, 1, 3}}, 1);
  const auto r =
      train(head, src, nullptr, {.epochs = 1, .class_weighting = ClassWeighting::balanced});
  EXPECT_EQ(r.class_weights, (std::vector<float>{1, 1, 1, 0}));
}

TEST(StratifiedSplit, KeepsClassProportionsIsDisjointAndSeeded) {
  std::vector<int> y;
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < (c == 0 ? 50 : c == 1 ? 30 : 20); ++i) y.push_back(c);
  std::mt19937_64 rng(5);
  shuffle(rng, std::span(y));
  const Split s = stratified_split(y, 0.2, 9);
  int val_count[3] = {}, train_count[3] = {};
  for (size_t i : s.val) ++val_count[y[i]];
  for (size_t i : s.train) ++train_count[y[i]];
  EXPECT_EQ(val_count[0], 10);
  EXPECT_EQ(val_count[1], 6);
  EXPECT_EQ(val_count[2], 4);
  EXPECT_EQ(train_count[0] + val_count[0], 50);
  std::set<size_t> all(s.train.begin(), s.train.end());
  for (size_t i : s.val) EXPECT_TRUE(all.insert(i).second) << "row " << i << " on both sides";
  EXPECT_EQ(all.size(), y.size());
  EXPECT_TRUE(std::is_sorted(s.val.begin(), s.val.end()));
  EXPECT_EQ(stratified_split(y, 0.2, 9).val, s.val);
  EXPECT_NE(stratified_split(y, 0.2, 10).val, s.val);

  // Small classes: 1 row stays in training; 2 rows give one to validation even at 10%.
  const std::vector<int> small = {0, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2};
  const Split t = stratified_split(small, 0.1, 1);
  int v[3] = {};
  for (size_t i : t.val) ++v[small[i]];
  EXPECT_EQ(v[0], 0);
  EXPECT_EQ(v[1], 1);
  EXPECT_EQ(v[2], 1);
  EXPECT_THROW(stratified_split(small, 1.0, 1), UsageError);

  // A SubsetSource reads the chosen rows of its base.
  InMemorySource base({0, 1, 1, 1}, {10, 11, 12, 13}, {0, 1, 0, 1});
  SubsetSource sub(base, {3, 0});
  float out[2];
  const size_t rows[] = {0, 1};
  sub.read(rows, out);
  EXPECT_EQ(out[0], 13.f);
  EXPECT_EQ(out[1], 10.f);
  EXPECT_EQ(sub.label(0), 1);
}

// --- evaluation and metrics ---------------------------------------------------------------

TEST(Evaluate, BatchedPredictionMatchesFloat64Head) {
  const HeadConfig cfg = make_cfg(HeadKind::mlp, Pool::avg, 0.5f, {0, 2, 2, 4});
  DenseHead head(cfg, 3);
  auto src = ref::blobs(23, 3, cfg.input, 4, 1.0, 1.0);
  std::vector<float> probs;
  const Evaluation e = evaluate(head, src, 7, &probs);  // 7, 7, 7, 2
  EXPECT_EQ(e.rows, 23u);
  const Vec logits =
      ref::head_logits(cfg, ref::params_of(head), ref::to_double(src.data()), 23, {});
  EXPECT_LT(ref::rel_error(probs, ref::softmax(logits, 3)), 1e-5);
  const auto y = labels_of(src);
  EXPECT_NEAR(e.loss, ref::ce_loss(logits, 3, y, {}), 1e-5);
  EXPECT_DOUBLE_EQ(e.accuracy, accuracy(y, argmax_rows(probs, 3)));
  // What evaluation guarantees across batch sizes: each batch is within f32's bound of the
  // float64 head, so two batch sizes agree to twice that (oneDNN may pick another kernel for
  // another row count: on AVX2 they differ in the last bits), with the same top class; the
  // same batch size gives the same bits.
  const std::vector<float> by5 = predict(head, src, 5);
  EXPECT_LT(ref::rel_error(by5, std::vector<double>(probs.begin(), probs.end())), 2e-5);
  EXPECT_EQ(argmax_rows(by5, 3), argmax_rows(probs, 3));
  EXPECT_EQ(predict(head, src, 7), probs);
}

TEST(Metrics, ConfusionPrecisionRecallF1OnAHandMadeExample) {
  const std::vector<int> y = {0, 0, 1, 1, 2, 2}, p = {0, 1, 1, 1, 2, 0};
  const ConfusionMatrix cm = confusion_matrix(y, p, 3);
  EXPECT_EQ(cm.counts, (std::vector<std::int64_t>{1, 1, 0, 0, 2, 0, 1, 0, 1}));
  const ClassificationReport r = classification_report(cm);
  EXPECT_DOUBLE_EQ(r.per_class[0].precision, 0.5);
  EXPECT_DOUBLE_EQ(r.per_class[0].recall, 0.5);
  EXPECT_DOUBLE_EQ(r.per_class[1].precision, 2.0 / 3);
  EXPECT_DOUBLE_EQ(r.per_class[1].recall, 1.0);
  EXPECT_DOUBLE_EQ(r.per_class[1].f1, 0.8);
  EXPECT_DOUBLE_EQ(r.per_class[2].precision, 1.0);
  EXPECT_DOUBLE_EQ(r.per_class[2].f1, 2.0 / 3);
  EXPECT_EQ(r.per_class[2].support, 2);
  EXPECT_DOUBLE_EQ(r.accuracy, 4.0 / 6);
  EXPECT_DOUBLE_EQ(r.macro.f1, (0.5 + 0.8 + 2.0 / 3) / 3);
  EXPECT_DOUBLE_EQ(r.weighted.recall, (0.5 + 1.0 + 0.5) / 3);
  EXPECT_DOUBLE_EQ(accuracy(y, p), 4.0 / 6);
  // A class never predicted nor present: zeros, not NaN.
  const ClassificationReport z = classification_report(confusion_matrix(y, p, 4));
  EXPECT_EQ(z.per_class[3].f1, 0.0);
  EXPECT_THROW(confusion_matrix(y, std::vector<int>{0, 0, 0, 0, 0, 3}, 3), Error);
}

TEST(Metrics, TopK) {
  const std::vector<float> probs = {0.1f, 0.5f, 0.4f, 0.0f,   // label 2: second
                                    0.3f, 0.3f, 0.2f, 0.2f,   // label 1: tie with 0, after it
                                    0.7f, 0.1f, 0.1f, 0.1f};  // label 3: fourth
  const std::vector<int> y = {2, 1, 3};
  EXPECT_EQ(top_k(std::span(probs).first(4), 2), (std::vector<int>{1, 2}));
  EXPECT_EQ(top_k(std::span(probs).subspan(4, 4), 3), (std::vector<int>{0, 1, 2}));
  EXPECT_DOUBLE_EQ(top_k_accuracy(probs, 4, y, 1), 0.0);
  EXPECT_DOUBLE_EQ(top_k_accuracy(probs, 4, y, 2), 2.0 / 3);
  EXPECT_DOUBLE_EQ(top_k_accuracy(probs, 4, y, 4), 1.0);
  EXPECT_EQ(argmax_rows(probs, 4), (std::vector<int>{1, 0, 0}));
}

TEST(SeededRandom, ShuffleIsAPermutationAndUniformBelowIsInRange) {
  std::vector<int> v(100);
  std::iota(v.begin(), v.end(), 0);
  std::mt19937_64 rng(1);
  shuffle(rng, std::span(v));
  std::vector<int> s = v;
  std::sort(s.begin(), s.end());
  for (int i = 0; i < 100; ++i) EXPECT_EQ(s[i], i);
  EXPECT_NE(v[0] * 1000 + v[1], 1);  // moved
  for (int i = 0; i < 1000; ++i) EXPECT_LT(uniform_below(rng, 7), 7u);
  EXPECT_NE(derive_seed(1, SeedStream::shuffle), derive_seed(1, SeedStream::dropout));
}

// --- the fit loop's guard, clipping and keep_start, on a scripted Trainable -------------------

// One parameter vector in a quadratic bowl around `target`: grad = value - target. Each
// train_step call may be scripted to return a bad loss or a collapsed prediction; validation
// loss is the bowl's value (or scripted per evaluation).
class Scripted : public Trainable {
 public:
  explicit Scripted(std::vector<float> start) {
    params_.push_back({"w",
                       {static_cast<int>(start.size())},
                       start,
                       std::vector<float>(start.size(), 0.f),
                       true});
    target_.assign(start.size(), 0.f);
  }
  Shape input_row() const override { return {0, 1, 1, 1}; }
  int classes() const override { return 2; }
  std::vector<std::vector<Param>*> param_groups() override { return {&params_}; }
  BatchResult train_step(const float*, int n, std::span<const int>, std::span<const float>,
                         std::mt19937_64&) override {
    ++calls;
    Param& p = params_[0];
    double loss = 0;
    for (size_t i = 0; i < p.value.size(); ++i) {
      p.grad[i] = fixed_grad.empty() ? p.value[i] - target_[i] : fixed_grad[i];
      loss += 0.5 * std::pow(p.value[i] - target_[i], 2);
    }
    BatchResult r{
        .loss = 0.5 + loss, .correct = n / 2, .min_class = 0, .max_class = 1, .logit_spread = 1};
    if (script) script(calls, r);
    return r;
  }
  Evaluation evaluate(FeatureSource& src, int, const std::atomic<bool>*) override {
    ++evaluations;
    double loss = 0;
    for (size_t i = 0; i < params_[0].value.size(); ++i)
      loss += 0.5 * std::pow(params_[0].value[i] - target_[i], 2);
    if (val_loss) loss = val_loss(evaluations);
    return {.loss = loss, .accuracy = 0.5, .rows = src.rows()};
  }
  std::string collapse() const override { return collapse_at == calls ? "block5 is dead" : ""; }

  std::vector<float>& value() { return params_[0].value; }
  int calls = 0, evaluations = 0, collapse_at = -1;
  std::function<void(int call, BatchResult&)> script{};
  std::function<double(int evaluation)> val_loss{};
  std::vector<float> fixed_grad{};

 private:
  std::vector<Param> params_;
  std::vector<float> target_;
};

InMemorySource two_class_rows(size_t rows) {
  std::vector<int> labels(rows);
  for (size_t i = 0; i < rows; ++i) labels[i] = static_cast<int>(i % 2);
  return InMemorySource({0, 1, 1, 1}, std::vector<float>(rows, 0.f), std::move(labels));
}

TrainOptions sgd(float lr, int epochs) {
  return {.epochs = epochs,
          .batch = 10,
          .shuffle = false,
          .optimizer = {.kind = OptimizerKind::sgd, .learning_rate = lr}};
}

TEST(Guard, EachTroubleRollsBackHalvesTheRateAndRedoesTheEpoch) {
  struct Case {
    const char* reason;
    std::function<void(Scripted&)> arm;
    int rolled_back_to;  // a collapse goes back to the start: it builds up unseen
  };
  const std::vector<Case> cases{
      {"the loss is not finite",
       [](Scripted& m) {
         m.script = [](int call, BatchResult& r) { r.loss = call == 7 ? NAN : r.loss; };
       },
       1},
      {"the gradient is not finite",
       [](Scripted& m) {
         m.script = [&m](int call, BatchResult&) {
           if (call == 7) m.param_groups()[0]->at(0).grad[0] = INFINITY;
         };
       },
       1},
      {"over 10 x the starting",
       [](Scripted& m) {
         m.script = [](int call, BatchResult& r) { r.loss = call == 7 ? 1e3 : r.loss; };
       },
       1},
      {"every training row predicted as class 1",
       [](Scripted& m) {
         m.script = [](int call, BatchResult& r) {
           if (call > 4 && call <= 8) r.min_class = r.max_class = 1;  // all of epoch 2
         };
       },
       0},
      {"no longer depend on the input",
       [](Scripted& m) {
         m.script = [](int call, BatchResult& r) {
           if (call == 8) r.logit_spread = 0, r.loss = std::log(2.0);  // epoch 2's last batch
         };
       },
       0},
      {"block5 is dead", [](Scripted& m) { m.collapse_at = 7; }, 0},
  };
  auto src = two_class_rows(40);  // 4 batches an epoch
  for (const auto& c : cases) {
    Scripted m({4.f, -2.f});
    c.arm(m);
    std::vector<float> at_rollback;
    std::vector<GuardEvent> events;
    const TrainResult r = fit(m, src, nullptr, sgd(0.1f, 3), {.on_guard = [&](const GuardEvent& e) {
                                events.push_back(e);
                                at_rollback = m.value();
                              }});
    ASSERT_EQ(events.size(), 1u) << c.reason;
    EXPECT_HAS(events[0].reason, c.reason);
    EXPECT_EQ(events[0].epoch, 2) << c.reason;
    EXPECT_EQ(events[0].rolled_back_to, c.rolled_back_to) << c.reason;
    EXPECT_FLOAT_EQ(events[0].learning_rate, 0.05f);
    EXPECT_FALSE(events[0].gave_up);
    // Epoch 1's weights (4 SGD steps of lr 0.1 in the bowl: 0.9^4 of the start) or the start.
    EXPECT_NEAR(at_rollback[0], 4 * std::pow(0.9, 4 * c.rolled_back_to), 1e-5) << c.reason;
    ASSERT_EQ(r.history.size(), 3u) << c.reason;  // epoch 2 redone, all 3 completed
    EXPECT_FLOAT_EQ(r.history[0].learning_rate, 0.1f);
    EXPECT_FLOAT_EQ(r.history[1].learning_rate, 0.05f);
    EXPECT_EQ(r.history[1].guard_retries, 1);
    EXPECT_TRUE(r.guard_stop.empty());
    EXPECT_EQ(r.guard_events.size(), 1u);
  }
  // A slow learner is not a collapse: the loss of the class frequencies with outputs that
  // still depend on the input.
  Scripted slow({4.f, -2.f});
  slow.script = [](int, BatchResult& r) { r.loss = std::log(2.0); };
  EXPECT_TRUE(fit(slow, src, nullptr, sgd(0.1f, 3)).guard_events.empty());
}

TEST(Guard, GivesUpAfterItsRetriesKeepingTheLastGoodWeights) {
  auto src = two_class_rows(40);
  Scripted m({1.f, 1.f});
  m.script = [](int call, BatchResult& r) { r.loss = call > 4 ? NAN : r.loss; };  // from epoch 2
  TrainOptions o = sgd(0.1f, 5);
  o.guard_retries = 2;
  const TrainResult r = fit(m, src, nullptr, o);
  ASSERT_EQ(r.guard_events.size(), 3u);
  EXPECT_TRUE(r.guard_events.back().gave_up);
  EXPECT_HAS(r.guard_stop, "gave up after 2 rollback(s)");
  EXPECT_HAS(r.guard_stop, "epoch 2");
  ASSERT_EQ(r.history.size(), 1u);
  EXPECT_NEAR(m.value()[0], std::pow(0.9, 4), 1e-6);  // epoch 1's weights, not a bad one
}

TEST(Fit, ClipNormBoundsTheGradientOfAllParamsTogether) {
  auto src = two_class_rows(10);  // one batch
  Scripted m({0.f, 0.f});
  m.fixed_grad = {6.f, 8.f};  // norm 10
  TrainOptions o = sgd(1.f, 1);
  o.clip_norm = 2;
  fit(m, src, nullptr, o);
  EXPECT_FLOAT_EQ(m.value()[0], -1.2f);  // -lr * g * 2 / 10
  EXPECT_FLOAT_EQ(m.value()[1], -1.6f);
  Scripted u({0.f, 0.f});
  u.fixed_grad = {0.6f, 0.8f};  // norm 1: below the threshold, untouched
  fit(u, src, nullptr, o);
  EXPECT_FLOAT_EQ(u.value()[0], -0.6f);
}

TEST(Fit, KeepStartEndsWithTheStartingWeightsWhenNoEpochBeatsThemOnValidation) {
  auto src = two_class_rows(20), val = two_class_rows(10);
  Scripted m({3.f, 3.f});
  m.val_loss = [](int evaluation) { return evaluation == 1 ? 0.1 : 0.2 + evaluation; };
  TrainOptions o = sgd(0.1f, 3);
  o.keep_start = true;
  const TrainResult r = fit(m, src, &val, o);
  EXPECT_TRUE(r.kept_start);
  EXPECT_TRUE(r.restored_best);
  EXPECT_EQ(r.best_epoch, 0);
  EXPECT_DOUBLE_EQ(r.start.loss, 0.1);
  EXPECT_EQ(r.history.size(), 3u);
  EXPECT_EQ(m.value(), (std::vector<float>{3.f, 3.f}));
  // An epoch that beats the start is kept instead.
  Scripted b({3.f, 3.f});
  b.val_loss = [](int evaluation) { return evaluation == 3 ? 0.05 : 1.0; };
  const TrainResult rb = fit(b, src, &val, o);
  EXPECT_FALSE(rb.kept_start);
  EXPECT_EQ(rb.best_epoch, 2);
}

TEST(Fit, RefusesBadGuardOptions) {
  auto src = two_class_rows(10);
  Scripted m({0.f});
  for (auto [o, what] : {std::pair{TrainOptions{.guard_retries = -1}, "guard retries"},
                         std::pair{TrainOptions{.explode_factor = 1}, "explode factor"},
                         std::pair{TrainOptions{.clip_norm = -1}, "clip norm"},
                         std::pair{TrainOptions{.start_margin = 1}, "start margin"}})
    EXPECT_HAS(testing::error_of([&] { fit(m, src, nullptr, o); }), what);
}

}  // namespace
}  // namespace tl
