#include "tl/train_run.hpp"

#include <unistd.h>

#include <chrono>
#include <ostream>

#include <fmt/format.h>

#include "tl/error.hpp"
#include "tl/feature_file_source.hpp"
#include "tl/model_file.hpp"
#include "tl/plots.hpp"
#include "tl/report.hpp"

namespace fs = std::filesystem;

namespace tl {

std::uint64_t default_memory_limit() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), size = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && size > 0 ? static_cast<std::uint64_t>(pages) * size / 2 : 4ull << 30;
}

namespace {

std::map<std::string, std::string> training_record(const TrainRunConfig& c, const TrainResult& r,
                                                   bool in_memory) {
  const auto& o = c.options;
  std::map<std::string, std::string> t;
  std::vector<std::string> train, val;
  for (const auto& p : c.train) train.push_back(p.string());
  for (const auto& p : c.val) val.push_back(p.string());
  t["train_files"] = fmt::format("{}", fmt::join(train, "\n"));
  t["val_files"] = fmt::format("{}", fmt::join(val, "\n"));
  t["val_split"] = fmt::format("{}", c.val_split);
  t["optimizer"] = std::string(to_string(o.optimizer.kind));
  t["learning_rate"] = fmt::format("{}", o.optimizer.learning_rate);
  t["momentum"] = fmt::format("{}", o.optimizer.momentum);
  t["weight_decay"] = fmt::format("{}", o.optimizer.weight_decay);
  t["epochs"] = std::to_string(o.epochs);
  t["batch"] = std::to_string(o.batch);
  t["patience"] = std::to_string(o.patience);
  t["class_weight"] = std::string(to_string(o.class_weighting));
  t["seed"] = std::to_string(o.seed);
  t["epochs_run"] = std::to_string(r.history.size());
  t["best_epoch"] = std::to_string(r.best_epoch);
  t["early_stopped"] = std::to_string(static_cast<int>(r.early_stopped));
  t["interrupted"] = std::to_string(static_cast<int>(r.interrupted));
  t["data_mode"] = in_memory ? "in-memory" : "streamed";
  if (!r.history.empty()) {
    const auto& e = r.best_epoch > 0 ? r.history.at(r.best_epoch - 1) : r.history.back();
    t["loss"] = fmt::format("{}", e.loss);
    t["accuracy"] = fmt::format("{}", e.accuracy);
    if (e.has_val) {
      t["val_loss"] = fmt::format("{}", e.val_loss);
      t["val_accuracy"] = fmt::format("{}", e.val_accuracy);
    }
  }
  return t;
}

void require_labels(const FeatureFileSource& s, const char* what,
                    const std::vector<fs::path>& files) {
  if (s.rows() == 0) {
    std::vector<std::string> names;
    for (const auto& f : files) names.push_back(f.string());
    throw Error(fmt::format("{} features '{}' hold no rows", what, fmt::join(names, "', '")));
  }
  if (!s.all_labeled()) {
    for (size_t i = 0; i < s.rows(); ++i)
      if (s.labels()[i] < 0)
        throw Error(
            fmt::format("{} features have unlabeled rows (e.g. '{}'): extract from a folder "
                        "with one sub-folder per class",
                        what, s.paths()[i]));
  }
  if (s.classes().size() < 2)
    throw Error(fmt::format("{} features have {} class(es): training needs at least 2", what,
                            s.classes().size()));
}

}  // namespace

TrainRunSummary run_training(const TrainRunConfig& cfg, std::ostream& log,
                             const std::atomic<bool>* stop) {
  if (cfg.train.empty()) throw UsageError("--train: at least one feature file is required");
  if (cfg.output.empty()) throw UsageError("--output: required (the model file to write)");
  if (!cfg.val.empty() && cfg.val_split > 0)
    throw UsageError("--val and --val-split: give one or the other");
  if (cfg.val_split < 0 || cfg.val_split >= 1)
    throw UsageError(fmt::format("--val-split: {} (must be in [0, 1))", cfg.val_split));
  const auto t0 = std::chrono::steady_clock::now();
  const std::uint64_t limit = cfg.memory_limit ? cfg.memory_limit : default_memory_limit();

  FeatureFileSource all(cfg.train, limit);
  require_labels(all, "training", cfg.train);
  log << "train: " << all.describe() << "\n";
  if (!all.meta().weights_pretrained)
    log << "warning: these features come from random VGG16 weights (" << all.meta().weights
        << "), NOT pretrained\n";

  std::unique_ptr<FeatureFileSource> val_files;
  std::unique_ptr<SubsetSource> train_part, val_part;
  FeatureSource* train_src = &all;
  FeatureSource* val_src = nullptr;
  if (!cfg.val.empty()) {
    val_files = std::make_unique<FeatureFileSource>(cfg.val, limit);
    require_labels(*val_files, "validation", cfg.val);
    check_features_fit({.head = {}, .classes = all.classes(), .features = all.meta()},
                       val_files->meta(), cfg.val.front(), false);
    val_src = val_files.get();
    log << "validation: " << val_files->describe() << "\n";
  } else if (cfg.val_split > 0) {
    const Split split = stratified_split(all, cfg.val_split, cfg.options.seed);
    train_part = std::make_unique<SubsetSource>(all, split.train);
    val_part = std::make_unique<SubsetSource>(all, split.val);
    train_src = train_part.get();
    val_src = val_part.get();
    log << fmt::format("validation: {} rows held out of {} (stratified, seed {})\n",
                       split.val.size(), all.rows(), cfg.options.seed);
  }

  HeadConfig hc = cfg.head;
  hc.classes = static_cast<int>(all.classes().size());
  hc.input = row_shape_of(all.meta());
  DenseHead head(hc, cfg.options.seed);

  TrainOptions opt = cfg.options;
  opt.stop = stop;
  const int width = static_cast<int>(std::to_string(opt.epochs).size());
  TrainCallbacks cb;
  cb.on_epoch = [&](const EpochRecord& e) {
    if (cfg.quiet) return;
    std::string line = fmt::format("epoch {:>{}}/{}: loss {:.4f} accuracy {:.4f}", e.epoch, width,
                                   opt.epochs, e.loss, e.accuracy);
    if (e.has_val)
      line += fmt::format(" val_loss {:.4f} val_accuracy {:.4f}", e.val_loss, e.val_accuracy);
    log << line << fmt::format(" ({:.1f} s){}\n", e.seconds, e.best ? " *" : "") << std::flush;
  };
  const TrainResult r = train(head, *train_src, val_src, opt, cb);
  if (r.interrupted) log << "interrupted: saving the best model so far\n";
  if (r.early_stopped) log << fmt::format("early stop: best epoch {}\n", r.best_epoch);

  ModelInfo info{.head = hc,
                 .classes = all.classes(),
                 .features = all.meta(),
                 .training = training_record(cfg, r, all.in_memory())};
  save_model(cfg.output, info, head);

  TrainRunSummary s{.result = r, .model = cfg.output, .in_memory = all.in_memory()};
  if (!cfg.history_csv.empty()) write_history_csv(cfg.history_csv, r.history);
  s.plot = cfg.plot.empty() ? fs::path(cfg.output).replace_extension(".curves.png") : cfg.plot;
  if (!r.history.empty())
    plot_training_curves(r.history, s.plot,
                         fmt::format("{} head on {} ({} classes)", to_string(hc.kind),
                                     all.meta().layer, hc.classes));
  if (!cfg.metrics_json.empty() && !r.history.empty()) {
    const auto& e = r.best_epoch > 0 ? r.history.at(r.best_epoch - 1) : r.history.back();
    std::string j = fmt::format(
        "{{\"epochs_run\": {}, \"best_epoch\": {}, \"early_stopped\": {}, \"interrupted\": {},\n"
        "  \"loss\": {}, \"accuracy\": {}",
        r.history.size(), r.best_epoch, r.early_stopped, r.interrupted, e.loss, e.accuracy);
    if (e.has_val)
      j += fmt::format(", \"val_loss\": {}, \"val_accuracy\": {}", e.val_loss, e.val_accuracy);
    j += fmt::format(",\n  \"data_mode\": {}, \"model\": {}}}\n",
                     json_string(all.in_memory() ? "in-memory" : "streamed"),
                     json_string(cfg.output.string()));
    write_text_file(cfg.metrics_json, j);
  }
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s;
}

}  // namespace tl
