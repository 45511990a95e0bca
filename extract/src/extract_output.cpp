// The extraction's output: what it records (FeatureMeta), its int8 ranges, and its lifecycle
// (created, resumed or found complete; an array shard written as OUT.partial and published).
#include "extract_output.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "tl/calibration.hpp"
#include "tl/error.hpp"
#include "tl/hdf5_guard.hpp"
#include "tl/merge.hpp"
#include "tl/output_file.hpp"
#include "tl/version.hpp"

namespace fs = std::filesystem;

namespace tl {

FeatureMeta output_meta(const ExtractConfig& cfg, const Vgg16Weights& w, const ImageList& list,
                        std::int64_t entries) {
  FeatureMeta m;
  m.layer = cfg.net.to;
  m.input_height = cfg.net.height;
  m.input_width = cfg.net.width;
  m.preprocess = cfg.image.preprocess;
  m.resize = cfg.image.resize;
  m.precision = cfg.net.precision;
  m.algo = "";  // what ran, recorded with the first rows (FeatureWriter::record_machine)
  m.pool = cfg.pool;
  m.dtype = cfg.dtype;
  m.weights = w.sha256.empty() ? w.source : fs::path(w.source).filename().string();
  m.weights_sha256 = w.sha256;
  m.weights_pretrained = w.pretrained;
  const Shape s =
      infer_shapes({1, cfg.net.height, cfg.net.width, 3}, kInputLayer, cfg.net.to).back();
  m.feature_shape = cfg.pool == Pool::none ? std::vector<std::int64_t>{s.h, s.w, s.c}
                                           : std::vector<std::int64_t>{s.c};
  // The folder itself (symlinks resolved, no trailing '/'): a resume or merge over another
  // folder holding the same names is refused (FeatureMeta::difference).
  std::error_code ec;
  fs::path root = fs::weakly_canonical(fs::absolute(cfg.images), ec);
  if (ec) root = fs::absolute(cfg.images).lexically_normal();
  if (!root.has_filename() && root.has_parent_path()) root = root.parent_path();
  m.images_root = root.string();
  m.list_fingerprint = list.fingerprint();
  m.classes = list.classes;
  m.shard_index = cfg.shard.index;
  m.shard_count = cfg.shard.count;
  m.entries_total = entries;
  m.augment = cfg.augment;
  m.tool_version = kVersion;
  return m;
}

// int8 ranges for a new file: given, read from --calibration FILE, or measured on a sample
// of the whole list (the same sample for every shard). A resumed file keeps its own.
std::shared_ptr<const Int8Calibration> int8_ranges_for_new_file(const ExtractConfig& cfg,
                                                                const Vgg16Weights& weights,
                                                                const ImageList& list,
                                                                std::ostream& log) {
  if (cfg.calibration_data) return cfg.calibration_data;
  if (!cfg.calibration_file.empty()) {
    auto c = std::make_shared<Int8Calibration>(read_calibration(cfg.calibration_file));
    if (c->from != kInputLayer)
      throw UsageError(fmt::format("--calibration: '{}' was calibrated from '{}', not images",
                                   cfg.calibration_file.string(), c->from));
    return c;
  }
  return std::make_shared<Int8Calibration>(
      calibrate_on_images(weights, cfg.net, list, cfg.image, cfg.calibrate, log));
}

ExtractOutput::ExtractOutput(
    const ExtractConfig& cfg, std::ostream& log,
    std::function<std::shared_ptr<const Int8Calibration>()> new_calibration)
    : cfg_(cfg), log_(log), new_calibration_(std::move(new_calibration)), file_(cfg.output) {}

bool ExtractOutput::all_or_nothing() const {
  return cfg_.shard.count > 1;
}

// OUT.partial -> OUT: renamed once closed and synced, then the folder synced.
void ExtractOutput::publish() {
  fs::rename(file_, cfg_.output);
  const fs::path dir = fs::absolute(cfg_.output).parent_path();
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const bool ok = fd >= 0 && ::fsync(fd) == 0;
  if (fd >= 0) ::close(fd);
  if (!ok) throw Error(fmt::format("'{}': fsync of the folder failed", dir.string()));
  log_ << fmt::format("'{}' complete: renamed into place as '{}'\n", file_.string(),
                      cfg_.output.string());
  file_ = cfg_.output;
}

// A new file, a resumed one, or none (already complete: nothing to do). Sets file_.
std::optional<FeatureWriter> ExtractOutput::open(const FeatureMeta& meta, ExtractSummary& sum) {
  std::error_code ec;
  file_ = cfg_.output;
  if (!all_or_nothing() || (!cfg_.overwrite && fs::exists(cfg_.output, ec)))
    return open_file(meta, sum);  // a finished shard, or one an older tlkit left unfinished
  file_ = partial_path_of(cfg_.output);
  if (cfg_.overwrite) fs::remove(cfg_.output, ec);
  auto w = open_file(meta, sum);
  if (!w && sum.already_complete) publish();  // killed between finishing and renaming
  return w;
}

std::optional<FeatureWriter> ExtractOutput::open_file(FeatureMeta meta, ExtractSummary& sum) {
  std::error_code ec;
  // A file with no committed row left by a failed creation (0 bytes: the disk was full
  // when HDF5 wrote its header) is no output yet: it is started again (issue 15, item 15).
  if (!cfg_.overwrite && fs::is_regular_file(file_, ec) && fs::file_size(file_, ec) == 0) {
    log_ << fmt::format("note: '{}' is empty (a creation that failed): starting it again\n",
                        file_.string());
    fs::remove(file_, ec);
  }
  if (cfg_.overwrite || !fs::exists(file_, ec)) {
    if (cfg_.net.precision == Precision::int8) meta.calibration = new_calibration_();
    // Made whole under a temporary name, then put in place (FeatureWriter::create): a
    // failure or a kill leaves nothing under the output's name.
    return FeatureWriter::create(file_, meta, cfg_.overwrite);
  }
  FeatureMeta have;
  try {
    auto read = [&] {
      return read_feature_meta(h5::File::open(file_, h5::Mode::read_only, h5::Access::reader));
    };
    read_in_child_first(file_, read);
    have = read();
  } catch (const Error& e) {
    throw Error(
        fmt::format("output '{}' exists but cannot be resumed ({}); use --overwrite to "
                    "replace it",
                    file_.string(), e.what()));
  }
  if (have.complete) {
    if (const auto d = have.difference(meta); !d.empty())
      throw UsageError(
          fmt::format("output '{}' is a finished extraction made with other options "
                      "({}); use --overwrite to replace it, or another --output",
                      file_.string(), d));
    log_ << fmt::format(
        "'{}' is already complete ({} rows, {} failed): nothing to do "
        "(--overwrite starts again)\n",
        file_.string(), have.rows_done, have.failed_count);
    sum.already_complete = sum.complete = true;
    sum.rows = have.rows_done;
    sum.failed = have.failed_count;
    return std::nullopt;
  }
  return FeatureWriter::resume(file_, meta);
}

}  // namespace tl
