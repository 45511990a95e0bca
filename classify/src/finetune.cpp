// Fine-tuning block5 + head on block4_pool features (see finetune.hpp).
#include "tl/finetune.hpp"

#include <algorithm>
#include <chrono>
#include <limits>
#include <numeric>
#include <optional>

#include <fmt/format.h>

#include "tl/error.hpp"
#include "tl/evaluate.hpp"
#include "tl/layer_plan.hpp"
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

struct FinetuneStep::Impl {
  Block5* block5;
  DenseHead* head;
  int n = 0;
  AlignedBuffer y, dy;       // block5's output {n, h/2, w/2, 512} and its gradient
  bool zero_output = false;  // the last step's block5 output was all zero
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
  const size_t out = static_cast<size_t>(n) * m.block5->output_size();
  m.y.reserve(out * sizeof(float));
  m.dy.reserve(out * sizeof(float));
  m.block5->train_forward(rows, n, m.y.floats());  // {N, h, w, 512} -> {N, h/2, w/2, 512}
  m.zero_output = std::all_of(m.y.floats(), m.y.floats() + out, [](float v) { return v == 0.f; });
  // The head's step, with the gradient of its input: {N, h/2, w/2, 512} -> d loss / d y
  const BatchResult r =
      m.head->train_step(m.y.floats(), n, labels, sample_weights, dropout_rng, m.dy.floats());
  m.block5->backward(rows, n, m.dy.floats());  // d loss / d y -> block5's grads
  return r;
}

bool FinetuneStep::block5_output_is_zero() const {
  return impl_->zero_output;
}

// --- the loop -------------------------------------------------------------------------------

namespace {

// Block5 + head for tl::fit: both param groups, validation through block5.
class Block5Trainable : public Trainable {
 public:
  Block5Trainable(Block5& block5, DenseHead& head, int batch)
      : block5_(&block5), head_(&head), step_(block5, head), batch_(batch) {}
  Shape input_row() const override { return block5_->input_row(); }
  int classes() const override { return head_->config().classes; }
  std::vector<std::vector<Param>*> param_groups() override {
    return {&block5_->params(), &head_->params()};
  }
  BatchResult train_step(const float* rows, int n, std::span<const int> labels,
                         std::span<const float> w, std::mt19937_64& rng) override {
    return step_.train_step(rows, n, labels, w, rng);
  }
  Evaluation evaluate(FeatureSource& src, int batch, const std::atomic<bool>* stop) override {
    Block5Source out(src, *block5_, batch_);  // block4_pool -> block5_pool rows, on read
    return tl::evaluate(*head_, out, batch, nullptr, stop);
  }
  std::string collapse() const override {
    return step_.block5_output_is_zero()
               ? "the network collapsed: block5's outputs are all zero (dead ReLUs)"
               : "";
  }

 private:
  Block5* block5_;
  DenseHead* head_;
  FinetuneStep step_;
  int batch_;
};

}  // namespace

TrainResult finetune(Block5& block5, DenseHead& head, FeatureSource& train_src, FeatureSource* val,
                     const TrainOptions& opt, const TrainCallbacks& cb) {
  if (opt.batch < 1) throw UsageError(fmt::format("batch size {} (must be >= 1)", opt.batch));
  Block5Trainable model(block5, head, opt.batch);
  return fit(model, train_src, val, opt, cb);
}

}  // namespace tl
