#include "tl/train_run.hpp"

#include <unistd.h>

#include <chrono>
#include <optional>
#include <ostream>

#include <fmt/format.h>

#include "tl/block5.hpp"
#include "tl/error.hpp"
#include "tl/feature_file_source.hpp"
#include "tl/finetune.hpp"
#include "tl/logreg.hpp"
#include "tl/machine.hpp"
#include "tl/model_file.hpp"
#include "tl/output_file.hpp"
#include "tl/output_lock.hpp"
#include "tl/plots.hpp"
#include "tl/report.hpp"

namespace fs = std::filesystem;

namespace tl {

// Phase 2's early stopping when --patience is not given (and validation data exists).
constexpr int kFinetunePatience = 3;
// Phase 2 replaces phase 1 only with a validation loss this fraction below phase 1's.
constexpr double kFinetuneMargin = 0.02;

std::uint64_t default_memory_limit() {
  const std::uint64_t usable = machine().memory;
  return usable > 0 ? usable / 2 : 4ull << 30;
}

namespace {

fs::path plot_path(const TrainRunConfig& cfg) {
  return cfg.plot.empty() ? fs::path(cfg.output).replace_extension(".curves.png") : cfg.plot;
}

// Issue 15, item 8: a run stopped before any epoch completed writes no model, and so never
// replaces a good one with an untrained one.
bool completed_an_epoch(std::size_t epochs, const TrainRunConfig& cfg, std::ostream& log) {
  if (epochs > 0) return true;
  std::error_code ec;
  log << fmt::format("stopped before the first epoch completed: no model written{}\n",
                     fs::exists(cfg.output, ec)
                         ? fmt::format(" ('{}' is left as it was)", cfg.output.string())
                         : "");
  return false;
}

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
  t["standardize"] = c.standardize ? "on" : "off";
  t["epochs_run"] = std::to_string(r.history.size());
  t["best_epoch"] = std::to_string(r.best_epoch);
  t["early_stopped"] = std::to_string(static_cast<int>(r.early_stopped));
  t["interrupted"] = std::to_string(static_cast<int>(r.interrupted));
  t["data_mode"] = in_memory ? "in-memory" : "streamed";
  if (!r.guard_events.empty()) {  // the divergence guard stepped in
    std::vector<std::string> ev;
    for (const auto& g : r.guard_events)
      ev.push_back(fmt::format(
          "epoch {} batch {}: {}{}", g.epoch, g.batch, g.reason,
          g.gave_up ? " (gave up)" : fmt::format(" (learning rate -> {:g})", g.learning_rate)));
    t["guard_events"] = fmt::format("{}", fmt::join(ev, "\n"));
  }
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

// The training data: the feature files, and the validation file or split.
struct Data {
  std::unique_ptr<FeatureFileSource> all, val_files;
  std::unique_ptr<SubsetSource> train_part, val_part;
  FeatureSource* train = nullptr;
  FeatureSource* val = nullptr;
};

Data load_data(const TrainRunConfig& cfg, std::ostream& log) {
  const std::uint64_t limit = cfg.memory_limit ? cfg.memory_limit : default_memory_limit();
  Data d;
  d.all = std::make_unique<FeatureFileSource>(cfg.train, limit);
  FeatureFileSource& all = *d.all;
  require_labels(all, "training", cfg.train);
  log << "train: " << all.describe() << "\n";
  if (!all.meta().weights_pretrained)
    log << "warning: these features come from random VGG16 weights (" << all.meta().weights
        << "), NOT pretrained\n";
  d.train = &all;
  if (!cfg.val.empty()) {
    d.val_files = std::make_unique<FeatureFileSource>(cfg.val, limit);
    require_labels(*d.val_files, "validation", cfg.val);
    check_features_fit({.head = {}, .classes = all.classes(), .features = all.meta()},
                       d.val_files->meta(), cfg.val.front(), false);
    d.val = d.val_files.get();
    log << "validation: " << d.val_files->describe() << "\n";
    if (d.val_files->has_augmented_rows()) {  // validation scores images, not their copies
      d.val_part = std::make_unique<SubsetSource>(*d.val_files, d.val_files->original_rows());
      d.val = d.val_part.get();
      log << fmt::format("validation: its {} original rows (augmented copies left out)\n",
                         d.val->rows());
    }
  } else if (const double fraction = cfg.val_split > 0 ? cfg.val_split
                                     : cfg.logreg      ? cfg.logreg_split
                                                       : 0;
             fraction > 0) {
    if (cfg.val_split == 0)
      log << fmt::format(
          "logreg: no validation data given: C is chosen on {} of the training "
          "rows held out{}\n",
          fraction, cfg.finetune.enabled ? "" : ", then the head is refitted on all");
    // Split by image: a held-out image's copies leave training with it.
    const Split split = split_by_image(all, fraction, cfg.options.seed);
    d.train_part = std::make_unique<SubsetSource>(all, split.train);
    d.val_part = std::make_unique<SubsetSource>(all, split.val);
    d.train = d.train_part.get();
    d.val = d.val_part.get();
    if (all.has_augmented_rows())
      log << fmt::format(
          "validation: {} images held out of {} (stratified by image, seed {}); training on "
          "{} rows (the other images and their augmented copies)\n",
          split.val.size(), all.original_rows().size(), cfg.options.seed, split.train.size());
    else
      log << fmt::format("validation: {} rows held out of {} (stratified, seed {})\n",
                         split.val.size(), all.rows(), cfg.options.seed);
  }
  return d;
}

TrainCallbacks epoch_logger(const TrainRunConfig& cfg, std::ostream& log, int epochs) {
  const int width = static_cast<int>(std::to_string(epochs).size());
  TrainCallbacks cb;
  cb.on_epoch = [&cfg, &log, width, epochs](const EpochRecord& e) {
    if (cfg.quiet) return;
    std::string line = fmt::format("epoch {:>{}}/{}: loss {:.4f} accuracy {:.4f}", e.epoch, width,
                                   epochs, e.loss, e.accuracy);
    if (e.has_val)
      line += fmt::format(" val_loss {:.4f} val_accuracy {:.4f}", e.val_loss, e.val_accuracy);
    log << line << fmt::format(" ({:.1f} s){}\n", e.seconds, e.best ? " *" : "") << std::flush;
  };
  cb.on_guard = [&log](const GuardEvent& g) {  // said even with --quiet
    const std::string where = g.batch > 0 ? fmt::format("epoch {}, batch {}", g.epoch, g.batch)
                                          : fmt::format("after epoch {}", g.epoch);
    if (g.gave_up)
      log << fmt::format("guard: {}: {}; giving up\n", where, g.reason);
    else
      log << fmt::format("guard: {}: {}; rolled back to {}, learning rate halved to {:g}\n", where,
                         g.reason,
                         g.rolled_back_to ? fmt::format("epoch {}'s weights", g.rolled_back_to)
                                          : std::string("the starting weights"),
                         g.learning_rate);
  };
  return cb;
}

// History, curves and metrics of `r` (with `before`'s epochs first, as one numbered run).
void write_outputs(const TrainRunConfig& cfg, const TrainResult& r, const TrainResult& before,
                   const FeatureFileSource& all, const std::string& title, TrainRunSummary& s) {
  std::vector<EpochRecord> history = before.history;
  for (EpochRecord e : r.history) {
    e.epoch += static_cast<int>(before.history.size());
    history.push_back(e);
  }
  if (!cfg.history_csv.empty()) write_history_csv(cfg.history_csv, history);
  s.plot = plot_path(cfg);
  if (!history.empty()) plot_training_curves(history, s.plot, title);
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
    write_file_atomically(cfg.metrics_json, j);
  }
}

// The head's standardisation from the training rows (a streamed pass when they are on disk).
void standardize_head(DenseHead& head, FeatureSource& train, bool on, std::ostream& log) {
  if (!on) return;
  head.set_standardization(input_statistics(head, train));
  log << fmt::format("standardize: mean and std of {} features over {} training rows\n",
                     head.features(), train.rows());
}

// The logistic regression: fit_logreg over the C grid, each point logged, and its walk as a
// TrainResult (one record per C) for the history, the curves and the model's record.
TrainResult train_logreg(DenseHead& head, FeatureSource& train, FeatureSource* val, bool refit,
                         const TrainRunConfig& cfg, std::ostream& log,
                         const std::atomic<bool>* stop, LogregResult& lr) {
  // The prepared rows get half the memory budget: the features may hold the other half.
  LogregOptions o{
      .class_weighting = cfg.options.class_weighting,
      .memory_limit = (cfg.memory_limit ? cfg.memory_limit : default_memory_limit()) / 2 + 1,
      .refit = refit,
      .stop = stop};
  if (!val) o.cs = {1.0};  // nothing to choose on (a --val-split of 0 with fine-tuning's rows)
  log << fmt::format("logreg: L-BFGS on {} rows, C from {:g} up{}\n", train.rows(),
                     o.cs.empty() ? default_c_grid().front() : o.cs.front(),
                     val ? fmt::format(", chosen on {} validation rows", val->rows()) : "");
  lr = fit_logreg(head, train, val, o, [&](const LogregPoint& p) {
    if (cfg.quiet) return;
    std::string line = fmt::format("C {:<7.3g} {:>4} iterations: loss {:.4f} accuracy {:.4f}", p.c,
                                   p.iterations, p.loss, p.accuracy);
    if (p.has_val)
      line += fmt::format(" val_loss {:.4f} val_accuracy {:.4f}", p.val_loss, p.val_accuracy);
    else
      line += " (refit on training + validation rows)";
    log << line << fmt::format(" ({:.1f} s)\n", p.seconds) << std::flush;
  });
  log << fmt::format(
      "logreg: C = {:g} (validation accuracy {:.4f}){}\n", lr.c, lr.path[lr.chosen].val_accuracy,
      lr.refitted ? fmt::format(", refitted on {} rows", train.rows() + val->rows()) : "");
  TrainResult r;
  for (size_t k = 0; k < lr.path.size(); ++k) {
    const LogregPoint& p = lr.path[k];
    r.history.push_back({.epoch = static_cast<int>(k) + 1,
                         .loss = p.loss,
                         .accuracy = p.accuracy,
                         .val_loss = p.val_loss,
                         .val_accuracy = p.val_accuracy,
                         .seconds = p.seconds,
                         .has_val = p.has_val,
                         .best = k == lr.chosen});
  }
  r.best_epoch = val ? static_cast<int>(lr.chosen) + 1 : 0;
  r.interrupted = lr.interrupted;
  return r;
}

void logreg_record(const LogregResult& lr, std::map<std::string, std::string>& t) {
  std::vector<std::string> grid;
  for (const auto& p : lr.path) grid.push_back(fmt::format("{:g}", p.c));
  t["head_fit"] = "logreg";
  t["logreg_c"] = fmt::format("{:g}", lr.c);
  t["logreg_c_tried"] = fmt::format("{}", fmt::join(grid, " "));
  t["logreg_iterations"] =
      std::to_string(lr.refitted ? lr.refit.iterations : lr.path.at(lr.chosen).iterations);
  t["logreg_refit"] = lr.refitted ? "training + validation rows" : "no";
  for (const char* k :
       {"optimizer", "learning_rate", "momentum", "weight_decay", "epochs", "batch", "patience"})
    t.erase(k);  // SGD settings that played no part
}

// After the model is written (or not): the guard's verdict, as the run's error.
void throw_if_guard_stopped(const TrainResult& r, const TrainRunSummary& s,
                            const TrainRunConfig& cfg) {
  if (r.guard_stop.empty()) return;
  throw Error(fmt::format(
      "{}. {}", r.guard_stop,
      s.saved ? fmt::format("The best model so far ({}) is saved as '{}'",
                            r.best_epoch > 0       ? fmt::format("epoch {}", r.best_epoch)
                            : !r.history.empty()   ? fmt::format("epoch {}", r.history.size())
                            : cfg.finetune.enabled ? std::string("phase 1's head, block5 as given")
                                                   : std::string("the starting weights"),
                            cfg.output.string())
              : "No epoch completed: no model written (try a lower learning rate)"));
}

void log_end(const TrainResult& r, std::ostream& log) {
  if (r.interrupted) log << "interrupted: saving the best model so far\n";
  if (r.early_stopped)
    log << (r.kept_start
                ? fmt::format("early stop after epoch {}: none beat the start\n", r.history.size())
                : fmt::format("early stop: best epoch {}\n", r.best_epoch));
}

// --weights for block5: the features' own weights unless given; they must be the same.
Vgg16Weights block5_weights(const FinetuneConfig& ft, const FeatureMeta& m) {
  const bool random = m.weights.rfind("random:", 0) == 0;
  const std::string spec = !ft.weights.empty() ? ft.weights : random ? m.weights : "";
  Vgg16Weights w = load_weights(spec, block5_layers());  // Error naming a missing layer
  const bool same = random ? w.source == m.weights : w.sha256 == m.weights_sha256;
  if (!same)
    throw UsageError(fmt::format(
        "--weights: {} differ from the weights the block4_pool features were made with ({}{}); "
        "block5 must continue the same network",
        w.describe(), m.weights,
        m.weights_sha256.empty() ? ""
                                 : fmt::format(", sha256 {}", m.weights_sha256.substr(0, 12))));
  return w;
}

// The head of --head-init: trained on block5_pool rows of the same shape and classes.
DenseHead head_from_model(const fs::path& file, const std::vector<std::string>& classes,
                          const Shape& rows) {
  Model m = load_model(file);
  const Shape in = m.head.config().input;
  if (!m.info.finetuned.empty())
    throw UsageError(
        fmt::format("--head-init: '{}' is a fine-tuned model; give a head trained "
                    "on block5_pool features",
                    file.string()));
  if (m.info.classes != classes)
    throw UsageError(fmt::format("--head-init: '{}' has {} classes [{}], the features {} [{}]",
                                 file.string(), m.info.classes.size(),
                                 fmt::join(m.info.classes, ", "), classes.size(),
                                 fmt::join(classes, ", ")));
  if (in.h != rows.h || in.w != rows.w || in.c != rows.c)
    throw UsageError(fmt::format(
        "--head-init: '{}' takes rows [{}, {}, {}] ({} features), block5_pool of these "
        "features is [{}, {}, {}]",
        file.string(), in.h, in.w, in.c, m.info.features.layer, rows.h, rows.w, rows.c));
  return std::move(m.head);
}

TrainRunSummary run_finetune(const TrainRunConfig& cfg, std::ostream& log,
                             const std::atomic<bool>* stop) {
  const auto t0 = std::chrono::steady_clock::now();
  const FinetuneConfig& ft = cfg.finetune;
  const int epochs2 = ft.epochs > 0 ? ft.epochs : cfg.options.epochs;
  if (epochs2 < 1) throw UsageError(fmt::format("--finetune-epochs: {} (must be >= 1)", epochs2));
  Data d = load_data(cfg, log);
  const FeatureFileSource& all = *d.all;
  const FeatureMeta& meta = all.meta();
  if (meta.layer != kFinetuneFeatureLayer || meta.pool != Pool::none)
    throw UsageError(fmt::format(
        "--finetune block5 trains on {} features (tl-extract --layer {}, no --pool); '{}' "
        "holds {} features{}",
        kFinetuneFeatureLayer, kFinetuneFeatureLayer, cfg.train.front().string(), meta.layer,
        meta.pool == Pool::none ? "" : fmt::format(" pooled ({})", to_string(meta.pool))));
  const Vgg16Weights weights = block5_weights(ft, meta);
  log << "block5 weights: " << weights.describe() << "\n";
  Block5 block5(weights, row_shape_of(meta), ft.precision);
  const Shape out = block5.output_row();

  TrainRunSummary s{.model = cfg.output, .in_memory = all.in_memory()};
  HeadConfig hc = cfg.head;
  hc.classes = static_cast<int>(all.classes().size());
  hc.input = out;
  std::optional<DenseHead> head;
  std::optional<InMemorySource> train5, val5;  // block5_pool rows of phase 1 (block5 frozen)
  if (!ft.head_init.empty()) {
    head.emplace(head_from_model(ft.head_init, all.classes(), out));
    log << fmt::format("head from '{}' ({} {})\n", ft.head_init.string(),
                       to_string(head->config().kind), to_string(head->config().pool));
  } else {
    // Phase 1: block5 frozen; its output computed once, the head trained as usual.
    log << fmt::format("phase 1: {} head on block5_pool features [{}, {}, {}] (block5 frozen)\n",
                       to_string(hc.kind), out.h, out.w, out.c);
    train5.emplace(block5_features(*d.train, weights));
    if (d.val) val5.emplace(block5_features(*d.val, weights));
    head.emplace(hc, cfg.options.seed);
    standardize_head(*head, *train5, cfg.standardize, log);
    if (cfg.logreg) {  // refit off: the validation rows must stay unseen for phase 2's choice
      s.head_phase =
          train_logreg(*head, *train5, val5 ? &*val5 : nullptr, false, cfg, log, stop, s.logreg);
    } else {
      TrainOptions opt = cfg.options;
      opt.stop = stop;
      s.head_phase =
          train(*head, *train5, val5 ? &*val5 : nullptr, opt, epoch_logger(cfg, log, opt.epochs));
    }
    log_end(s.head_phase, log);
  }
  TrainOptions opt = cfg.options;
  opt.stop = stop;
  opt.epochs = epochs2;
  opt.optimizer = ft.optimizer;
  opt.clip_norm = ft.clip_norm;
  // Never worse than phase 1 on validation, and replacing it only for a clear gain: less is
  // within the noise of the validation rows, and a kept phase 1 is refitted on all rows.
  opt.keep_start = true;
  opt.start_margin = kFinetuneMargin;
  // Phase 2 stops after 3 epochs without a better val_loss, unless --patience says otherwise.
  if (opt.patience == 0 && d.val) opt.patience = kFinetunePatience;
  if (!(stop && stop->load())) {
    log << fmt::format(
        "phase 2: block5 + head, {} lr {:g} momentum {:g}, gradient norm clipped at {:g}, {} "
        "epochs, {} convs\n",
        to_string(opt.optimizer.kind), opt.optimizer.learning_rate, opt.optimizer.momentum,
        opt.clip_norm, epochs2, to_string(ft.precision));
    TrainCallbacks cb = epoch_logger(cfg, log, epochs2);
    s.result = finetune(block5, *head, *d.train, d.val, opt, cb);
    if (d.val)
      log << fmt::format(
          "phase 1 on validation: val_loss {:.4f} val_accuracy {:.4f} (phase 2 "
          "had to beat val_loss {:.4f})\n",
          s.result.start.loss, s.result.start.accuracy,
          s.result.start.loss * (1 - kFinetuneMargin));
    if (s.result.kept_start) {
      log << fmt::format(
          "no phase 2 epoch beat phase 1 on validation (val_loss {:.4f}): the "
          "model keeps phase 1's weights\n",
          s.result.start.loss);
      // Phase 1 won: the model is the default head on these images, refitted on all rows
      // like it (the validation rows were kept out only to judge phase 2).
      if (cfg.logreg && d.train_part && val5 && !s.logreg.interrupted && !(stop && *stop)) {
        fit_logreg(*head, *train5, &*val5,
                   {.cs = {s.logreg.c},
                    .class_weighting = cfg.options.class_weighting,
                    .memory_limit = default_memory_limit() / 2 + 1,  // block5_pool rows: small
                    .refit = true,
                    .stop = stop});
        log << fmt::format("phase 1's head refitted on all {} rows (C = {:g})\n",
                           train5->rows() + val5->rows(), s.logreg.c);
      }
    }
    log_end(s.result, log);
  }
  const TrainResult& guarded = !s.head_phase.guard_stop.empty() ? s.head_phase : s.result;

  TrainRunConfig rec_cfg = cfg;
  rec_cfg.options.optimizer = Optimizer(opt.optimizer, {}).config();
  auto training = training_record(rec_cfg, s.result, all.in_memory());
  training["finetune"] = "block5";
  training["finetune_epochs"] = std::to_string(epochs2);
  training["finetune_precision"] = std::string(to_string(ft.precision));
  training["finetune_clip_norm"] = fmt::format("{:g}", ft.clip_norm);
  training["finetune_kept_phase1"] = s.result.kept_start ? "1" : "0";
  training["block5_weights"] = weights.describe();
  training["head_init"] = ft.head_init.string();
  training["head_epochs_run"] = std::to_string(s.head_phase.history.size());
  if (cfg.logreg) {
    training["head_fit"] = "logreg";
    training["logreg_c"] = fmt::format("{:g}", s.logreg.c);
  }
  training["augment"] = meta.augment.describe();
  ModelInfo info{.head = head->config(),
                 .classes = all.classes(),
                 .features = meta,
                 .training = training,
                 .finetuned = "block5"};
  if (!completed_an_epoch(s.head_phase.history.size() + s.result.history.size(), cfg, log)) {
    throw_if_guard_stopped(guarded, s, cfg);
    return s;
  }
  save_model(cfg.output, info, *head, block5.conv_weights());
  s.saved = true;
  write_outputs(cfg, s.result, s.head_phase, all,
                fmt::format("block5 + {} head on {} ({} classes)", to_string(hc.kind), meta.layer,
                            hc.classes),
                s);
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  throw_if_guard_stopped(guarded, s, cfg);
  return s;
}

}  // namespace

void choose_head(TrainRunConfig& cfg, std::string_view head,
                 const std::vector<std::string>& sgd_options) {
  const std::string_view kind = !head.empty() ? head : sgd_options.empty() ? "logreg" : "linear";
  if (kind != "logreg" && kind != "linear" && kind != "mlp")
    throw UsageError(
        fmt::format("--head: unknown head '{}' (accepted: logreg, linear, mlp)", kind));
  cfg.logreg = kind == "logreg";
  if (cfg.logreg && !sgd_options.empty() && !cfg.finetune.enabled)
    throw UsageError(fmt::format(
        "--head logreg is fitted by L-BFGS, {} {} no part in it (use --head linear or mlp)",
        fmt::join(sgd_options, ", "), sgd_options.size() == 1 ? "takes" : "take"));
  cfg.head.kind = cfg.logreg ? HeadKind::linear : parse_head_kind(kind);
}

void validate(const TrainRunConfig& cfg) {
  const TrainOptions& o = cfg.options;
  if (o.epochs < 1) throw UsageError(fmt::format("--epochs: {} (must be at least 1)", o.epochs));
  if (o.patience < 0) throw UsageError(fmt::format("--patience: {} (must be >= 0)", o.patience));
  const FinetuneConfig& ft = cfg.finetune;
  if (!ft.enabled) {
    if (!ft.weights.empty() || !ft.head_init.empty())
      throw UsageError("--weights and --head-init go with --finetune block5");
    return;
  }
  if (ft.epochs < 0)
    throw UsageError(fmt::format("--finetune-epochs: {} (must be >= 0)", ft.epochs));
  if (!(ft.clip_norm >= 0))
    throw UsageError(fmt::format("--finetune-clip-norm: {} (must be >= 0)", ft.clip_norm));
  if (ft.precision == Precision::int8)
    throw UsageError("--finetune-precision: int8 (accepted: f32, bf16)");
  machine().require_training(ft.precision, "--finetune-precision");
}

TrainRunSummary run_training(const TrainRunConfig& cfg, std::ostream& log,
                             const std::atomic<bool>* stop) {
  validate(cfg);  // before any file is read
  if (cfg.train.empty()) throw UsageError("--train: at least one feature file is required");
  if (cfg.output.empty()) throw UsageError("--output: required (the model file to write)");
  // Before anything is read: no output may destroy an input or another output (issue 15).
  std::vector<InputFile> inputs;
  for (const auto& t : cfg.train) inputs.push_back({"--train", t});
  for (const auto& v : cfg.val) inputs.push_back({"--val", v});
  inputs.push_back({"--head-init", cfg.finetune.head_init});
  if (cfg.finetune.weights.rfind("random:", 0) != 0)
    inputs.push_back({"--weights", cfg.finetune.weights});
  check_outputs(
      inputs,
      {{"--output", cfg.output, FileKind::model},
       {"--history", cfg.history_csv, FileKind::text},
       {"--metrics-json", cfg.metrics_json, FileKind::text},
       {cfg.plot.empty() ? "--plot (default)" : "--plot", plot_path(cfg), FileKind::image}},
      cfg.overwrite);
  const OutputLock lock(cfg.output);  // one tl-train per model file
  if (!cfg.val.empty() && cfg.val_split > 0)
    throw UsageError("--val and --val-split: give one or the other");
  if (cfg.val_split < 0 || cfg.val_split >= 1)
    throw UsageError(fmt::format("--val-split: {} (must be in [0, 1))", cfg.val_split));
  if (cfg.finetune.enabled) return run_finetune(cfg, log, stop);
  const auto t0 = std::chrono::steady_clock::now();
  Data d = load_data(cfg, log);
  const FeatureFileSource& all = *d.all;

  HeadConfig hc = cfg.head;
  hc.classes = static_cast<int>(all.classes().size());
  hc.input = row_shape_of(all.meta());
  DenseHead head(hc, cfg.options.seed);
  standardize_head(head, *d.train, cfg.standardize, log);

  TrainOptions opt = cfg.options;
  opt.stop = stop;
  LogregResult lr;
  const TrainResult r =
      cfg.logreg ? train_logreg(head, *d.train, d.val, d.train_part != nullptr, cfg, log, stop, lr)
                 : train(head, *d.train, d.val, opt, epoch_logger(cfg, log, opt.epochs));
  log_end(r, log);

  ModelInfo info{.head = hc,
                 .classes = all.classes(),
                 .features = all.meta(),
                 .training = training_record(cfg, r, all.in_memory())};
  if (cfg.logreg) logreg_record(lr, info.training);
  info.training["augment"] = all.meta().augment.describe();
  TrainRunSummary s{.result = r, .logreg = lr, .model = cfg.output, .in_memory = all.in_memory()};
  if (!completed_an_epoch(r.history.size(), cfg, log)) {
    throw_if_guard_stopped(r, s, cfg);
    return s;
  }
  save_model(cfg.output, info, head);
  s.saved = true;
  write_outputs(cfg, r, {}, all,
                cfg.logreg ? fmt::format("logreg on {} ({} classes): point k of the C grid is C = "
                                         "{:g} x 10^((k-1)/2); chosen C = {:g}",
                                         all.meta().layer, hc.classes, lr.path.front().c, lr.c)
                           : fmt::format("{} head on {} ({} classes)", to_string(hc.kind),
                                         all.meta().layer, hc.classes),
                s);
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  throw_if_guard_stopped(r, s, cfg);
  return s;
}

}  // namespace tl
