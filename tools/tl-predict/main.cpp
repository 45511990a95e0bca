// tl-predict: a trained model applied to cached features or to new images.
#include <iostream>

#include <fmt/format.h>

#include "cli.hpp"
#include "tl/predict_run.hpp"

int main(int argc, char** argv) {
  const tl::cli::ToolInfo info{
      "tl-predict",
      "tl-predict --model MODEL.h5 (--features FILE.h5 | --images DIR [--weights FILE]) "
      "--output predictions.csv [options]",
      "Applies a model from tl-train to features or to images (extracted with the model's own "
      "layer, size and preprocessing). With labels, prints accuracy, per-class precision/"
      "recall/F1 and the confusion matrix.",
      "tl-predict --model model.h5 --images data/test --output predictions.csv --top-k 3"};
  return tl::cli::run(info, argc, argv, [&](tl::cli::Parser& p) {
    namespace po = tl::cli::po;
    tl::PredictRunConfig cfg;
    std::string model, features, images, output, metrics, plot;
    po::options_description in("Input");
    in.add_options()("model", po::value(&model)->value_name("MODEL.h5"), "a model from tl-train")(
        "features", po::value(&features)->value_name("FILE.h5"), "features from tl-extract")(
        "images", po::value(&images)->value_name("DIR"),
        "or an image folder (class sub-folders give labels)")(
        "force", po::bool_switch(&cfg.force), "accept features or weights other than the model's");
    tl::cli::add_weights(in, cfg.weights,
                         "VGG16 weights for --images (default: the model's random:SEED, else the "
                         "Keras cache); their SHA-256 must match the model's");
    tl::cli::add_batch(in, cfg.batch, "images per forward pass");
    tl::cli::add_threads(in, cfg.threads);
    po::options_description out("Output");
    out.add_options()("output", po::value(&output)->value_name("FILE.csv"),
                      "predictions: path,label,predicted,probability (+ top-k columns)")(
        "top-k", po::value(&cfg.top_k)->default_value(1)->value_name("N"),
        "also list the k most likely classes")("metrics-json",
                                               po::value(&metrics)->value_name("FILE"),
                                               "accuracy, per-class metrics, confusion matrix")(
        "plot", po::value(&plot)->value_name("FILE.png"),
        "confusion matrix picture (default: OUTPUT.confusion.png)")(
        "overwrite", po::bool_switch(&cfg.overwrite),
        "replace an output that holds another kind of file (never an input)")(
        "quiet", po::bool_switch(&cfg.quiet), "no progress");
    p.add(in);
    p.add(out);
    if (!p.parse()) return 0;
    cfg.model = model;
    cfg.features = features;
    cfg.images = images;
    cfg.output = output;
    cfg.metrics_json = metrics;
    cfg.plot = plot;
    cfg.threads = tl::cli::set_threads(cfg.threads);
    const std::atomic<bool>& stop = tl::cli::stop_on_signals();
    tl::PredictRunSummary s;
    try {
      s = tl::run_prediction(cfg, std::cerr, &stop);
    } catch (const tl::Error&) {
      if (!stop) throw;
      std::cerr << "tl-predict: interrupted, no predictions written\n";
      return tl::cli::kExitInterrupted;
    }
    std::cerr << fmt::format(
        "{} predictions -> {}{}\n", s.rows, s.csv.string(),
        s.failed ? fmt::format(" ({} images could not be read)", s.failed) : "");
    if (s.accuracy) std::cerr << fmt::format("accuracy: {:.4f}\n", *s.accuracy);
    if (!s.plot.empty()) std::cerr << "confusion matrix: " << s.plot.string() << "\n";
    if (!s.metrics_json.empty()) std::cerr << "metrics: " << s.metrics_json.string() << "\n";
    return stop ? tl::cli::kExitInterrupted : 0;
  });
}
