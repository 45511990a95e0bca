#include "tl/feature_file_source.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "tl/error.hpp"
#include "tl/hdf5_guard.hpp"
#include "tl/merge.hpp"

namespace tl {

Shape row_shape_of(const FeatureMeta& m) {
  const auto& s = m.feature_shape;
  if (s.size() == 3)
    return {1, static_cast<int>(s[0]), static_cast<int>(s[1]), static_cast<int>(s[2])};
  if (s.size() == 1) return {1, 1, 1, static_cast<int>(s[0])};
  throw Error(fmt::format("feature rows of rank {} (expected [H, W, C] or [C])", s.size()));
}

namespace {

// What must agree between files that are trained on together.
std::string mismatch(const FeatureMeta& a, const FeatureMeta& b) {
  if (a.layer != b.layer) return fmt::format("layer {} vs {}", a.layer, b.layer);
  if (a.feature_shape != b.feature_shape)
    return fmt::format("row shape {} vs {}", fmt::join(a.feature_shape, "x"),
                       fmt::join(b.feature_shape, "x"));
  if (a.pool != b.pool) return fmt::format("pool {} vs {}", to_string(a.pool), to_string(b.pool));
  if (a.preprocess != b.preprocess)
    return fmt::format("preprocess {} vs {}", to_string(a.preprocess), to_string(b.preprocess));
  if (a.input_height != b.input_height || a.input_width != b.input_width)
    return fmt::format("size {}x{} vs {}x{}", a.input_height, a.input_width, b.input_height,
                       b.input_width);
  if (a.weights_sha256 != b.weights_sha256 || a.weights != b.weights)
    return fmt::format("weights {} vs {}", a.weights, b.weights);
  if (a.classes != b.classes)
    return fmt::format("classes [{}] vs [{}]", fmt::join(a.classes, ", "),
                       fmt::join(b.classes, ", "));
  return "";
}

}  // namespace

std::vector<std::filesystem::path> expand_shard_folders(
    const std::vector<std::filesystem::path>& inputs) {
  std::vector<std::filesystem::path> files;
  for (const auto& in : inputs) {
    std::error_code ec;
    if (!std::filesystem::is_directory(in, ec)) {
      files.push_back(in);
      continue;
    }
    const ShardSet set = check_shard_folder(in);
    files.insert(files.end(), set.files.begin(), set.files.end());
  }
  return files;
}

FeatureFileSource::FeatureFileSource(const std::vector<std::filesystem::path>& inputs,
                                     std::uint64_t memory_limit)
    : files_(expand_shard_folders(inputs)) {
  if (files_.empty()) throw UsageError("no feature file given");
  const auto& files = files_;
  offsets_.push_back(0);
  for (const auto& f : files) {
    read_in_child_first(f, [&] {  // a file that crashes HDF5 is refused, never read here
      const FeatureReader probe(f);
      probe.labels();
      probe.paths();
      probe.augment_index();
      probe.failed();
    });
    auto r = std::make_unique<FeatureReader>(f);
    if (readers_.empty()) {
      meta_ = r->meta();
      shape_ = row_shape_of(meta_);
    } else if (const auto d = mismatch(meta_, r->meta()); !d.empty()) {
      throw Error(fmt::format("feature file '{}' does not match '{}': {}", f.string(),
                              files.front().string(), d));
    }
    if (!r->meta().complete)
      throw Error(
          fmt::format("feature file '{}' is unfinished ({} of {} images done): run the "
                      "same tl-extract command again to complete it",
                      f.string(), r->meta().entries_done, r->meta().entries_total));
    const auto l = r->labels();
    labels_.insert(labels_.end(), l.begin(), l.end());
    const auto p = r->paths();
    paths_.insert(paths_.end(), p.begin(), p.end());
    const auto a = r->augment_index();
    for (size_t i = 0; i < a.size(); ++i) {  // copy k follows copy k-1 of the same image
      if (a[i] != 0 && (i == 0 || a[i - 1] != a[i] - 1 || p[i - 1] != p[i]))
        throw Error(fmt::format(
            "feature file '{}': row {} ('{}') is augmented copy {} but does not follow copy {} "
            "of the same image",
            f.string(), i, p[i], a[i], a[i] - 1));
      augment_index_.push_back(a[i]);
      original_rows_count_ += a[i] == 0;
    }
    offsets_.push_back(labels_.size());
    readers_.push_back(std::move(r));
  }
  check_shard_set();
  if (rows() == 0) return;
  const std::uint64_t bytes = rows() * row_size() * sizeof(float);
  if (bytes <= memory_limit) {
    data_.resize(rows() * row_size());
    for (size_t f = 0; f < readers_.size(); ++f) {
      const size_t n = offsets_[f + 1] - offsets_[f];
      readers_[f]->read_rows(0, n, &data_[offsets_[f] * row_size()]);
    }
    for (size_t r = 0; r < rows(); ++r) check_finite(&data_[r * row_size()], r);
  }
}

FeatureFileSource::~FeatureFileSource() = default;

void FeatureFileSource::check_shard_set() const {
  // Shards of one extraction must come all together, once each, in shard order: then their
  // rows are exactly a single-machine run's rows.
  const int n = readers_.front()->meta().shard_count;
  bool any = false;
  for (const auto& r : readers_) any = any || r->meta().shard_count > 1;
  if (!any) return;
  for (size_t i = 1; i < readers_.size(); ++i)
    if (const auto d = readers_.front()->meta().augment.difference(readers_[i]->meta().augment);
        !d.empty())
      throw Error(fmt::format("shard file '{}' was augmented otherwise than '{}' ({})",
                              files_[i].string(), files_.front().string(), d));
  std::vector<std::string> got;
  for (size_t i = 0; i < readers_.size(); ++i) {
    const auto& m = readers_[i]->meta();
    got.push_back(fmt::format("{}/{}", m.shard_index, m.shard_count));
    if (m.list_fingerprint != readers_.front()->meta().list_fingerprint)
      throw Error(fmt::format("feature file '{}' is a shard of another image list than '{}'",
                              files_[i].string(), files_.front().string()));
  }
  bool ok = static_cast<int>(readers_.size()) == n;
  for (size_t i = 0; ok && i < readers_.size(); ++i)
    ok = readers_[i]->meta().shard_count == n &&
         readers_[i]->meta().shard_index == static_cast<int>(i);
  if (!ok)
    throw Error(
        fmt::format("shard files must be given all together, once each, in order "
                    "(shards 0/{0} .. {1}/{0}); got shards {2}",
                    n, n - 1, fmt::join(got, ", ")));
}

std::vector<size_t> FeatureFileSource::original_rows() const {
  std::vector<size_t> rows;
  rows.reserve(original_rows_count_);
  for (size_t r = 0; r < augment_index_.size(); ++r)
    if (augment_index_[r] == 0) rows.push_back(r);
  return rows;
}

Split split_by_image(const FeatureFileSource& src, double fraction, std::uint64_t seed) {
  const std::vector<size_t> originals = src.original_rows();
  std::vector<int> labels(originals.size());
  for (size_t i = 0; i < originals.size(); ++i) labels[i] = src.label(originals[i]);
  const Split images = stratified_split(labels, fraction, seed);  // indices into originals
  Split s;
  for (size_t i : images.val) s.val.push_back(originals[i]);
  for (size_t i : images.train) {  // the image's row and every copy after it
    const size_t end = i + 1 < originals.size() ? originals[i + 1] : src.rows();
    for (size_t r = originals[i]; r < end; ++r) s.train.push_back(r);
  }
  return s;
}

bool FeatureFileSource::all_labeled() const {
  return std::all_of(labels_.begin(), labels_.end(), [](int l) { return l >= 0; });
}

std::string FeatureFileSource::describe() const {
  const double mib = static_cast<double>(rows()) * row_size() * sizeof(float) / (1 << 20);
  return fmt::format("{} file{}, {} rows of {}, {} ({:.1f} MiB as float32)", files_.size(),
                     files_.size() == 1 ? "" : "s", rows(), fmt::join(meta_.feature_shape, "x"),
                     in_memory() ? "loaded in memory" : "streamed from HDF5", mib);
}

void FeatureFileSource::check_finite(const float* row, size_t global_row) const {
  for (size_t k = 0; k < row_size(); ++k)
    if (!std::isfinite(row[k])) {
      const size_t f =
          std::upper_bound(offsets_.begin(), offsets_.end(), global_row) - offsets_.begin() - 1;
      throw Error(fmt::format("feature file '{}': row {} ('{}') holds NaN or Inf",
                              files_[f].string(), global_row - offsets_[f], paths_[global_row]));
    }
}

void FeatureFileSource::read(std::span<const size_t> rows, float* out) {
  const size_t rs = row_size();
  if (!data_.empty()) {
    for (size_t i = 0; i < rows.size(); ++i) std::copy_n(&data_.at(rows[i] * rs), rs, out + i * rs);
    return;
  }
  // Streamed: read runs of consecutive rows in file order, then place them.
  std::vector<size_t> order(rows.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rows[a] < rows[b]; });
  for (size_t i = 0; i < order.size();) {
    const size_t first = rows[order[i]];
    if (first >= this->rows()) throw Error(fmt::format("row {} out of range", first));
    const size_t f =
        std::upper_bound(offsets_.begin(), offsets_.end(), first) - offsets_.begin() - 1;
    size_t j = i + 1;
    while (j < order.size() && rows[order[j]] <= rows[order[j - 1]] + 1 &&
           rows[order[j]] < offsets_[f + 1])
      ++j;
    const size_t count = rows[order[j - 1]] - first + 1;
    run_.resize(count * rs);
    readers_[f]->read_rows(first - offsets_[f], count, run_.data());
    for (size_t k = i; k < j; ++k) {
      const float* src = &run_[(rows[order[k]] - first) * rs];
      check_finite(src, rows[order[k]]);
      std::copy_n(src, rs, out + order[k] * rs);
    }
    i = j;
  }
}

}  // namespace tl
