// Images/s of one fine-tuning step of block5 + head (forward, backward, SGD update) on
// block4_pool tensors [N, side, side, 512] (side 14: 224x224 images), and of block5's forward
// alone.
//
//   bench_finetune_step [batch=32] [steps=10] [head=mlp|linear] [precision=f32|bf16] [side=14]
//                       [algo=auto|direct|winograd-tlkit]
//
// precision: the training convs' (block5's forward alone is always f32); algo: the f32
// forward's convolutions (tl::Block5).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "tl/block5.hpp"
#include "tl/dense_head.hpp"
#include "tl/finetune.hpp"
#include "tl/machine.hpp"
#include "tl/optimizer.hpp"
#include "tl/vgg16.hpp"
#include "tl/weights.hpp"

int main(int argc, char** argv) {
  const int batch = argc > 1 ? std::atoi(argv[1]) : 32;
  const int steps = argc > 2 ? std::atoi(argv[2]) : 10;
  const std::string kind = argc > 3 ? argv[3] : "mlp";
  const tl::Precision precision = tl::parse_precision(argc > 4 ? argv[4] : "f32");
  const int side = argc > 5 ? std::atoi(argv[5]) : 14;
  const tl::ConvAlgo algo = tl::parse_algo(argc > 6 ? argv[6] : "auto");
  const tl::Shape in{1, side, side, 512};
  tl::Block5 b5(tl::load_weights("random:1", tl::block5_layers()), in, precision, algo);
  tl::DenseHead head({.kind = tl::parse_head_kind(kind), .classes = 2, .input = b5.output_row()},
                     1);
  tl::FinetuneStep step(b5, head);
  const tl::OptimizerConfig sgd{
      .kind = tl::OptimizerKind::sgd, .learning_rate = 1e-4f, .momentum = 0.9f};
  tl::Optimizer opt_b5(sgd, b5.params()), opt_head(sgd, head.params());
  std::vector<float> x(static_cast<size_t>(batch) * b5.input_size());
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(0.f, 2.f);  // block4_pool values are >= 0 (ReLU'd)
  for (float& v : x) v = u(rng);
  std::vector<int> labels(batch);
  for (int i = 0; i < batch; ++i) labels[i] = i % 2;
  std::mt19937_64 dropout(1);
  using clock = std::chrono::steady_clock;
  auto train_step = [&] {
    step.train_step(x.data(), batch, labels, {}, dropout);
    opt_b5.step(b5.params());
    opt_head.step(head.params());
  };
  train_step();  // warm-up: primitives built, pages touched
  auto t0 = clock::now();
  for (int i = 0; i < steps; ++i) train_step();
  const double train_s = std::chrono::duration<double>(clock::now() - t0).count();
  std::vector<float> y(static_cast<size_t>(batch) * b5.output_size());
  b5.forward(x.data(), batch, y.data());
  t0 = clock::now();
  for (int i = 0; i < steps; ++i) b5.forward(x.data(), batch, y.data());
  const double fwd_s = std::chrono::duration<double>(clock::now() - t0).count();
  std::printf("%s\n%s", tl::machine().summary().c_str(), b5.describe().c_str());
  std::printf("batch %d of [%d, %d, 512], %s head, %d steps, %s training convs, %s f32 forward\n",
              batch, side, side, kind.c_str(), steps, std::string(tl::to_string(precision)).c_str(),
              std::string(tl::to_string(b5.forward_algo())).c_str());
  std::printf("fine-tuning step (fwd+bwd+sgd): %.2f img/s (%.1f ms/step)\n",
              steps * batch / train_s, 1e3 * train_s / steps);
  std::printf("block5 forward only:            %.2f img/s\n", steps * batch / fwd_s);
  return 0;
}
