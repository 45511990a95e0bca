// The feature cache: the HDF5 file tl-extract writes and tl-train / tl-predict read.
// Layout and attributes are documented in docs/FORMAT.md.
//
//   tl::FeatureMeta meta = ...;                                 // what made the rows
//   auto w = tl::FeatureWriter::create("feats.h5", meta);
//   w.commit({.features = f, .rows = n, .labels = l, .paths = p, .entries = n});  // + flush
//   w.finish();                                                  // complete = 1, fsync
//
//   tl::FeatureReader r("feats.h5");
//   auto x = r.read_rows(0, 32);                                 // [32, H, W, C] float32
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tl/error.hpp"
#include "tl/global_pool.hpp"
#include "tl/hdf5.hpp"
#include "tl/image.hpp"
#include "tl/image_augment.hpp"
#include "tl/precision.hpp"
#include "tl/vgg16.hpp"

namespace tl {

inline constexpr const char* kFeatureFormat = "tlkit-features";
inline constexpr std::int64_t kFeatureFormatVersion = 1;
// Files with augmented rows (tl-extract --augment K) say 2, so that a tlkit that does not know
// /augment_index refuses them instead of training on copies as if they were images.
inline constexpr std::int64_t kFeatureFormatVersionAugmented = 2;

// How the rows are stored: float32, or float16 (half the bytes; tl-extract --dtype).
enum class StorageType { f32, f16 };
StorageType parse_storage_type(std::string_view s);  // "f32" | "f16"; UsageError otherwise
std::string_view to_string(StorageType t);

// Everything that decides the rows' values: resuming with any of it changed is refused.
struct FeatureMeta {
  // What produced the features.
  std::string layer = "block5_pool";
  int input_height = 224, input_width = 224;
  Preprocess preprocess = Preprocess::caffe;
  ResizeMode resize = ResizeMode::nearest;
  Precision precision = Precision::f32;
  std::string algo = "direct";  // what ran ("direct, winograd" when rows come from both)
  Pool pool = Pool::none;       // global pooling over H and W
  StorageType dtype = StorageType::f32;
  std::string weights;         // file name or random:SEED
  std::string weights_sha256;  // "" for random weights
  bool weights_pretrained = false;
  std::vector<std::int64_t> feature_shape;  // one row: {H, W, C} or {C}
  // What was read.
  std::string images_root;
  std::string list_fingerprint;
  std::vector<std::string> classes;
  int shard_index = 0, shard_count = 1;
  std::int64_t entries_total = 0;  // list entries in this shard (rows + failures when done)
  // int8: the activation ranges the rows were computed with (attributes int8_*).
  std::shared_ptr<const Int8Calibration> calibration;
  // --augment K and its ranges (attributes augment_*): each image gives 1 + K rows.
  AugmentOptions augment;
  // The machine the rows were computed on (attributes cpu_isa, onednn_implementations; ignored
  // when comparing: a run may resume, and shards may be merged, across ISAs). oneDNN's ISA
  // ("avx2"; "avx2, avx512_core_amx" when rows come from several) and each layer's oneDNN
  // implementation. Empty in files of tlkit before 0.2.
  std::string cpu_isa, implementations;
  // Progress (written by the writer; ignored when comparing).
  std::int64_t entries_done = 0, rows_done = 0, failed_count = 0;
  bool complete = false;
  std::string tool_version, created;

  // "" when `other` would produce the same rows; else what differs, naming the options:
  // "layer: the file has block4_pool, this run asks for block5_pool".
  std::string difference(const FeatureMeta& other) const;
  std::int64_t row_elements() const;
};

// No room on the disk (or under a file-size limit) for the next batch; the rows committed
// before it are intact. `reason` is the bare cause ("No space left on device; 12 MiB more
// needed"), for callers whose advice differs from resuming (tl-merge starts over).
class NoRoomError : public Error {
 public:
  NoRoomError(const std::string& what, std::string reason_)
      : Error(what), reason(std::move(reason_)) {}
  std::string reason;
};

// One committed batch: n feature rows plus the list entries that failed in it.
struct FeatureBatch {
  const float* features = nullptr;  // rows x row_elements
  std::size_t rows = 0;
  std::span<const std::int32_t> labels;  // rows
  std::span<const std::string> paths;    // rows
  std::span<const std::string> failed_paths, failed_reasons;
  std::int64_t entries = 0;  // list entries consumed by this batch (images + failures)
  std::span<const std::int32_t> augment_index = {};  // rows (0 = the original), or empty: all 0
};

class FeatureWriter {
 public:
  // A new file (fails if it exists and !overwrite).
  static FeatureWriter create(const std::filesystem::path& path, FeatureMeta meta, bool overwrite);
  // Reopens an unfinished file made with the same options; drops rows past the last commit.
  // Throws UsageError naming the differing option when `meta` differs from the file's.
  static FeatureWriter resume(const std::filesystem::path& path, const FeatureMeta& meta);

  FeatureWriter(FeatureWriter&&) noexcept;
  FeatureWriter& operator=(FeatureWriter&&) noexcept;
  ~FeatureWriter();

  const FeatureMeta& meta() const;
  // Appends the batch, updates the progress attributes, then flushes: after commit() returns,
  // a SIGKILL leaves a file that holds exactly these rows.
  void commit(const FeatureBatch& batch);
  // Records the machine that computes the next rows: oneDNN's ISA, the f32 algorithm and
  // each layer's implementation. On a file resumed elsewhere both are kept ("avx2,
  // avx512_core_amx"; "direct, winograd"). Returns true when the file now names more than one
  // ISA or algorithm. Written with the next commit.
  bool record_machine(const std::string& cpu_isa, const std::string& algo,
                      const std::string& implementations);
  // Marks the file complete, flushes, closes and fsyncs it.
  void finish();

 private:
  struct Impl;
  explicit FeatureWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Reads a feature file written by tl-extract (complete or not: only committed rows count).
class FeatureReader {
 public:
  explicit FeatureReader(const std::filesystem::path& path);
  const FeatureMeta& meta() const { return meta_; }
  const std::filesystem::path& path() const { return path_; }
  std::size_t rows() const { return static_cast<std::size_t>(meta_.rows_done); }
  std::vector<std::int32_t> labels() const;
  std::vector<std::string> paths() const;
  // 0 for an original row, 1..K for its augmented copies (all 0 for a file without
  // /augment_index, as written before tl-extract --augment existed).
  std::vector<std::int32_t> augment_index() const;
  // (path, reason) of each failed image.
  std::vector<std::pair<std::string, std::string>> failed() const;
  // Rows [start, start + count) as float32 (f16 files are converted).
  std::vector<float> read_rows(std::size_t start, std::size_t count) const;
  void read_rows(std::size_t start, std::size_t count, float* out) const;

 private:
  std::filesystem::path path_;
  h5::File file_;
  h5::Dataset features_;
  FeatureMeta meta_;
};

// "a, b" + "c" -> "a, b, c"; unchanged when the item is already listed.
std::string join_distinct(const std::string& list, const std::string& item);

// Reads a file's metadata (throws Error naming the file when it is not a tlkit feature file).
FeatureMeta read_feature_meta(const h5::File& file);

// The int8 calibration stored in a feature file (--calibration FILE); Error naming the file
// when it has none.
Int8Calibration read_calibration(const std::filesystem::path& file);
// The same, from the int8_* attributes of any object (Error naming it when absent).
Int8Calibration read_calibration_attrs_of(const h5::Object& obj);
void write_calibration(h5::Object& obj, const Int8Calibration& c);

}  // namespace tl
