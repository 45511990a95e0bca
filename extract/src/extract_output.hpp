// Internal to tl::extract: the extraction's output file, apart from the pipeline that fills it.
//
//   ExtractOutput out(cfg, log, [&] { return int8_ranges_for_new_file(cfg, weights, list, log); });
//   std::optional<FeatureWriter> w = out.open(output_meta(cfg, weights, list, n), summary);
//   ... commit rows to *w ...
//   w->finish();
//   if (out.file() != cfg.output) out.publish();   // OUT.partial -> OUT for an array shard
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>

#include "tl/extract.hpp"
#include "tl/feature_file.hpp"
#include "tl/image_list.hpp"
#include "tl/vgg16.hpp"
#include "tl/weights.hpp"

namespace tl {

// What a new output records: the settings that decide the rows' values (resuming with any of
// them changed is refused) and what was read. `entries`: list entries of this shard.
FeatureMeta output_meta(const ExtractConfig& cfg, const Vgg16Weights& weights,
                        const ImageList& list, std::int64_t entries);

// int8 ranges for a new file: given, read from --calibration FILE, or measured on a sample of
// the whole list (the same sample for every shard). A resumed file keeps its own.
std::shared_ptr<const Int8Calibration> int8_ranges_for_new_file(const ExtractConfig& cfg,
                                                                const Vgg16Weights& weights,
                                                                const ImageList& list,
                                                                std::ostream& log);

class ExtractOutput {
 public:
  // `new_calibration` is called only when a new int8 file is created.
  ExtractOutput(const ExtractConfig& cfg, std::ostream& log,
                std::function<std::shared_ptr<const Int8Calibration>()> new_calibration);

  // A new file, a resumed one, or none (already complete: `sum` says so). Sets file().
  std::optional<FeatureWriter> open(const FeatureMeta& meta, ExtractSummary& sum);
  // OUT.partial -> OUT: renamed once closed and synced, then the folder synced; file() = OUT.
  void publish();
  // The file written: the output, or OUT.partial for an unfinished array shard.
  const std::filesystem::path& file() const { return file_; }

 private:
  // A shard of an array (N > 1) is written under a temporary name and published complete.
  bool all_or_nothing() const;
  std::optional<FeatureWriter> open_file(FeatureMeta meta, ExtractSummary& sum);

  const ExtractConfig& cfg_;
  std::ostream& log_;
  std::function<std::shared_ptr<const Int8Calibration>()> new_calibration_;
  std::filesystem::path file_;
};

}  // namespace tl
