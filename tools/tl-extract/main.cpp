// tl-extract: an image folder -> VGG16 features of one layer -> an HDF5 feature cache.
#include <iostream>

#include <fmt/format.h>

#include "cli.hpp"
#include "tl/augment_preview.hpp"
#include "tl/extract.hpp"
#include "tl/merge.hpp"
#include "tl/slurm_array.hpp"

namespace {
constexpr int kExitSomeFailed = 3;
}  // namespace

int main(int argc, char** argv) {
  const tl::cli::ToolInfo info{
      "tl-extract", "tl-extract --images DIR --output FILE.h5 [options]",
      "Runs VGG16's convolutional base over an image folder (one sub-folder per class, as "
      "Keras's flow_from_directory) and caches one layer's features in an HDF5 file. A killed "
      "run resumes when run again with the same options.",
      "tl-extract --images data/train --output train.h5 --layer block5_pool --size 224"};
  return tl::cli::run(info, argc, argv, [&](tl::cli::Parser& p) {
    namespace po = tl::cli::po;
    tl::cli::NetOptions net;
    tl::cli::ImageOptionsCli img;
    tl::cli::AugmentOptionsCli aug;
    tl::ExtractConfig cfg;
    std::string images, list, output, shard, schedule = "shared-net", pool = "none", dtype = "f32";
    int batch = 32;
    po::options_description io("Input and output");
    io.add_options()("images", po::value(&images)->value_name("DIR"),
                     "image folder: class sub-folders (labels) or plain images (unlabeled)")(
        "list", po::value(&list)->value_name("FILE"),
        "read these images instead: one path per line (relative to --images or absolute), "
        "optionally path<TAB>class")("output", po::value(&output)->value_name("FILE.h5"),
                                     "the feature file to write")(
        "pool", po::value(&pool)->default_value(pool)->value_name("none|avg|max"),
        "global pooling over H and W (Keras pooling=): rows [C] instead of [H, W, C]")(
        "dtype", po::value(&dtype)->default_value(dtype)->value_name("f32|f16"),
        "storage type of /features (f16 halves the file)")(
        "shard", po::value(&shard)->value_name("K/N"),
        "process the K-th of N slices (default: from SLURM_ARRAY_TASK_ID/COUNT when set)")(
        "overwrite", po::bool_switch(&cfg.overwrite), "replace an existing output")(
        "strict", po::bool_switch(&cfg.strict), "stop at the first image that cannot be used");
    std::string calibration;
    po::options_description int8("int8 (--precision int8)");
    int8.add_options()("calibrate",
                       po::value(&cfg.calibrate)->default_value(cfg.calibrate)->value_name("N"),
                       "measure activation ranges on N images sampled evenly over the whole list "
                       "(the same for every shard)")(
        "calibration", po::value(&calibration)->value_name("FILE.h5"),
        "reuse the ranges stored in an earlier int8 feature file instead");
    po::options_description run("Running");
    tl::cli::add_batch(run, batch, "images per forward pass");
    run.add_options()(
        "schedule",
        po::value(&schedule)->default_value(schedule)->value_name("shared-net|net-per-thread"),
        "shared-net: one net on all cores while TBB decodes; net-per-thread: each thread runs "
        "whole batches on its own net")("quiet", po::bool_switch(&cfg.quiet),
                                        "no progress (failures and the summary still print)");
    tl::SlurmArray array;
    bool dry_run = false;
    po::options_description slurm("Slurm array job");
    slurm.add_options()("slurm-array", po::value(&array.tasks)->value_name("N"),
                        "submit an N-task sbatch array instead of extracting: task K writes "
                        "OUT.shards/shard-K-of-N.h5 (then: tl-merge OUT.shards --output OUT)")(
        "cpus-per-task",
        po::value(&array.cpus_per_task)->default_value(array.cpus_per_task)->value_name("N"),
        "CPUs of each task (its --threads)")(
        "sbatch-arg", po::value(&array.sbatch_args)->value_name("ARG"),
        "one more sbatch option, e.g. --sbatch-arg=--time=04:00:00 (repeat)")(
        "dry-run", po::bool_switch(&dry_run), "print the sbatch script instead of submitting it");
    p.add(io);
    p.add(net.options());
    p.add(img.options());
    p.add(aug.options());
    p.add(run);
    p.add(int8);
    p.add(slurm);
    if (!p.parse()) return 0;
    const bool submit = p.given("slurm-array");
    if (!submit && (dry_run || p.given("sbatch-arg") || p.given("cpus-per-task")))
      throw tl::UsageError("--dry-run, --sbatch-arg and --cpus-per-task go with --slurm-array N");
    if (submit && p.given("shard"))
      throw tl::UsageError("--shard: not with --slurm-array (each task gets its own)");

    if (images.empty()) throw tl::UsageError("--images: required (the image folder)");
    const bool preview = p.given("preview");
    if (output.empty() && !preview)
      throw tl::UsageError("--output: required (the .h5 file to write)");
    cfg.images = images;
    cfg.list = list;
    cfg.output = output;
    cfg.calibration_file = calibration;
    if (p.given("calibration") && p.given("calibrate"))
      throw tl::UsageError("--calibrate and --calibration: give one or the other");
    cfg.weights = net.weights;
    cfg.threads = net.threads;
    cfg.net = net.config(batch);
    std::cerr << net.choice(cfg.net);
    cfg.image = img.image(cfg.net.height, cfg.net.width);
    cfg.pool = tl::cli::parse_option("--pool", pool, [](auto& s) { return tl::parse_pool(s); });
    cfg.dtype =
        tl::cli::parse_option("--dtype", dtype, [](auto& s) { return tl::parse_storage_type(s); });
    cfg.augment = aug.config();
    if (preview) {
      tl::write_augment_preview(cfg, aug.preview, std::cerr);
      return 0;
    }
    cfg.schedule = tl::cli::parse_option("--schedule", schedule,
                                         [](auto& s) { return tl::parse_schedule(s); });
    if (submit) {
      std::error_code ec;
      array.tool = std::filesystem::read_symlink("/proc/self/exe", ec);
      const std::string script = tl::slurm_array_script(cfg, array);
      if (dry_run) {
        std::cout << script;
        return 0;
      }
      return tl::submit_slurm_array(script, tl::shard_folder_of(cfg.output));
    }
    cfg.shard = p.given("shard") ? tl::parse_shard(shard) : tl::shard_from_env();
    cfg.threads = tl::cli::set_threads(net.threads);

    const std::atomic<bool>& stop = tl::cli::stop_on_signals();
    const tl::ExtractSummary s = tl::run_extract(cfg, std::cerr, &stop);
    if (s.already_complete) return s.failed > 0 ? kExitSomeFailed : 0;
    std::cerr << fmt::format(
        "{}: {} images in {:.1f} s ({:.2f} img/s), {} failed; '{}' holds {} rows{}\n",
        s.complete ? "done" : "stopped", s.images_this_run + s.failed_this_run, s.seconds,
        s.seconds > 0 ? (s.images_this_run + s.failed_this_run) / s.seconds : 0.0,
        s.failed_this_run, s.file.string(), s.rows,
        s.complete ? "" : " (run the same command to resume)");
    if (stop) return tl::cli::kExitInterrupted;
    return s.failed > 0 || !s.strict_failure.empty() ? kExitSomeFailed : 0;
  });
}
