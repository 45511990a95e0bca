// The dense head: parameters in Keras's layout, and per batch size one Plan of oneDNN layers
// and buffers, built on first use and reused (a short last batch gets its own Plan).
#include "tl/dense_head.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <numeric>
#include <optional>
#include <tuple>
#include <utility>

#include <fmt/format.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "tl/error.hpp"
#include "tl/evaluate.hpp"
#include "tl/feature_source.hpp"
#include "tl/head_layers.hpp"
#include "tl/layer_plan.hpp"
#include "tl/loss.hpp"
#include "tl/seeded_random.hpp"

namespace tl {

HeadKind parse_head_kind(std::string_view s) {
  if (s == "linear") return HeadKind::linear;
  if (s == "mlp") return HeadKind::mlp;
  throw UsageError(fmt::format("unknown head '{}' (accepted: linear, mlp)", s));
}

std::string_view to_string(HeadKind k) {
  return k == HeadKind::mlp ? "mlp" : "linear";
}

void validate(const HeadConfig& c) {
  if (c.classes < 2) throw UsageError(fmt::format("head: {} classes (need at least 2)", c.classes));
  if (c.input.h < 1 || c.input.w < 1 || c.input.c < 1)
    throw UsageError(fmt::format("head: input row shape [{}, {}, {}] (every side must be >= 1)",
                                 c.input.h, c.input.w, c.input.c));
  if (pooled_size(c.pool, c.input.h, c.input.w, c.input.c) > INT_MAX ||
      c.input.per_image() > INT_MAX)
    throw UsageError(fmt::format("head: input row shape [{}, {}, {}] too large", c.input.h,
                                 c.input.w, c.input.c));
  if (c.kind == HeadKind::mlp) {
    if (c.hidden < 1)
      throw UsageError(fmt::format("head: hidden size {} (must be >= 1)", c.hidden));
    if (!(c.dropout >= 0.f && c.dropout < 1.f))
      throw UsageError(fmt::format("head: dropout {} not in [0, 1)", c.dropout));
  }
}

namespace {

// Everything one batch size needs: the layers (their primitives) and the activations.
// Never moved once built (the layers point at its scratchpad). `input_grad`: training that
// also returns the gradient of the head's input (fine-tuning).
struct Plan {
  Plan(const HeadConfig& cfg, int features, bool own_x, int n, Pass pass, bool input_grad)
      : n(n), pass(pass) {
    const bool mlp = cfg.kind == HeadKind::mlp;
    const int in2 = mlp ? cfg.hidden : features;
    const size_t f = sizeof(float);
    if (own_x) x.reserve(f * n * features);
    if (input_grad && cfg.pool != Pool::none) dx.reserve(f * n * features);
    if (mlp) {
      // {N, features} -> {N, hidden}; a constant input needs no diff_src
      fc1.emplace(n, features, cfg.hidden, pass, scratch, /*diff_src=*/input_grad);
      relu.emplace(n, cfg.hidden, pass, scratch);  // {N, hidden} -> {N, hidden}
      h1.reserve(f * n * cfg.hidden);
      a1.reserve(f * n * cfg.hidden);
      if (pass == Pass::training) {
        mask.reserve(f * n * cfg.hidden);
        d1.reserve(f * n * cfg.hidden);
        dd1.reserve(f * n * cfg.hidden);
        dh1.reserve(f * n * cfg.hidden);
      }
    }
    // {N, in2} -> {N, C}
    out.emplace(n, in2, cfg.classes, pass, scratch, /*diff_src=*/mlp || input_grad);
    softmax.emplace(n, cfg.classes, scratch);  // {N, C} -> {N, C}
    logits.reserve(f * n * cfg.classes);
    probs.reserve(f * n * cfg.classes);
    if (pass == Pass::training) dlogits.reserve(f * n * cfg.classes);
  }

  int n;
  Pass pass;
  Scratchpad scratch;
  std::optional<DenseLayer> fc1, out;
  std::optional<ReluLayer> relu;
  std::optional<SoftmaxLayer> softmax;
  // x: pooled, standardized input; h1 = fc1(x); a1 = relu(h1); d1 = dropout(a1); logits;
  // probs. dd1 = d loss / d d1 (then / d a1 in place); dh1 = d loss / d h1; dx = d loss / d x.
  AlignedBuffer x, h1, a1, mask, d1, logits, probs, dlogits, dd1, dh1, dx;
};

// Plans kept at once: the training batch, its short last batch, the evaluation batch and its
// short last batch make four; beyond this many the cache is emptied and rebuilt on demand.
constexpr size_t kMaxPlans = 8;

}  // namespace

struct DenseHead::Impl {
  HeadConfig cfg;
  int features = 0;
  size_t row_size = 0;
  std::vector<Param> params;
  int k1 = -1, b1 = -1, k2 = -1, b2 = -1;  // indices into params (k1, b1: mlp only)
  Standardization standardization;
  PlanCache<std::tuple<int, Pass, bool>, Plan> plans{kMaxPlans};

  // The input is copied when it is pooled or standardized; flatten alone reads the rows.
  bool own_x() const { return cfg.pool != Pool::none || !standardization.empty(); }

  Plan& plan(int n, Pass pass, bool input_grad = false) {
    return plans.get({n, pass, input_grad}, [&] {
      return std::make_unique<Plan>(cfg, features, own_x(), n, pass, input_grad);
    });
  }

  void check_n(int n, std::span<const int> labels, bool need_labels) const {
    if (n < 1) throw Error(fmt::format("head: batch of {} rows", n));
    if (need_labels && labels.size() != static_cast<size_t>(n))
      throw Error(fmt::format("head: {} labels for {} rows", labels.size(), n));
  }

  // Stored rows -> head input: the rows themselves for flatten alone, else prepared in p.x.
  const float* input(Plan& p, const float* rows, int n, const DenseHead& head) {
    if (!own_x()) return rows;
    head.prepare(rows, n, p.x.floats());
    return p.x.floats();
  }

  // Forward through every layer; writes probabilities to `probs`. Returns the input of the
  // output layer (needed by its backward). Dropout only when dropout_rng is given.
  const float* forward(Plan& p, const float* x, float* probs, std::mt19937_64* dropout_rng) {
    const float* src = x;
    if (cfg.kind == HeadKind::mlp) {
      p.fc1->forward(x, params[k1].value.data(), params[b1].value.data(), p.h1.floats());
      p.relu->forward(p.h1.floats(), p.a1.floats());
      src = p.a1.floats();
      if (dropout_rng && cfg.dropout > 0.f) {  // {N, hidden} -> {N, hidden}
        const std::span<float> mask(p.mask.floats(), static_cast<size_t>(p.n) * cfg.hidden);
        dropout_mask(*dropout_rng, cfg.dropout, mask);
        apply_mask(p.a1.floats(), mask, p.d1.floats());
        src = p.d1.floats();
      }
    }
    p.out->forward(src, params[k2].value.data(), params[b2].value.data(), p.logits.floats());
    p.softmax->forward(p.logits.floats(), probs);
    return src;
  }

  // Hits against `labels` and the range of predicted classes, into r.
  // Hits against `labels`, the range of predicted classes and how far the logits {n, C} vary
  // over the rows, into r.
  void score(const float* probs, const float* logits, int n, std::span<const int> labels,
             BatchResult& r) const {
    const int c = cfg.classes;
    r.correct = 0;
    r.min_class = c, r.max_class = -1;
    r.logit_spread = 0;
    for (int k = 0; k < c; ++k) {
      float lo = logits[k], hi = logits[k];
      for (int i = 1; i < n; ++i)
        lo = std::min(lo, logits[i * c + k]), hi = std::max(hi, logits[i * c + k]);
      r.logit_spread = std::max(r.logit_spread, static_cast<double>(hi) - lo);
    }
    for (int i = 0; i < n; ++i) {
      const int k = argmax({probs + static_cast<size_t>(i) * c, static_cast<size_t>(c)});
      r.correct += k == labels[i];
      r.min_class = std::min(r.min_class, k);
      r.max_class = std::max(r.max_class, k);
    }
  }
};

namespace {

Param make_param(std::string name, std::vector<int> shape, bool kernel) {
  size_t size = 1;
  for (int d : shape) size *= d;
  return {std::move(name), std::move(shape), std::vector<float>(size, 0.f),
          std::vector<float>(size, 0.f), kernel};
}

// Keras's glorot_uniform: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)).
void glorot_uniform(Param& p, std::mt19937_64& rng) {
  const double limit = std::sqrt(6.0 / (p.shape[0] + p.shape[1]));
  for (float& v : p.value) v = static_cast<float>((2.0 * uniform01(rng) - 1.0) * limit);
}

}  // namespace

DenseHead::DenseHead(const HeadConfig& cfg, std::uint64_t seed) : impl_(std::make_unique<Impl>()) {
  validate(cfg);
  Impl& m = *impl_;
  m.cfg = cfg;
  m.features = static_cast<int>(pooled_size(cfg.pool, cfg.input.h, cfg.input.w, cfg.input.c));
  m.row_size = static_cast<size_t>(cfg.input.per_image());
  std::mt19937_64 rng(derive_seed(seed, SeedStream::init));
  int in = m.features;
  if (cfg.kind == HeadKind::mlp) {
    m.k1 = 0, m.b1 = 1;
    m.params.push_back(make_param("fc1/kernel", {in, cfg.hidden}, true));
    m.params.push_back(make_param("fc1/bias", {cfg.hidden}, false));
    glorot_uniform(m.params[m.k1], rng);
    in = cfg.hidden;
  }
  m.k2 = static_cast<int>(m.params.size()), m.b2 = m.k2 + 1;
  m.params.push_back(make_param("predictions/kernel", {in, cfg.classes}, true));
  m.params.push_back(make_param("predictions/bias", {cfg.classes}, false));
  glorot_uniform(m.params[m.k2], rng);
}

DenseHead::~DenseHead() = default;
DenseHead::DenseHead(DenseHead&&) noexcept = default;
DenseHead& DenseHead::operator=(DenseHead&&) noexcept = default;

const HeadConfig& DenseHead::config() const {
  return impl_->cfg;
}
size_t DenseHead::row_size() const {
  return impl_->row_size;
}
int DenseHead::features() const {
  return impl_->features;
}
std::vector<Param>& DenseHead::params() {
  return impl_->params;
}
const std::vector<Param>& DenseHead::params() const {
  return impl_->params;
}

std::vector<std::vector<float>> DenseHead::weights() const {
  std::vector<std::vector<float>> w;
  for (const auto& p : impl_->params) w.push_back(p.value);
  return w;
}

void DenseHead::set_weights(const std::vector<std::vector<float>>& w) {
  auto& ps = impl_->params;
  if (w.size() != ps.size())
    throw Error(fmt::format("head: {} weight tensors given, the head has {}", w.size(), ps.size()));
  for (size_t i = 0; i < ps.size(); ++i)
    if (w[i].size() != ps[i].value.size())
      throw Error(fmt::format("head: {} has {} values, {} given", ps[i].name, ps[i].value.size(),
                              w[i].size()));
  for (size_t i = 0; i < ps.size(); ++i)  // copy into place: oneDNN reads these buffers
    std::copy(w[i].begin(), w[i].end(), ps[i].value.begin());
}

void DenseHead::set_standardization(Standardization s) {
  Impl& m = *impl_;
  if (!s.empty()) {
    if (s.mean.size() != static_cast<size_t>(m.features) || s.std.size() != s.mean.size())
      throw Error(
          fmt::format("head: standardisation of {} mean(s) and {} std(s), the head has {} "
                      "input features",
                      s.mean.size(), s.std.size(), m.features));
    for (size_t j = 0; j < s.mean.size(); ++j)
      if (!std::isfinite(s.mean[j]) || !std::isfinite(s.std[j]) || !(s.std[j] > 0.f))
        throw Error(
            fmt::format("head: standardisation of feature {}: mean {} std {} (need finite, "
                        "std > 0)",
                        j, s.mean[j], s.std[j]));
  }
  m.standardization = std::move(s);
  m.plans.clear();  // whether the input is copied changed
}

const Standardization& DenseHead::standardization() const {
  return impl_->standardization;
}

void DenseHead::prepare(const float* rows, int n, float* x) const {
  pool(rows, n, x);
  if (!impl_->standardization.empty()) standardize(impl_->standardization, x, n);
}

void DenseHead::pool(const float* rows, int n, float* x) const {
  const HeadConfig& c = impl_->cfg;
  const size_t rs = impl_->row_size, f = impl_->features;
  const int grain =
      static_cast<int>(std::max<size_t>(1, kParallelGrainBytes / (rs * sizeof(float))));
  tbb::parallel_for(tbb::blocked_range<int>(0, n, grain), [&](const tbb::blocked_range<int>& r) {
    for (int i = r.begin(); i != r.end(); ++i)  // [h, w, c] -> [features], row by row
      global_pool(c.pool, rows + i * rs, c.input.h, c.input.w, c.input.c, x + i * f);
  });
}

void DenseHead::predict(const float* rows, int n, float* probs) {
  Impl& m = *impl_;
  m.check_n(n, {}, false);
  Plan& p = m.plan(n, Pass::inference);
  m.forward(p, m.input(p, rows, n, *this), probs, nullptr);
}

BatchResult DenseHead::evaluate(const float* rows, int n, std::span<const int> labels,
                                float* probs) {
  Impl& m = *impl_;
  m.check_n(n, labels, true);
  Plan& p = m.plan(n, Pass::inference);
  float* out = probs ? probs : p.probs.floats();
  m.forward(p, m.input(p, rows, n, *this), out, nullptr);
  BatchResult r;
  r.loss = softmax_cross_entropy(p.logits.floats(), out, labels, {}, m.cfg.classes, nullptr);
  m.score(out, p.logits.floats(), n, labels, r);
  return r;
}

BatchResult DenseHead::train_step(const float* rows, int n, std::span<const int> labels,
                                  std::span<const float> sample_weights,
                                  std::mt19937_64& dropout_rng, float* d_rows) {
  Impl& m = *impl_;
  m.check_n(n, labels, true);
  Plan& p = m.plan(n, Pass::training, d_rows != nullptr);
  auto& ps = m.params;
  const HeadConfig& c = m.cfg;
  const float* x = m.input(p, rows, n, *this);
  const float* src2 = m.forward(p, x, p.probs.floats(), &dropout_rng);

  BatchResult r;
  // {N, C} logits, probs -> loss, {N, C} d loss / d logits
  r.loss = softmax_cross_entropy(p.logits.floats(), p.probs.floats(), labels, sample_weights,
                                 c.classes, p.dlogits.floats());
  m.score(p.probs.floats(), p.logits.floats(), n, labels, r);

  // d loss / d x, {N, features}: straight into d_rows unless a pool sits in between.
  float* dx = !d_rows ? nullptr : c.pool == Pool::none ? d_rows : p.dx.floats();
  if (c.kind == HeadKind::linear) {  // {N, C} -> {N, features}, kernel [features, C], bias [C]
    p.out->backward(x, ps[m.k2].value.data(), p.dlogits.floats(), dx, ps[m.k2].grad.data(),
                    ps[m.b2].grad.data());
  } else {
    // {N, C} -> {N, hidden} and kernel [hidden, C], bias [C]
    p.out->backward(src2, ps[m.k2].value.data(), p.dlogits.floats(), p.dd1.floats(),
                    ps[m.k2].grad.data(), ps[m.b2].grad.data());
    if (c.dropout > 0.f)  // {N, hidden} -> {N, hidden}: same mask
      apply_mask(p.dd1.floats(), {p.mask.floats(), static_cast<size_t>(n) * c.hidden},
                 p.dd1.floats());
    p.relu->backward(p.h1.floats(), p.dd1.floats(), p.dh1.floats());  // {N, hidden} -> same
    // {N, hidden} -> {N, features}, kernel [features, hidden], bias [hidden]
    p.fc1->backward(x, ps[m.k1].value.data(), p.dh1.floats(), dx, ps[m.k1].grad.data(),
                    ps[m.b1].grad.data());
  }
  if (!d_rows) return r;
  if (!m.standardization.empty()) standardize_backward(m.standardization, dx, n);
  if (c.pool != Pool::none) {  // {N, c} -> {N, h, w, c}
    const size_t rs = m.row_size, f = m.features;
    for (int i = 0; i < n; ++i)
      global_pool_backward(c.pool, rows + i * rs, c.input.h, c.input.w, c.input.c, dx + i * f,
                           d_rows + i * rs);
  }
  return r;
}

std::string DenseHead::describe() const {
  std::string s;
  for (const auto& [key, p] : impl_->plans) {
    s += fmt::format("batch {} ({}):\n", std::get<0>(key),
                     std::get<1>(key) == Pass::training ? "training" : "inference");
    if (p->fc1) s += "  " + p->fc1->describe() + "\n  " + p->relu->describe() + "\n";
    s += "  " + p->out->describe() + "\n  " + p->softmax->describe() + "\n";
  }
  return s;
}

Standardization input_statistics(const DenseHead& head, FeatureSource& src, int batch) {
  return input_statistics(head, std::vector<FeatureSource*>{&src}, batch);
}

Standardization input_statistics(const DenseHead& head, const std::vector<FeatureSource*>& srcs,
                                 int batch) {
  if (batch < 1) throw UsageError(fmt::format("batch size {} (must be >= 1)", batch));
  FeatureMoments moments(head.features());
  std::vector<float> x;
  for (FeatureSource* src : srcs) {
    check_source(head, *src, "standardisation");
    for_each_batch(*src, batch, [&](size_t, int n, const float* rows) {
      x.resize(static_cast<size_t>(n) * head.features());
      head.pool(rows, n, x.data());  // {n, h, w, c} -> {n, features}
      moments.add(x.data(), n);
      return true;
    });
  }
  return moments.result();
}

}  // namespace tl
