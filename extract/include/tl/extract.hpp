// tl-extract's engine: stream an image folder through VGG16 into an HDF5 feature cache.
//
//   tl::ExtractConfig cfg;
//   cfg.images = "data/train";
//   cfg.output = "train.h5";
//   cfg.weights = "random:1";
//   tl::ExtractSummary s = tl::run_extract(cfg, std::cerr);
//
// A oneTBB pipeline: list -> read + decode + resize (+ K augmented copies) + preprocess
// (parallel) -> VGG16 forward -> pool -> commit (serial, in order). A bounded number of batches is
// in flight, so memory does not grow with the number of images. Each commit is flushed: a killed
// run resumes after its last committed batch when run again with the same options.
#pragma once

#include <atomic>
#include <filesystem>
#include <iosfwd>
#include <string>

#include "tl/feature_file.hpp"
#include "tl/global_pool.hpp"
#include "tl/image.hpp"
#include "tl/image_augment.hpp"
#include "tl/image_list.hpp"
#include "tl/vgg16.hpp"

namespace tl {

// How the cores are shared between decoding (TBB) and the network (oneDNN on OpenMP).
enum class Schedule {
  shared_net,      // one net using all cores; TBB decodes the next batches meanwhile
  net_per_thread,  // each TBB worker runs whole batches through its own 1-thread net
};
Schedule parse_schedule(std::string_view s);
std::string_view to_string(Schedule s);

struct ExtractConfig {
  std::filesystem::path images;  // root folder (class folders or plain images)
  std::filesystem::path list;    // optional list file; paths relative to `images`
  std::filesystem::path output;
  std::string weights;     // file, random:SEED, or "" for the Keras cache
  NetConfig net;           // .to = layer, .height/.width, .precision, .algo, .batch
  ImageOptions image;      // resize and preprocess (height/width are taken from net)
  AugmentOptions augment;  // --augment K: after each image's row, K augmented copies
  Pool pool = Pool::none;  // global pooling of each row over H and W
  StorageType dtype = StorageType::f32;
  int threads = 0;  // 0 = all cores
  Schedule schedule = Schedule::shared_net;
  Shard shard;             // with N > 1 the output is written as OUT.partial and renamed to
                           // OUT when complete: a killed task leaves no file under OUT
  bool strict = false;     // stop before the first image that cannot be used (not consumed:
                           // a rerun with --strict stops there again; without, skips it)
  bool overwrite = false;  // start again even if the output exists
  bool quiet = false;      // no progress
  // int8 (net.precision): ranges from calibration_data, else from --calibration FILE (a
  // feature file made with int8), else measured on `calibrate` images sampled over the list.
  int calibrate = 256;
  std::filesystem::path calibration_file;
  std::shared_ptr<const Int8Calibration> calibration_data;
};

struct ExtractSummary {
  std::filesystem::path file;  // the file holding the rows: the output, or OUT.partial for an
                               // unfinished shard
  std::int64_t rows = 0;       // rows in the file at the end (1 + K per image with --augment K)
  std::int64_t rows_this_run = 0;
  std::int64_t images_this_run = 0;  // images that gave rows this run (rows / (1 + K))
  std::int64_t failed = 0;           // failures in the file at the end
  std::int64_t failed_this_run = 0;
  std::int64_t resumed_from = 0;  // list entries already done when this run started
  double seconds = 0;
  bool already_complete = false;  // the output was finished before: nothing done
  bool complete = false;          // the output is finished now
  bool stopped = false;           // interrupted (stop flag) or --strict failure
  std::string strict_failure;     // --strict: "'path': reason" of the image it stopped at
};

// Validates the configuration (UsageError naming the option), lists the images, opens or
// resumes the output and runs the pipeline. Progress and failures go to `log`. `stop`, when
// set by another thread (e.g. a SIGINT handler), ends the run after the batch in commit.
ExtractSummary run_extract(const ExtractConfig& cfg, std::ostream& log,
                           const std::atomic<bool>* stop = nullptr);

}  // namespace tl
