// Training and prediction data straight from tl-extract's feature files.
//
//   tl::FeatureFileSource src({"train.h5"}, /*memory_limit=*/8ull << 30);
//   src.in_memory();          // true: loaded once; false: streamed from HDF5 row by row
//   tl::train(head, src, ...);
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "tl/feature_file.hpp"
#include "tl/feature_source.hpp"

namespace tl {

// The rows of one or more feature files, concatenated in the order given. All files must
// come from the same extraction settings (layer, row shape, pooling, preprocessing, size,
// weights) and have the same classes; the error names the file and the difference. Shard
// files (tl-extract --shard) must be the whole set 0..N-1 of one image list, in order.
// Rows whose features are NaN or Inf are refused (Error naming the file and the image).
// A folder stands for its shard files (tl-extract --slurm-array: shard-K-of-N.h5), checked as
// tl-merge checks them; a merged file (virtual or copied) reads as a single-machine file.
class FeatureFileSource : public FeatureSource {
 public:
  // Files whose features fit in `memory_limit` bytes (as float32) are loaded once; larger
  // ones are streamed: each read() fetches its rows from HDF5 through a bounded chunk cache.
  FeatureFileSource(const std::vector<std::filesystem::path>& files, std::uint64_t memory_limit);
  ~FeatureFileSource() override;

  size_t rows() const override { return labels_.size(); }
  Shape row_shape() const override { return shape_; }
  int label(size_t row) const override { return labels_.at(row); }
  void read(std::span<const size_t> rows, float* out) override;

  bool in_memory() const { return !data_.empty() || rows() == 0; }
  const FeatureMeta& meta() const { return meta_; }  // the first file's
  const std::vector<std::string>& classes() const { return meta_.classes; }
  const std::vector<std::string>& paths() const { return paths_; }
  const std::vector<int>& labels() const { return labels_; }
  // Per row: 0 for an image's own row, k for its k-th augmented copy (tl-extract --augment).
  const std::vector<std::int32_t>& augment_index() const { return augment_index_; }
  // The rows with augment_index 0 (one per image), ascending.
  std::vector<size_t> original_rows() const;
  bool has_augmented_rows() const { return original_rows_count_ != rows(); }
  // Rows that have a label (>= 0).
  bool all_labeled() const;
  std::string describe() const;  // "2 files, 4000 rows of 2x2x512, in memory (62.5 MiB)"

 private:
  void check_finite(const float* row, size_t global_row) const;
  void check_shard_set() const;
  std::vector<std::filesystem::path> files_;
  std::vector<std::unique_ptr<FeatureReader>> readers_;
  std::vector<size_t> offsets_;  // first global row of each file, plus the total
  FeatureMeta meta_;
  Shape shape_{};
  std::vector<int> labels_;
  std::vector<std::string> paths_;
  std::vector<std::int32_t> augment_index_;
  size_t original_rows_count_ = 0;
  std::vector<float> data_;  // all rows when in memory
  std::vector<float> run_;   // scratch for streamed reads
};

// The stratified split (stratified_split) drawn over images, not rows: the images (rows with
// augment_index 0) are split as stratified_split splits rows; validation gets the originals
// of its images only, training every row of the others (originals and their copies). No
// image has a copy in training and its original in validation. Without augmented rows this is
// stratified_split(src, fraction, seed).
Split split_by_image(const FeatureFileSource& src, double fraction, std::uint64_t seed);

// Each folder replaced by its shard files 0..N-1 in order (check_shard_folder: Error naming
// missing, unfinished, foreign or duplicated shards); files are kept as given.
std::vector<std::filesystem::path> expand_shard_folders(
    const std::vector<std::filesystem::path>& inputs);

// Shape of one stored row as the head sees it: [H, W, C], or [1, 1, C] for pooled files.
Shape row_shape_of(const FeatureMeta& m);

}  // namespace tl
