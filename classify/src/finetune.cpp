// Fine-tuning block5 + head on block4_pool features (see finetune.hpp).
#include "tl/finetune.hpp"

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <numeric>
#include <optional>

#include <fmt/format.h>

#include "aligned_buffer.hpp"
#include "tl/error.hpp"
#include "tl/evaluate.hpp"
#include "tl/head_layers.hpp"
#include "tl/loss.hpp"
#include "tl/optimizer.hpp"
#include "tl/seeded_random.hpp"
#include "tl/vgg16.hpp"

namespace tl {

// --- sources --------------------------------------------------------------------------------

Block5Source::Block5Source(FeatureSource& base, Block5& block5, int batch)
    : base_(&base), block5_(&block5), batch_(batch) {
  const Shape a = base.row_shape(), b = block5.input_row();
  if (a.h != b.h || a.w != b.w || a.c != b.c)
    throw Error(fmt::format("block5 takes rows [{}, {}, {}], the features are [{}, {}, {}]", b.h,
                            b.w, b.c, a.h, a.w, a.c));
  if (batch < 1) throw UsageError(fmt::format("batch size {} (must be >= 1)", batch));
}

void Block5Source::read(std::span<const size_t> rows, float* out) {
  const size_t in = block5_->input_size(), os = block5_->output_size();
  in_.resize(std::min<size_t>(rows.size(), batch_) * in);
  for (size_t first = 0; first < rows.size(); first += batch_) {
    const size_t n = std::min<size_t>(batch_, rows.size() - first);
    base_->read(rows.subspan(first, n), in_.data());
    block5_->forward(in_.data(), static_cast<int>(n), out + first * os);
  }
}

InMemorySource block5_features(FeatureSource& src, const Vgg16Weights& weights, int batch) {
  const Shape in = src.row_shape();
  const size_t rows = src.rows();
  batch = static_cast<int>(std::clamp<size_t>(rows, 1, batch));
  Vgg16 net(weights, {.batch = batch,
                      .height = in.h,
                      .width = in.w,
                      .from = kFinetuneFeatureLayer,
                      .to = "block5_pool"});
  const Shape out = net.output_shape();
  std::vector<float> x(static_cast<size_t>(batch) * in.per_image());
  std::vector<float> data(rows * out.per_image());
  std::vector<size_t> idx(batch);
  for (size_t first = 0; first < rows; first += batch) {
    const size_t n = std::min<size_t>(batch, rows - first);
    std::iota(idx.begin(), idx.begin() + n, first);
    src.read({idx.data(), n}, x.data());
    // {n, h, w, 512} -> {n, h/2, w/2, 512}
    net.forward(x.data(), static_cast<int>(n), data.data() + first * out.per_image());
  }
  return InMemorySource({1, out.h, out.w, out.c}, std::move(data), labels_of(src));
}

// --- one step -------------------------------------------------------------------------------

namespace {

// The head's layers for one batch size, with the gradient of the head's input: as
// DenseHead's training plan, plus backward data of the first dense layer.
struct HeadPlan {
  HeadPlan(const HeadConfig& cfg, int features, int n, size_t block5_out) {
    const bool mlp = cfg.kind == HeadKind::mlp;
    const size_t f = sizeof(float);
    if (cfg.pool != Pool::flatten) x.reserve(f * n * features);
    dx.reserve(f * n * features);
    if (mlp) {
      fc1.emplace(n, features, cfg.hidden, Pass::training, scratch);  // {N, F} -> {N, hidden}
      relu.emplace(n, cfg.hidden, Pass::training, scratch);
      for (auto* b : {&h1, &a1, &mask, &d1, &dd1, &dh1}) b->reserve(f * n * cfg.hidden);
    }
    const int in2 = mlp ? cfg.hidden : features;
    out.emplace(n, in2, cfg.classes, Pass::training, scratch);  // {N, in2} -> {N, C}
    softmax.emplace(n, cfg.classes, scratch);
    for (auto* b : {&logits, &probs, &dlogits}) b->reserve(f * n * cfg.classes);
    y.reserve(f * n * block5_out);
    dy.reserve(f * n * block5_out);
  }
  Scratchpad scratch;
  std::optional<DenseLayer> fc1, out;
  std::optional<ReluLayer> relu;
  std::optional<SoftmaxLayer> softmax;
  // y: block5's output (the head's rows); x: pooled; dx: d loss / d x; dy: d loss / d y.
  detail::AlignedBuffer y, x, dx, dy, h1, a1, mask, d1, dd1, dh1, logits, probs, dlogits;
};

}  // namespace

struct FinetuneStep::Impl {
  Block5* block5;
  DenseHead* head;
  std::map<int, std::unique_ptr<HeadPlan>> plans;
  HeadPlan& plan(int n) {
    if (auto it = plans.find(n); it != plans.end()) return *it->second;
    if (plans.size() >= 4) plans.clear();
    return *plans
                .emplace(n, std::make_unique<HeadPlan>(head->config(), head->features(), n,
                                                       block5->output_size()))
                .first->second;
  }
};

FinetuneStep::FinetuneStep(Block5& block5, DenseHead& head) : impl_(std::make_unique<Impl>()) {
  const Shape a = block5.output_row(), b = head.config().input;
  if (a.h != b.h || a.w != b.w || a.c != b.c)
    throw Error(fmt::format("the head takes rows [{}, {}, {}], block5 gives [{}, {}, {}]", b.h, b.w,
                            b.c, a.h, a.w, a.c));
  impl_->block5 = &block5;
  impl_->head = &head;
}
FinetuneStep::~FinetuneStep() = default;
FinetuneStep::FinetuneStep(FinetuneStep&&) noexcept = default;
FinetuneStep& FinetuneStep::operator=(FinetuneStep&&) noexcept = default;

BatchResult FinetuneStep::train_step(const float* rows, int n, std::span<const int> labels,
                                     std::span<const float> sample_weights,
                                     std::mt19937_64& dropout_rng) {
  Impl& m = *impl_;
  if (n < 1 || labels.size() != static_cast<size_t>(n))
    throw Error(fmt::format("fine-tuning step: {} labels for {} rows", labels.size(), n));
  DenseHead& head = *m.head;
  const HeadConfig& cfg = head.config();
  auto& ps = head.params();
  const bool mlp = cfg.kind == HeadKind::mlp;
  const int k1 = 0, b1 = 1, k2 = mlp ? 2 : 0, b2 = k2 + 1;
  HeadPlan& p = m.plan(n);

  // {N, h, w, 512} -> {N, h/2, w/2, 512}
  m.block5->train_forward(rows, n, p.y.floats());
  const float* x = p.y.floats();
  if (cfg.pool != Pool::flatten) {  // {N, h/2, w/2, 512} -> {N, 512}
    head.prepare(p.y.floats(), n, p.x.floats());
    x = p.x.floats();
  }
  const float* src2 = x;
  if (mlp) {  // {N, F} -> {N, hidden}, ReLU, dropout
    p.fc1->forward(x, ps[k1].value.data(), ps[b1].value.data(), p.h1.floats());
    p.relu->forward(p.h1.floats(), p.a1.floats());
    src2 = p.a1.floats();
    if (cfg.dropout > 0.f) {
      const std::span<float> mask(p.mask.floats(), static_cast<size_t>(n) * cfg.hidden);
      dropout_mask(dropout_rng, cfg.dropout, mask);
      apply_mask(p.a1.floats(), mask, p.d1.floats());
      src2 = p.d1.floats();
    }
  }
  p.out->forward(src2, ps[k2].value.data(), ps[b2].value.data(), p.logits.floats());  // -> {N, C}
  p.softmax->forward(p.logits.floats(), p.probs.floats());
  BatchResult r;
  r.loss = softmax_cross_entropy(p.logits.floats(), p.probs.floats(), labels, sample_weights,
                                 cfg.classes, p.dlogits.floats());
  for (int i = 0; i < n; ++i)
    r.correct += argmax({p.probs.floats() + static_cast<size_t>(i) * cfg.classes,
                         static_cast<size_t>(cfg.classes)}) == labels[i];

  float* dx = cfg.pool == Pool::flatten ? p.dy.floats() : p.dx.floats();
  if (!mlp) {  // {N, C} -> {N, F}, kernel [F, C], bias [C]
    p.out->backward(x, ps[k2].value.data(), p.dlogits.floats(), dx, ps[k2].grad.data(),
                    ps[b2].grad.data());
  } else {
    p.out->backward(src2, ps[k2].value.data(), p.dlogits.floats(), p.dd1.floats(),
                    ps[k2].grad.data(), ps[b2].grad.data());
    if (cfg.dropout > 0.f)
      apply_mask(p.dd1.floats(), {p.mask.floats(), static_cast<size_t>(n) * cfg.hidden},
                 p.dd1.floats());
    p.relu->backward(p.h1.floats(), p.dd1.floats(), p.dh1.floats());
    p.fc1->backward(x, ps[k1].value.data(), p.dh1.floats(), dx, ps[k1].grad.data(),
                    ps[b1].grad.data());
  }
  if (cfg.pool != Pool::flatten) {  // {N, 512} -> {N, h/2, w/2, 512}
    const Shape o = m.block5->output_row();
    const size_t rs = m.block5->output_size(), f = head.features();
    for (int i = 0; i < n; ++i)
      global_pool_backward(cfg.pool, p.y.floats() + i * rs, o.h, o.w, o.c, dx + i * f,
                           p.dy.floats() + i * rs);
  }
  m.block5->backward(rows, n, p.dy.floats());  // {N, h/2, w/2, 512} -> block5's grads
  return r;
}

// --- the loop -------------------------------------------------------------------------------

TrainResult finetune(Block5& block5, DenseHead& head, FeatureSource& train_src, FeatureSource* val,
                     const TrainOptions& opt, const TrainCallbacks& cb) {
  if (opt.epochs < 1) throw UsageError(fmt::format("epochs {} (must be >= 1)", opt.epochs));
  if (opt.batch < 1) throw UsageError(fmt::format("batch size {} (must be >= 1)", opt.batch));
  if (opt.patience > 0 && !val) throw UsageError("early stopping (patience) needs validation data");
  FinetuneStep step(block5, head);
  std::unique_ptr<Block5Source> val_out;
  if (val) {
    val_out = std::make_unique<Block5Source>(*val, block5, opt.batch);
    if (val->rows() == 0) throw Error("no validation rows");
  }
  Block5Source check(train_src, block5);  // checks the row shape
  const size_t rows = train_src.rows();
  if (rows == 0) throw Error("no training rows");
  const int classes = head.config().classes;

  TrainResult res;
  const std::vector<int> labels = labels_of(train_src);
  res.class_weights = class_weights(labels, classes, opt.class_weighting);  // checks labels
  if (val) class_weights(labels_of(*val), classes, ClassWeighting::none);

  // One update rule for both (element-wise: two optimizers equal one over all params).
  Optimizer opt_block5(opt.optimizer, block5.params()), opt_head(opt.optimizer, head.params());
  std::mt19937_64 shuffle_rng(derive_seed(opt.seed, SeedStream::shuffle));
  std::mt19937_64 dropout_rng(derive_seed(opt.seed, SeedStream::dropout));
  std::vector<size_t> order(rows);
  std::iota(order.begin(), order.end(), size_t{0});
  const size_t batch = std::min<size_t>(opt.batch, rows);
  detail::AlignedBuffer batch_rows(batch * train_src.row_size() * sizeof(float));
  std::vector<int> batch_labels(batch);
  std::vector<float> batch_weights(batch);

  double best_val = std::numeric_limits<double>::infinity();
  std::vector<std::vector<float>> best_head, best_block5;
  int wait = 0;
  auto stopped = [&] { return opt.stop && opt.stop->load(); };
  using clock = std::chrono::steady_clock;
  for (int epoch = 1; epoch <= opt.epochs && !res.interrupted; ++epoch) {
    const auto t0 = clock::now();
    if (opt.shuffle) shuffle(shuffle_rng, std::span(order));
    double loss_sum = 0;
    size_t correct = 0, done = 0;
    for (size_t first = 0; first < rows; first += batch) {
      if (stopped()) {
        res.interrupted = true;
        break;
      }
      const int n = static_cast<int>(std::min(batch, rows - first));
      const std::span<const size_t> idx(order.data() + first, n);
      train_src.read(idx, batch_rows.floats());  // {n, h, w, 512}
      for (int i = 0; i < n; ++i) {
        batch_labels[i] = labels[idx[i]];
        batch_weights[i] = res.class_weights[batch_labels[i]];
      }
      const BatchResult r =
          step.train_step(batch_rows.floats(), n, {batch_labels.data(), static_cast<size_t>(n)},
                          {batch_weights.data(), static_cast<size_t>(n)}, dropout_rng);
      const double penalty = opt_block5.penalty(block5.params()) + opt_head.penalty(head.params());
      opt_block5.step(block5.params());
      opt_head.step(head.params());
      loss_sum += (r.loss + penalty) * n;
      correct += r.correct;
      done += n;
      if (cb.on_batch) cb.on_batch(epoch, done, rows);
    }
    if (res.interrupted) break;
    EpochRecord rec;
    rec.epoch = epoch;
    rec.loss = loss_sum / static_cast<double>(done);
    rec.accuracy = static_cast<double>(correct) / static_cast<double>(done);
    if (val) {
      const Evaluation e = evaluate(head, *val_out, opt.eval_batch, nullptr, opt.stop);
      if (stopped() && e.rows < val->rows()) {
        res.interrupted = true;
        break;
      }
      rec.has_val = true;
      rec.val_loss = e.loss;
      rec.val_accuracy = e.accuracy;
      if (rec.val_loss < best_val - opt.min_delta) {
        best_val = rec.val_loss;
        best_head = head.weights();
        best_block5.clear();
        for (const Param& q : block5.params()) best_block5.push_back(q.value);
        res.best_epoch = epoch;
        rec.best = true;
        wait = 0;
      } else {
        ++wait;
      }
    }
    rec.seconds = std::chrono::duration<double>(clock::now() - t0).count();
    res.history.push_back(rec);
    if (cb.on_epoch) cb.on_epoch(rec);
    if (opt.patience > 0 && wait >= opt.patience) {
      res.early_stopped = true;
      break;
    }
  }
  const int last = res.history.empty() ? 0 : res.history.back().epoch;
  const bool is_best = res.best_epoch == last && !res.interrupted;
  if (val && opt.restore_best && res.best_epoch > 0 && !is_best) {
    head.set_weights(best_head);
    auto& ps = block5.params();
    for (size_t k = 0; k < ps.size(); ++k)
      std::copy(best_block5[k].begin(), best_block5[k].end(), ps[k].value.begin());
    res.restored_best = true;
  }
  return res;
}

}  // namespace tl
