#include "tl/predict_run.hpp"

#include <unistd.h>

#include <optional>
#include <ostream>

#include <fmt/format.h>

#include "tl/block5.hpp"
#include "tl/error.hpp"
#include "tl/evaluate.hpp"
#include "tl/feature_file_source.hpp"
#include "tl/finetune.hpp"
#include "tl/image_list.hpp"
#include "tl/machine.hpp"
#include "tl/model_file.hpp"
#include "tl/output_file.hpp"
#include "tl/plots.hpp"
#include "tl/report.hpp"
#include "tl/train_run.hpp"
#include "tl/weights.hpp"

namespace fs = std::filesystem;

namespace tl {
namespace {

// Runs tl-extract's pipeline with the model's settings into a temporary feature file.
fs::path extract_for_model(const PredictRunConfig& cfg, const ModelInfo& m, std::ostream& log,
                           const std::atomic<bool>* stop) {
  ExtractConfig e;
  e.images = cfg.images;
  e.output = fs::path(cfg.output.string() + ".features.h5");
  // Refuses other weights before spending time on the extraction.
  e.weights = weights_for_model(m, cfg.weights, cfg.force);
  e.net.batch = cfg.batch;
  e.net.height = m.features.input_height;
  e.net.width = m.features.input_width;
  e.net.to = m.features.layer;
  e.net.precision = m.features.precision;
  // f32's algorithms agree within f32's bound of float64 (as ISAs do): this machine's
  // default, whichever ran for the model's features (docs/FORMAT.md).
  e.net.algo = machine().default_f32_algo();
  e.image.preprocess = m.features.preprocess;
  e.image.resize = m.features.resize;
  e.pool = m.features.pool;
  e.calibration_data = m.features.calibration;  // int8: the ranges the model's features used
  e.dtype = StorageType::f32;
  e.threads = cfg.threads;
  e.quiet = cfg.quiet;
  e.overwrite = true;
  log << fmt::format("extracting {} features of '{}' as the model was trained ({} {}x{}, {})\n",
                     m.features.layer, cfg.images.string(), to_string(m.features.preprocess),
                     m.features.input_height, m.features.input_width, to_string(m.features.resize));
  const ExtractSummary s = run_extract(e, log, stop);
  if (!s.complete) throw Error("extraction was interrupted: no predictions written");
  return e.output;
}

}  // namespace

PredictRunSummary run_prediction(const PredictRunConfig& cfg, std::ostream& log,
                                 const std::atomic<bool>* stop) {
  if (cfg.model.empty()) throw UsageError("--model: required");
  if (cfg.features.empty() == cfg.images.empty())
    throw UsageError("give either --features FILE.h5 or --images DIR");
  if (cfg.output.empty()) throw UsageError("--output: required (the predictions CSV)");
  // Before anything is read or written: no output may destroy an input or another output.
  check_outputs(
      {{"--model", cfg.model},
       {"--features", cfg.features},
       {"--weights", cfg.weights.rfind("random:", 0) == 0 ? "" : cfg.weights}},
      {{"--output", cfg.output, FileKind::text},
       {"--metrics-json", cfg.metrics_json, FileKind::text},
       {cfg.plot.empty() ? "--plot (default)" : "--plot",
        cfg.plot.empty() ? fs::path(cfg.output).replace_extension(".confusion.png") : cfg.plot,
        FileKind::image},
       {"(features of --images)",
        cfg.images.empty() ? fs::path() : fs::path(cfg.output.string() + ".features.h5"),
        FileKind::features}},
      cfg.overwrite);
  Model model = load_model(cfg.model);
  const auto& classes = model.info.classes;
  const int C = static_cast<int>(classes.size());
  if (cfg.top_k < 1 || cfg.top_k > C)
    throw UsageError(fmt::format("--top-k: {} (must be in 1..{} for this model)", cfg.top_k, C));

  fs::path features = cfg.features;
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      if (!p.empty()) fs::remove(p, ec);
    }
  } cleanup;
  if (!cfg.images.empty()) {
    // Before extracting anything: class folders the model does not know are refused, a
    // subset of its classes is fine (issue 15, item 23).
    model_class_indices(list_images(cfg.images).classes, classes,
                        fmt::format("--images '{}': class folders", cfg.images.string()));
    // Refused before any file is written: a precision this CPU has no native kernel for.
    machine().require(model.info.features.precision, ConvAlgo::direct,
                      fmt::format("--images: the model '{}' was trained on features of "
                                  "--precision",
                                  cfg.model.string()));
    features = cleanup.p = extract_for_model(cfg, model.info, log, stop);
  }
  FeatureFileSource src({features}, cfg.memory_limit ? cfg.memory_limit : default_memory_limit());
  // Features from images were made here, with the model's settings; the weights still count.
  check_features_fit(model.info, src.meta(), cfg.images.empty() ? features : cfg.images, cfg.force);

  // An augmented file (tl-extract --augment) is predicted on its images: the original rows.
  const std::vector<size_t> rows = src.original_rows();
  std::optional<SubsetSource> originals;
  if (src.has_augmented_rows()) {
    originals.emplace(src, rows);
    log << fmt::format("predicting the {} original rows of '{}' ({} augmented copies left out)\n",
                       rows.size(), features.string(), src.rows() - rows.size());
  }
  FeatureSource& input = originals ? static_cast<FeatureSource&>(*originals) : src;
  std::vector<float> probs;
  if (!model.block5.empty()) {  // fine-tuned: block4_pool rows -> the model's block5 -> head
    Vgg16Weights w;
    w.convs = model.block5;
    w.source = cfg.model.string();
    Block5 block5(w, src.row_shape());
    Block5Source block5_rows(input, block5, cfg.batch);
    probs = predict(model.head, block5_rows);
  } else {
    probs = predict(model.head, input);
  }
  const std::vector<int> pred = argmax_rows(probs, C);
  PredictRunSummary s{.rows = rows.size(), .csv = cfg.output};
  s.failed = FeatureReader(features).failed().size();

  std::string csv = "path,label,predicted,probability";
  for (int k = 2; k <= cfg.top_k; ++k) csv += fmt::format(",top{0},top{0}_probability", k);
  csv += "\n";
  if (stop && stop->load())  // interrupted: nothing written (exit 130 says so)
    throw Error("interrupted: no predictions written");
  std::vector<int> labels;  // of the rows predicted, as the model's class indices
  const auto& fclasses = src.classes();
  const std::vector<int> to_model = model_class_indices(fclasses, classes, "the file's classes");
  for (size_t r : rows) {
    const int label = src.labels()[r];
    if (label < -1 || label >= static_cast<int>(fclasses.size()))  // issue 15, item 20
      throw Error(
          fmt::format("'{}': row {} ('{}') has label {}, but the file has {} classes "
                      "(labels -1 .. {}): the file is damaged",
                      features.string(), r, src.paths()[r], label, fclasses.size(),
                      static_cast<int>(fclasses.size()) - 1));
    labels.push_back(label < 0 ? -1 : to_model[static_cast<std::size_t>(label)]);
  }
  for (size_t r = 0; r < rows.size(); ++r) {
    const std::span<const float> row(&probs[r * C], C);
    const auto top = top_k(row, cfg.top_k);
    csv += fmt::format("{},{},{},{:.6f}", csv_field(src.paths()[rows[r]]),
                       labels[r] >= 0 ? csv_field(classes.at(labels[r])) : std::string(),
                       csv_field(classes[pred[r]]), row[pred[r]]);
    for (int k = 1; k < cfg.top_k; ++k)
      csv += fmt::format(",{},{:.6f}", csv_field(classes[top[k]]), row[top[k]]);
    csv += "\n";
  }
  write_file_atomically(cfg.output, csv);

  const bool labeled = rows.size() > 0 && src.all_labeled();
  if (labeled) {
    const ConfusionMatrix cm = confusion_matrix(labels, pred, C);
    const ClassificationReport rep = classification_report(cm);
    s.accuracy = rep.accuracy;
    print_report(log, cm, rep, classes);
    s.plot = cfg.plot.empty() ? fs::path(cfg.output).replace_extension(".confusion.png") : cfg.plot;
    plot_confusion_matrix(cm, classes, s.plot,
                          fmt::format("{} ({} images)",
                                      cfg.images.empty() ? features.filename().string()
                                                         : cfg.images.filename().string(),
                                      rows.size()));
    if (!cfg.metrics_json.empty()) {
      std::string j = metrics_json(cm, rep, classes);
      j.insert(1, fmt::format("\"rows\": {}, \"failed\": {}, \"model\": {},\n  ", rows.size(),
                              s.failed, json_string(cfg.model.string())));
      j += "\n";
      write_file_atomically(cfg.metrics_json, j);
      s.metrics_json = cfg.metrics_json;
    }
  } else if (!cfg.metrics_json.empty()) {
    write_file_atomically(
        cfg.metrics_json,
        fmt::format("{{\"rows\": {}, \"failed\": {}, \"model\": {}, \"accuracy\": null}}\n",
                    rows.size(), s.failed, json_string(cfg.model.string())));
    s.metrics_json = cfg.metrics_json;
  }
  return s;
}

}  // namespace tl
