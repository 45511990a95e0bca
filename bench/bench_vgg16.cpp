// VGG16 benchmarks on the real layer shapes: the whole stack at 224x224 (f32 direct,
// f32 Winograd, tlkit's f32 Winograd, bf16, int8; batch 1 and 32), each conv layer alone
// (oneDNN's direct and Winograd, tlkit's Winograd F(4x4) and F(2x2)), tlkit's Winograd kernel
// transform, and the machine's FMA peak.
// Rates: images/s ("img/s") and GFLOP/s ("GFLOP/s"). Run:
//   build/bench/bench_vgg16 --benchmark_min_time=2 --benchmark_filter=Stack
#include <omp.h>

#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <random>
#include <vector>

#include "fma_peak.hpp"
#include "tl/int8_quantization.hpp"
#include "tl/vgg16.hpp"
#include "tl/weights.hpp"
#include "tl/winograd.hpp"

namespace {

const tl::Vgg16Weights& weights() {
  static const tl::Vgg16Weights w = tl::random_weights(1);
  return w;
}

std::vector<float> input(const tl::Shape& s) {
  std::vector<float> x(s.elems());
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-120.f, 150.f);
  for (auto& v : x) v = u(rng);
  return x;
}

void run(benchmark::State& state, tl::NetConfig cfg) {
  try {
    const auto x = input(tl::Vgg16::input_shape_of(cfg));
    if (cfg.precision == tl::Precision::int8)  // ranges measured on the benchmark's input
      cfg = tl::with_ranges_from(weights(), cfg, x.data(), cfg.batch);
    tl::Vgg16 net(weights(), cfg);
    std::vector<float> y(net.output_shape().elems());
    net.forward(x.data(), cfg.batch, y.data());  // warm-up
    for (auto _ : state) net.forward(x.data(), cfg.batch, y.data());
    const double images = static_cast<double>(state.iterations()) * cfg.batch;
    state.counters["img/s"] = benchmark::Counter(images, benchmark::Counter::kIsRate);
    state.counters["GFLOP/s"] =
        benchmark::Counter(images * 2 * net.macs_per_image() / 1e9, benchmark::Counter::kIsRate);
    state.SetLabel(net.describe().substr(0, net.describe().find('\n')));
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// Whole stack at 224x224: args = {precision, algo, batch}.
void Stack(benchmark::State& state) {
  run(state, {.batch = static_cast<int>(state.range(2)),
              .height = 224,
              .width = 224,
              .precision = static_cast<tl::Precision>(state.range(0)),
              .algo = static_cast<tl::ConvAlgo>(state.range(1))});
}
BENCHMARK(Stack)
    ->ArgNames({"prec", "algo", "batch"})
    ->Args({0, 0, 1})
    ->Args({0, 0, 32})  // f32 direct
    ->Args({0, 1, 1})
    ->Args({0, 1, 32})  // f32 winograd: oneDNN's where it has one, else tlkit's
    ->Args({0, 3, 1})
    ->Args({0, 3, 32})  // f32 winograd-tlkit
    ->Args({1, 0, 1})
    ->Args({1, 0, 32})  // bf16
    ->Args({2, 0, 1})
    ->Args({2, 0, 32})  // int8 (u8 activations, s8 weights)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime();

// One conv layer alone at its 224x224-input shape, batch 8: args = {layer index, precision,
// algo} (algo 1, f32 only: oneDNN's Winograd, where the CPU has it).
void Conv(benchmark::State& state) {
  const auto layers = tl::vgg16_layers();
  const int i = static_cast<int>(state.range(0));
  const auto s = i == 0 ? tl::Shape{8, 224, 224, 3}
                        : tl::infer_shapes({8, 224, 224, 3}, "input", layers[i - 1].name).back();
  run(state, {.batch = 8,
              .height = s.h,
              .width = s.w,
              .from = i == 0 ? "input" : std::string(layers[i - 1].name),
              .to = std::string(layers[i].name),
              .precision = static_cast<tl::Precision>(state.range(1)),
              .algo = static_cast<tl::ConvAlgo>(state.range(2))});
  state.SetLabel(std::string(layers[i].name));
}
void ConvArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"layer", "prec", "algo"});
  const auto layers = tl::vgg16_layers();
  for (const auto& [p, algo] : {std::pair{0, 0}, {0, 1}, {1, 0}, {2, 0}})
    for (int i = 0; i < static_cast<int>(layers.size()); ++i)
      if (layers[i].kind == tl::LayerKind::conv) b->Args({i, p, algo});
}
BENCHMARK(Conv)->Apply(ConvArgs)->Unit(benchmark::kMillisecond)->UseRealTime();

// tlkit's own Winograd (issue 19) on one conv layer at its 224x224-input shape, batch 8, next
// to Conv's f32 direct: args = {layer index, tile: 4 = F(4x4,3x3), 2 = F(2x2,3x3)}. GFLOP/s
// are direct-equivalent.
void WinogradLayer(benchmark::State& state) {
  const auto layers = tl::vgg16_layers();
  const int i = static_cast<int>(state.range(0));
  const tl::Shape s = tl::infer_shapes({8, 224, 224, 3}, "input", layers[i - 1].name).back();
  try {
    const tl::ConvWeights& w = weights().conv(layers[i].name);
    tl::WinogradConv conv(w, s,
                          state.range(1) == 2 ? tl::WinogradTile::f2x2 : tl::WinogradTile::f4x4);
    const auto x = input(s);
    std::vector<float> y(static_cast<std::size_t>(s.n) * s.h * s.w * w.cout);
    conv.forward(x.data(), s.n, y.data());  // warm-up
    for (auto _ : state) conv.forward(x.data(), s.n, y.data());
    const double images = static_cast<double>(state.iterations()) * s.n;
    state.counters["img/s"] = benchmark::Counter(images, benchmark::Counter::kIsRate);
    state.counters["GFLOP/s"] = benchmark::Counter(
        images * 2.0 * 9 * s.h * s.w * w.cin * w.cout / 1e9, benchmark::Counter::kIsRate);
    state.SetLabel(conv.describe());
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}
void WinogradArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"layer", "tile"});
  const auto layers = tl::vgg16_layers();
  for (const int tile : {4, 2})
    for (int i = 1; i < static_cast<int>(layers.size()); ++i)
      if (layers[i].kind == tl::LayerKind::conv) b->Args({i, tile});
}
BENCHMARK(WinogradLayer)->Apply(WinogradArgs)->Unit(benchmark::kMillisecond)->UseRealTime();

// tlkit's Winograd transforming a new kernel into a layer (fine-tuning's block5 does it at
// every forward): args = {layer index}.
void WinogradSetWeights(benchmark::State& state) {
  const auto layers = tl::vgg16_layers();
  const int i = static_cast<int>(state.range(0));
  const tl::Shape s = tl::infer_shapes({8, 224, 224, 3}, "input", layers[i - 1].name).back();
  try {
    const tl::ConvWeights& w = weights().conv(layers[i].name);
    tl::WinogradConv conv(w, s);
    for (auto _ : state) conv.set_weights(w.kernel.data(), w.bias.data());
    state.SetLabel(std::string(layers[i].name));
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}
BENCHMARK(WinogradSetWeights)->Arg(14)->Unit(benchmark::kMillisecond)->UseRealTime();

// The f32 FMA peak with all OpenMP threads: AVX2+FMA (arg 0) and AVX-512 (arg 1), each where
// the CPU has it (SkipWithError names the one it lacks).
void FmaPeak(benchmark::State& state) {
  const auto isa = state.range(0) == 1 ? tl::bench::FmaIsa::avx512 : tl::bench::FmaIsa::avx2;
  state.SetLabel(tl::bench::to_string(isa));
  if (!tl::bench::cpu_has(isa)) {
    state.SkipWithError((std::string("this CPU has no ") + tl::bench::to_string(isa)).c_str());
    for (auto _ : state) {
    }
    return;
  }
  double g = 0;
  for (auto _ : state) g = tl::bench::fma_peak_gflops(isa, omp_get_max_threads());
  state.counters["GFLOP/s"] = g;
  state.counters["threads"] = omp_get_max_threads();
}
BENCHMARK(FmaPeak)->Arg(0)->Arg(1)->Iterations(3)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
