// tl-forward: the bare VGG16 forward pass over a generated image batch, timed. The "bare
// forward" figure that tl-extract's end-to-end speed is compared against.
#include <chrono>
#include <cmath>
#include <iostream>
#include <vector>

#include <fmt/format.h>

#include "cli.hpp"
#include "tl/int8_quantization.hpp"
#include "tl/machine.hpp"
#include "tl/vgg16.hpp"
#include "tl/weights.hpp"

namespace {
// A smooth generated image batch (a colour gradient with rings) in the caffe range.
std::vector<float> generated_batch(const tl::Shape& in) {
  std::vector<float> x(in.elems());
  for (int n = 0; n < in.n; ++n)
    for (int i = 0; i < in.h; ++i)
      for (int j = 0; j < in.w; ++j)
        for (int c = 0; c < in.c; ++c)
          x[((static_cast<size_t>(n) * in.h + i) * in.w + j) * in.c + c] =
              static_cast<float>(127.0 * std::sin(0.05 * (i + 2 * j) + c + n) - 10.0 * c);
  return x;
}
}  // namespace

int main(int argc, char** argv) {
  const tl::cli::ToolInfo info{
      "tl-forward", "tl-forward [--batch N] [--iters N] [network options]",
      "Runs the VGG16 convolutional base on a generated image batch and prints the output "
      "shape and the speed (images/s, GFLOP/s).",
      "tl-forward --weights random:1 --size 224 --batch 16 --precision bf16"};
  return tl::cli::run(info, argc, argv, [&](tl::cli::Parser& p) {
    tl::cli::NetOptions net;
    int batch = 8, iters = 3;
    net.weights = "random:1";
    tl::cli::po::options_description g("Timing");
    tl::cli::add_batch(g, batch, "images per batch");
    g.add_options()("iters", tl::cli::po::value(&iters)->default_value(iters),
                    "timed batches (after one warm-up)");
    p.add(net.options());
    p.add(g);
    if (!p.parse()) return 0;
    if (iters < 1) throw tl::UsageError("--iters: must be at least 1");
    const int threads = tl::cli::set_threads(net.threads);
    const tl::NetConfig cfg = net.config(batch);
    std::cerr << net.choice(cfg);
    const tl::Vgg16Weights w = tl::load_weights(net.weights);
    std::cerr << "weights: " << w.describe() << "\n"
              << tl::machine().summary() << ", " << threads << " threads\n";
    const tl::Shape in = tl::Vgg16::input_shape_of(cfg);
    const std::vector<float> x = generated_batch(in);
    tl::Vgg16 vgg(w, cfg.precision == tl::Precision::int8  // ranges from the batch itself
                         ? tl::with_ranges_from(w, cfg, x.data(), batch)
                         : cfg);
    std::vector<float> y(vgg.output_shape().elems());

    vgg.forward(x.data(), batch, y.data());  // warm-up: first-touch and JIT
    const auto t0 = std::chrono::steady_clock::now();
    for (int k = 0; k < iters; ++k) vgg.forward(x.data(), batch, y.data());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double ips = static_cast<double>(batch) * iters / s;
    const tl::Shape o = vgg.output_shape();
    double sum = 0;
    for (float v : y) sum += v;
    std::cout << fmt::format(
        "VGG16 {} -> {}: input [{}, {}, {}, 3] -> output [{}, {}, {}, {}] ({}, {})\n"
        "{:.2f} images/s, {:.1f} GFLOP/s, {:.1f} ms per batch of {} (mean output {:.4g})\n",
        cfg.from, cfg.to, in.n, in.h, in.w, o.n, o.h, o.w, o.c, tl::to_string(cfg.precision),
        tl::to_string(vgg.algo_used()), ips, ips * 2 * vgg.macs_per_image() / 1e9, 1e3 * s / iters,
        batch, sum / y.size());
    return 0;
  });
}
