// Stage 2's exact pieces (issue 16): feature standardisation against a float64 two-pass
// reference, the standardized head's forward and input gradient against float64, L-BFGS on
// problems with a known minimum, and the logistic regression against the float64 optimality
// condition of scikit-learn's objective.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>

#include <gtest/gtest.h>

#include "classify_reference.hpp"
#include "test_util.hpp"
#include "tl/dense_head.hpp"
#include "tl/error.hpp"
#include "tl/evaluate.hpp"
#include "tl/lbfgs.hpp"
#include "tl/logreg.hpp"
#include "tl/standardization.hpp"

namespace tl {
namespace {

using ref::Vec;

// {rows, f}: feature j = 1000 + j + (j + 1) * u, u uniform in [-1, 1): a large mean over a
// small spread, the case a one-pass sum of squares gets wrong in float.
std::vector<float> offset_rows(size_t rows, int f, std::uint64_t seed) {
  const auto u = ref::random_floats(rows * f, seed, -1, 1);
  std::vector<float> x(rows * f);
  for (size_t i = 0; i < rows; ++i)
    for (int j = 0; j < f; ++j) x[i * f + j] = 1000.f + j + (j + 1) * u[i * f + j];
  return x;
}

// The float64 two-pass reference of FeatureMoments::result().
Standardization reference_moments(const std::vector<float>& x, size_t rows, int f) {
  Vec mean(f, 0.0), var(f, 0.0);
  for (size_t i = 0; i < rows; ++i)
    for (int j = 0; j < f; ++j) mean[j] += x[i * f + j] / static_cast<double>(rows);
  for (size_t i = 0; i < rows; ++i)
    for (int j = 0; j < f; ++j) var[j] += std::pow(x[i * f + j] - mean[j], 2) / rows;
  const double mean_var = std::accumulate(var.begin(), var.end(), 0.0) / f;
  Standardization z;
  for (int j = 0; j < f; ++j) {
    z.mean.push_back(static_cast<float>(mean[j]));
    z.std.push_back(static_cast<float>(std::sqrt(var[j] + kVarianceFloor * mean_var)));
  }
  return z;
}

TEST(FeatureMoments, EqualTheFloat64TwoPassReferenceForAnyBatchSplit) {
  const size_t rows = 1000;
  const int f = 300;  // more than one oneTBB block of features
  const auto x = offset_rows(rows, f, 1);
  const Standardization want = reference_moments(x, rows, f);
  for (size_t batch : {size_t{1}, size_t{7}, size_t{256}, rows}) {
    FeatureMoments m(f);
    for (size_t first = 0; first < rows; first += batch)
      m.add(x.data() + first * f, static_cast<int>(std::min(batch, rows - first)));
    EXPECT_EQ(m.rows(), rows);
    const Standardization got = m.result();
    for (int j = 0; j < f; ++j) {
      EXPECT_NEAR(got.mean[j], want.mean[j], 1e-6 * std::abs(want.mean[j])) << batch << " " << j;
      EXPECT_NEAR(got.std[j], want.std[j], 1e-5 * want.std[j]) << batch << " " << j;
    }
  }
}

TEST(FeatureMoments, ConstantFeaturesGetTheFloorAndAllConstantGetOne) {
  // Feature 0 varies (std 1 around 5), feature 1 is constant 7.
  std::vector<float> x;
  for (int i = 0; i < 100; ++i) x.insert(x.end(), {i % 2 ? 6.f : 4.f, 7.f});
  FeatureMoments m(2);
  m.add(x.data(), 100);
  const Standardization z = m.result();
  const double mean_var = 0.5;  // (1 + 0) / 2
  EXPECT_FLOAT_EQ(z.mean[1], 7.f);
  EXPECT_FLOAT_EQ(z.std[1], static_cast<float>(std::sqrt(kVarianceFloor * mean_var)));
  EXPECT_FLOAT_EQ(z.std[0], static_cast<float>(std::sqrt(1 + kVarianceFloor * mean_var)));
  std::vector<float> c(10, 3.f);
  FeatureMoments all_constant(1);
  all_constant.add(c.data(), 10);
  EXPECT_EQ(all_constant.result().std[0], 1.f);
  EXPECT_HAS(testing::error_of([] { FeatureMoments(3).result(); }), "no rows");
}

TEST(DenseHead, StandardizationIsCheckedStoredAndFromTheSource) {
  const Shape shape{0, 2, 2, 3};
  DenseHead head({.kind = HeadKind::linear, .pool = Pool::avg, .classes = 2, .input = shape}, 1);
  EXPECT_TRUE(head.standardization().empty());
  EXPECT_HAS(testing::error_of([&] {
               head.set_standardization({{1, 2}, {1, 1}});
             }),
             "2 mean(s) and 2 std(s), the head has 3");
  EXPECT_HAS(testing::error_of([&] {
               head.set_standardization({{0, 0, 0}, {1, 0, 1}});
             }),
             "feature 1");
  EXPECT_HAS(testing::error_of([&] {
               head.set_standardization({{0, NAN, 0}, {1, 1, 1}});
             }),
             "feature 1");
  // input_statistics: the pooled rows' moments (avg over the 2x2 grid), in batches.
  auto src = ref::blobs(50, 2, shape, 3, 2.0, 1.0);
  const auto data = src.data();
  std::vector<float> pooled(50 * 3);
  head.pool(data.data(), 50, pooled.data());
  const Standardization want = reference_moments(pooled, 50, 3);
  const Standardization got = input_statistics(head, src, 7);
  EXPECT_HAS(testing::error_of([&] { input_statistics(head, src, 0); }), "batch size 0");
  for (int j = 0; j < 3; ++j) {
    EXPECT_NEAR(got.mean[j], want.mean[j], 1e-6);
    EXPECT_NEAR(got.std[j], want.std[j], 1e-6 * want.std[j]);
  }
}

// The standardized head against float64: probabilities, and the gradient of the loss with
// respect to the stored rows (what fine-tuning sends into block5) against central differences.
class StandardizedHeadTest : public ::testing::TestWithParam<std::pair<HeadKind, Pool>> {};

TEST_P(StandardizedHeadTest, ForwardAndInputGradientMatchFloat64) {
  const auto [kind, pool] = GetParam();
  const Shape shape{0, 2, 3, 4};
  const int n = 5, classes = 3;
  HeadConfig cfg{
      .kind = kind, .pool = pool, .hidden = 6, .dropout = 0, .classes = classes, .input = shape};
  DenseHead head(cfg, 11);
  const size_t rs = 24;
  const int f = head.features();
  Standardization z{ref::random_floats(f, 12, 50, 60), ref::random_floats(f, 13, 0.5, 2)};
  head.set_standardization(z);
  Vec rows = ref::to_double(ref::random_floats(n * rs, 14, 40, 70));
  const std::vector<float> rows_f(rows.begin(), rows.end());
  const std::vector<int> labels{0, 2, 1, 1, 0};
  const auto params = ref::params_of(head);

  std::vector<float> probs(n * classes);
  head.predict(rows_f.data(), n, probs.data());
  const Vec want = ref::softmax(ref::head_logits(cfg, params, rows, n, {}, z), classes);
  EXPECT_LT(ref::rel_error(probs, want), 1e-5);

  std::vector<float> d_rows(n * rs);
  std::mt19937_64 rng(1);
  head.train_step(rows_f.data(), n, labels, {}, rng, d_rows.data());
  const Vec num = ref::numeric_grad(rows, [&] {
    return ref::ce_loss(ref::head_logits(cfg, params, rows, n, {}, z), classes, labels, {});
  });
  EXPECT_LT(ref::rel_error(d_rows, num), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Heads, StandardizedHeadTest,
                         ::testing::Values(std::pair{HeadKind::linear, Pool::none},
                                           std::pair{HeadKind::linear, Pool::max},
                                           std::pair{HeadKind::mlp, Pool::avg}));

// --- L-BFGS --------------------------------------------------------------------------------

TEST(Lbfgs, FindsTheMinimumOfAnIllConditionedQuadraticAndOfRosenbrock) {
  // f = sum_i 10^(i/2) (x_i - i)^2: condition number 10^4.5.
  std::vector<double> x(10, 0.0);
  const auto quad = [](std::span<const double> x, std::span<double> g) {
    double f = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double a = std::pow(10.0, i / 2.0), d = x[i] - static_cast<double>(i);
      f += a * d * d;
      g[i] = 2 * a * d;
    }
    return f;
  };
  LbfgsResult r = minimize_lbfgs(x, quad, {.gtol = 1e-8});
  EXPECT_TRUE(r.converged()) << to_string(r.stop);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], static_cast<double>(i), 1e-6);

  std::vector<double> y{-1.2, 1.0};
  const auto rosenbrock = [](std::span<const double> x, std::span<double> g) {
    const double a = 1 - x[0], b = x[1] - x[0] * x[0];
    g[0] = -2 * a - 400 * x[0] * b;
    g[1] = 200 * b;
    return a * a + 100 * b * b;
  };
  r = minimize_lbfgs(y, rosenbrock, {.gtol = 1e-8});
  EXPECT_TRUE(r.converged()) << to_string(r.stop);
  EXPECT_NEAR(y[0], 1.0, 1e-5);
  EXPECT_NEAR(y[1], 1.0, 1e-5);
}

TEST(Lbfgs, StopsAtTheIterationLimitOnTheStopFlagAndRefusesANonFiniteStart) {
  const auto bowl = [](std::span<const double> x, std::span<double> g) {
    g[0] = 2 * x[0];
    g[1] = 4 * std::pow(x[1], 3);
    return x[0] * x[0] + std::pow(x[1], 4);  // quartic in x1: slow
  };
  std::vector<double> x{3, 3};
  EXPECT_EQ(minimize_lbfgs(x, bowl, {.max_iterations = 2, .gtol = 0}).stop, LbfgsStop::iterations);
  std::atomic<bool> stop{true};
  x = {3, 3};
  const LbfgsResult r = minimize_lbfgs(x, bowl, {.stop = &stop});
  EXPECT_EQ(r.stop, LbfgsStop::stopped);
  EXPECT_EQ(r.iterations, 0);
  EXPECT_HAS(testing::error_of([] {
               std::vector<double> v{1};
               minimize_lbfgs(v, [](std::span<const double>, std::span<double>) { return NAN; });
             }),
             "at the start");
}

// --- logistic regression -------------------------------------------------------------------

// Float64 gradient of scikit-learn's objective divided by C N, at the head's weights.
Vec objective_gradient(const DenseHead& head, const InMemorySource& src, double c) {
  const HeadConfig& cfg = head.config();
  const int n = static_cast<int>(src.rows()), classes = cfg.classes, f = head.features();
  const Vec rows = ref::to_double(src.data());
  const auto params = ref::params_of(head);
  const Vec logits = ref::head_logits(cfg, params, rows, n, {}, head.standardization());
  const Vec p = ref::softmax(logits, classes);
  Vec g(static_cast<size_t>(f) * classes + classes, 0.0);
  const size_t rs = src.row_size();
  for (int i = 0; i < n; ++i) {
    Vec x = ref::pool(cfg.pool, rows.data() + i * rs, cfg.input.h, cfg.input.w, cfg.input.c);
    const auto& z = head.standardization();
    for (int j = 0; j < f && !z.empty(); ++j) x[j] = (x[j] - z.mean[j]) / z.std[j];
    for (int k = 0; k < classes; ++k) {
      const double d = (p[i * classes + k] - (src.label(i) == k)) / n;
      for (int j = 0; j < f; ++j) g[j * classes + k] += d * x[j];
      g[static_cast<size_t>(f) * classes + k] += d;
    }
  }
  for (size_t j = 0; j < static_cast<size_t>(f) * classes; ++j) g[j] += params[0][j] / (c * n);
  return g;
}

TEST(Logreg, FitReachesTheFloat64OptimumOfScikitLearnsObjective) {
  const Shape shape{0, 1, 2, 4};
  auto train = ref::blobs(300, 4, shape, 21, 1.0, 2.0);  // overlapping: a finite optimum
  for (const Pool pool : {Pool::none, Pool::avg}) {
    DenseHead head({.kind = HeadKind::linear, .pool = pool, .classes = 4, .input = shape}, 0);
    head.set_standardization(input_statistics(head, train));
    const LogregResult r = fit_logreg(head, train, nullptr, {.cs = {0.5}});
    ASSERT_EQ(r.path.size(), 1u);
    EXPECT_TRUE(r.path[0].stop == LbfgsStop::gradient || r.path[0].stop == LbfgsStop::function)
        << to_string(r.path[0].stop);
    const Vec g = objective_gradient(head, train, 0.5);
    double worst = 0;
    for (double v : g) worst = std::max(worst, std::abs(v));
    // tolerance 1e-4 plus the float rounding of the weights and of the gradient's products
    EXPECT_LT(worst, 3e-4) << to_string(pool);
  }
}

TEST(Logreg, ChoosesCOnValidationRefitsOnAllRowsAndIsDeterministic) {
  const Shape shape{0, 1, 1, 6};
  auto train = ref::blobs(400, 3, shape, 31, 1.0, 2.5);
  auto val = ref::blobs(200, 3, shape, 32, 1.0, 2.5);
  auto fit = [&](std::uint64_t limit) {
    DenseHead head({.kind = HeadKind::linear, .classes = 3, .input = shape}, 0);
    head.set_standardization(input_statistics(head, train));
    const LogregResult r =
        fit_logreg(head, train, &val, {.memory_limit = limit, .batch = 64, .refit = true});
    return std::pair{r, head.weights()};
  };
  const auto [r, w] = fit(0);
  ASSERT_GE(r.path.size(), 4u);
  for (size_t k = 1; k < r.path.size(); ++k) EXPECT_GT(r.path[k].c, r.path[k - 1].c);
  double best = 0;
  for (const auto& p : r.path) best = std::max(best, p.val_accuracy);
  EXPECT_EQ(r.path[r.chosen].val_accuracy, best);
  EXPECT_EQ(r.c, r.path[r.chosen].c);
  EXPECT_TRUE(r.refitted);
  EXPECT_FALSE(r.refit.has_val);
  EXPECT_GT(r.path.back().c, r.c);  // the walk went past the best and stopped on patience
  EXPECT_LT(r.path.size(), default_c_grid().size());
  // Rows streamed from the source (a 1-byte memory limit) give the same bits.
  const auto [r2, w2] = fit(1);
  EXPECT_EQ(w, w2);
  EXPECT_EQ(r2.c, r.c);
}

TEST(Logreg, RefusesWhatItCannotFit) {
  const Shape shape{0, 1, 1, 2};
  auto src = ref::blobs(20, 2, shape, 1, 1.0, 1.0);
  DenseHead mlp({.kind = HeadKind::mlp, .classes = 2, .input = shape}, 0);
  EXPECT_HAS(testing::error_of([&] { fit_logreg(mlp, src, nullptr, {.cs = {1}}); }), "linear head");
  DenseHead head({.kind = HeadKind::linear, .classes = 2, .input = shape}, 0);
  EXPECT_HAS(testing::error_of([&] { fit_logreg(head, src, nullptr, {}); }),
             "chooses C on validation");
  EXPECT_HAS(testing::error_of([&] {
               fit_logreg(head, src, &src, {.cs = {1, 0.1}});
             }),
             "ascending");
  EXPECT_HAS(testing::error_of([&] { fit_logreg(head, src, &src, {.cs = {-1}}); }), "C grid");
  DenseHead wide({.kind = HeadKind::linear, .classes = 2, .input = {0, 1, 1, 3}}, 0);
  EXPECT_HAS(testing::error_of([&] { fit_logreg(wide, src, nullptr, {.cs = {1}}); }),
             "training features are [1, 1, 2]");
}

}  // namespace
}  // namespace tl
