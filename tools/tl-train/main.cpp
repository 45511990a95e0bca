// tl-train: a dense classifier on cached VGG16 features -> a model file.
#include <iostream>

#include <fmt/format.h>

#include "cli.hpp"
#include "tl/block5.hpp"
#include "tl/machine.hpp"
#include "tl/train_run.hpp"

int main(int argc, char** argv) {
  const tl::cli::ToolInfo info{
      "tl-train", "tl-train --train FILE.h5 [--train FILE2.h5 ...] --output MODEL.h5 [options]",
      "Trains a dense classifier (Keras's bottleneck-features top model) on features cached by "
      "tl-extract. Ctrl-C stops training and saves the best model so far.",
      "tl-train --train train.h5 --val-split 0.2 --head mlp --epochs 30 --patience 5 "
      "--output model.h5 --history history.csv\n"
      "  tl-train --finetune block5 --train block4.h5 --weights VGG16.h5 --val-split 0.2 "
      "--epochs 10 --finetune-epochs 10 --output finetuned.h5"};
  return tl::cli::run(info, argc, argv, [&](tl::cli::Parser& p) {
    namespace po = tl::cli::po;
    tl::TrainRunConfig cfg;
    std::vector<std::string> train, val;
    std::string output, history, metrics, plot, head = "logreg", pool = "flatten",
                                                standardize = "on", optimizer = "adam",
                                                class_weight = "none";
    float lr = 0, momentum = 0, weight_decay = 0, dropout = 0.5f;
    double memory_gb = 0;
    int threads = 0;
    auto& o = cfg.options;
    o.epochs = 20;
    po::options_description data("Data");
    data.add_options()("train", po::value(&train)->composing()->value_name("FILE.h5"),
                       "training features from tl-extract (repeat to concatenate files)")(
        "val", po::value(&val)->composing()->value_name("FILE.h5"), "validation features")(
        "val-split", po::value(&cfg.val_split)->default_value(0.0)->value_name("F"),
        "hold out this stratified fraction of --train for validation instead")(
        "memory-limit", po::value(&memory_gb)->default_value(0.0)->value_name("GB"),
        "load features in memory up to this size, stream from HDF5 above it (0 = half the RAM)");
    po::options_description model("Model");
    model.add_options()(
        "head", po::value(&head)->default_value(head)->value_name("logreg|linear|mlp"),
        "logreg: Dense(C, softmax) fitted exactly by L-BFGS logistic regression, its L2 "
        "strength chosen on validation; linear: the same layer trained by --optimizer; mlp: "
        "Dense(hidden, relu) -> Dropout -> Dense(C, softmax). Default logreg, or linear when an "
        "SGD option (--optimizer, --lr, --momentum, --weight-decay, --epochs, --batch, "
        "--patience) is given")(
        "pool", po::value(&pool)->default_value(pool)->value_name("flatten|avg|max"),
        "Flatten (Keras's (h, w, c) order) or global pooling over H and W")(
        "standardize", po::value(&standardize)->default_value(standardize)->value_name("on|off"),
        "scale each input feature by the training rows' mean and standard deviation (stored "
        "in the model; tl-predict applies it)")(
        "hidden", po::value(&cfg.head.hidden)->default_value(256)->value_name("N"),
        "mlp hidden units")("dropout", po::value(&dropout)->default_value(0.5f)->value_name("RATE"),
                            "mlp dropout rate");
    po::options_description fit("Training");
    fit.add_options()(
        "optimizer",
        po::value(&optimizer)->default_value(optimizer)->value_name("adam|sgd|rmsprop"),
        "Keras's update rules and defaults")(
        "lr", po::value(&lr)->default_value(0.f)->value_name("X"),
        "learning rate (0 = Keras's default: adam/rmsprop 1e-3, sgd 1e-2)")(
        "momentum", po::value(&momentum)->default_value(0.f)->value_name("X"), "sgd momentum")(
        "weight-decay", po::value(&weight_decay)->default_value(0.f)->value_name("X"),
        "L2 on kernels")("epochs", po::value(&o.epochs)->default_value(o.epochs)->value_name("N"),
                         "epochs");
    tl::cli::add_batch(fit, o.batch, "batch size");
    fit.add_options()(
        "patience", po::value(&o.patience)->default_value(0)->value_name("N"),
        "early stopping on val_loss after N epochs without improvement (0 = off); the best "
        "epoch's weights are kept")(
        "class-weight",
        po::value(&class_weight)->default_value(class_weight)->value_name("none|balanced"),
        "balanced: weight classes by n / (classes * count)");
    tl::cli::add_seed(fit, o.seed,
                      "initialisation, shuffling, dropout and validation split (same seed and "
                      "threads: bit-identical model)");
    tl::cli::add_threads(fit, threads);
    po::options_description out("Output");
    out.add_options()("output", po::value(&output)->value_name("MODEL.h5"), "the model file")(
        "history", po::value(&history)->value_name("FILE.csv"),
        "per-epoch log (Keras CSVLogger format)")(
        "metrics-json", po::value(&metrics)->value_name("FILE"), "final metrics as JSON")(
        "plot", po::value(&plot)->value_name("FILE.png"),
        "training curves (default: MODEL.curves.png)")(
        "overwrite", po::bool_switch(&cfg.overwrite),
        "replace an output that holds another kind of file (never an input)")(
        "quiet", po::bool_switch(&cfg.quiet), "no per-epoch lines");
    auto& ft = cfg.finetune;
    std::string finetune, ft_optimizer = "sgd", ft_precision = "f32";
    po::options_description tune("Fine-tuning (block5 on block4_pool features)");
    tune.add_options()(
        "finetune", po::value(&finetune)->value_name("block5"),
        "train block5_conv1..3 + block5_pool + the head on features cached at block4_pool: "
        "first the head with block5 frozen (--epochs, --optimizer, --lr), then both together");
    tl::cli::add_weights(
        tune, ft.weights,
        "VGG16 weights block5 starts from (default: the ones the features were made with)");
    tune.add_options()(
        "head-init", po::value<std::string>()->value_name("MODEL.h5"),
        "start from this head (trained on block5_pool features of the same images) and skip "
        "the first phase")("finetune-epochs",
                           po::value(&ft.epochs)->default_value(0)->value_name("N"),
                           "epochs of block5 + head (0 = --epochs)")(
        "finetune-optimizer",
        po::value(&ft_optimizer)->default_value(ft_optimizer)->value_name("adam|sgd|rmsprop"),
        "optimizer of block5 + head")(
        "finetune-lr",
        po::value(&ft.optimizer.learning_rate)->default_value(1e-4f, "1e-4")->value_name("X"),
        "learning rate of block5 + head")(
        "finetune-momentum",
        po::value(&ft.optimizer.momentum)->default_value(0.9f, "0.9")->value_name("X"),
        "sgd momentum of block5 + head")(
        "finetune-clip-norm", po::value(&ft.clip_norm)->default_value(1.0, "1")->value_name("X"),
        "clip the gradient of block5 + head to this L2 norm before each update (0 = off)")(
        "finetune-precision",
        po::value(&ft_precision)->default_value(ft_precision)->value_name("f32|bf16"),
        "block5's convolutions while fine-tuning: bf16 inputs, weights and gradients with f32 "
        "accumulation and f32 master weights (needs AVX512_BF16 or AMX); the saved model is "
        "f32 either way");
    p.add(data);
    p.add(model);
    p.add(fit);
    p.add(tune);
    p.add(out);
    if (!p.parse()) return 0;
    ft.enabled = !finetune.empty() && tl::cli::parse_option("--finetune", finetune, [](auto& s) {
      if (s != "block5")
        throw tl::UsageError(fmt::format("'{}' (accepted: block5, the only block trained)", s));
      return true;
    });
    if (p.vm().count("head-init")) ft.head_init = p.vm()["head-init"].as<std::string>();
    ft.optimizer.kind = tl::cli::parse_option("--finetune-optimizer", ft_optimizer,
                                              [](auto& s) { return tl::parse_optimizer(s); });
    ft.precision = tl::cli::parse_option("--finetune-precision", ft_precision,
                                         [](auto& s) { return tl::parse_training_precision(s); });
    for (const auto& f : train) cfg.train.emplace_back(f);
    for (const auto& f : val) cfg.val.emplace_back(f);
    cfg.output = output;
    cfg.history_csv = history;
    cfg.metrics_json = metrics;
    cfg.plot = plot;
    std::vector<std::string> sgd_given;
    for (const char* o :
         {"optimizer", "lr", "momentum", "weight-decay", "epochs", "batch", "patience"})
      if (p.given(o)) sgd_given.push_back(std::string("--") + o);
    tl::choose_head(cfg, p.given("head") ? head : "", sgd_given);
    cfg.head.pool =
        tl::cli::parse_option("--pool", pool, [](auto& s) { return tl::parse_pool(s); });
    cfg.head.dropout = dropout;
    cfg.standardize = tl::cli::parse_option("--standardize", standardize, [](auto& s) {
      if (s != "on" && s != "off") throw tl::UsageError(fmt::format("'{}' (accepted: on, off)", s));
      return s == "on";
    });
    o.optimizer.kind = tl::cli::parse_option("--optimizer", optimizer,
                                             [](auto& s) { return tl::parse_optimizer(s); });
    o.optimizer.learning_rate = lr;
    o.optimizer.momentum = momentum;
    o.optimizer.weight_decay = weight_decay;
    o.class_weighting = tl::cli::parse_option("--class-weight", class_weight,
                                              [](auto& s) { return tl::parse_class_weighting(s); });
    if (memory_gb < 0) throw tl::UsageError("--memory-limit: must be >= 0");
    cfg.memory_limit = static_cast<std::uint64_t>(memory_gb * (1ull << 30));
    tl::cli::set_threads(threads);

    const std::atomic<bool>& stop = tl::cli::stop_on_signals();
    const tl::TrainRunSummary s = tl::run_training(cfg, std::cerr, &stop);
    if (!s.saved) return stop ? tl::cli::kExitInterrupted : tl::cli::kExitFailure;
    std::cerr << fmt::format("model: {}\ncurves: {}\n", s.model.string(), s.plot.string());
    if (!cfg.history_csv.empty()) std::cerr << "history: " << cfg.history_csv.string() << "\n";
    return stop ? tl::cli::kExitInterrupted : 0;
  });
}
