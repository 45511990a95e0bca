// Where training and prediction read feature rows from. A FeatureSource is any table of rows
// of one stored shape [H, W, C] (NHWC, as tl-extract writes them; [1, 1, C] when extraction
// pooled) with an integer label per row. InMemorySource holds vectors; SubsetSource views
// some rows of another source (a validation split); an HDF5-backed source plugs in the same way.
//
//   tl::InMemorySource all({.h = 7, .w = 7, .c = 512}, std::move(rows), std::move(labels));
//   tl::Split s = tl::stratified_split(all, 0.2, /*seed=*/1);
//   tl::SubsetSource train(all, s.train), val(all, s.val);
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

#include "tl/vgg16_spec.hpp"

namespace tl {

// Batch preparation splits its rows into oneTBB tasks of at least this many bytes: below it,
// waking a worker costs more than the copy (and, on a busy machine, competes with oneDNN's
// OpenMP threads).
inline constexpr size_t kParallelGrainBytes = 256 * 1024;

class FeatureSource {
 public:
  virtual ~FeatureSource() = default;
  virtual size_t rows() const = 0;
  // Shape of one row; n is unused.
  virtual Shape row_shape() const = 0;
  // The row's class index in [0, classes). Called for every row once per training run, so an
  // implementation should keep labels in memory.
  virtual int label(size_t row) const = 0;
  // Copies the given rows, in the given order (any order, repeats allowed), to
  // out[rows.size()][row_size()]. Called from one thread at a time.
  virtual void read(std::span<const size_t> rows, float* out) = 0;

  size_t row_size() const {
    const Shape s = row_shape();
    return static_cast<size_t>(s.h) * s.w * s.c;
  }
};

// Every row of `src` in order, `batch` rows at a time, through one buffer:
// fn(first row, n, rows {n, h, w, c}); fn returning false stops. batch >= 1.
template <typename Fn>
void for_each_batch(FeatureSource& src, size_t batch, Fn&& fn) {
  const size_t total = src.rows();
  std::vector<float> rows(std::min(batch, total) * src.row_size());
  std::vector<size_t> idx;
  for (size_t first = 0; first < total; first += batch) {
    const size_t n = std::min(batch, total - first);
    idx.resize(n);
    std::iota(idx.begin(), idx.end(), first);
    src.read(idx, rows.data());
    if (!fn(first, static_cast<int>(n), static_cast<const float*>(rows.data()))) return;
  }
}

// All labels of a source, in row order.
std::vector<int> labels_of(const FeatureSource& src);

// Rows and labels in memory. read() copies the rows in parallel (oneTBB).
class InMemorySource : public FeatureSource {
 public:
  // data: rows() * row_size floats, row after row; labels: one per row. Throws Error on
  // mismatched sizes or a shape with a side < 1.
  InMemorySource(Shape row_shape, std::vector<float> data, std::vector<int> labels);
  size_t rows() const override { return labels_.size(); }
  Shape row_shape() const override { return shape_; }
  int label(size_t row) const override { return labels_.at(row); }
  void read(std::span<const size_t> rows, float* out) override;
  std::span<const float> data() const { return data_; }

 private:
  Shape shape_;
  std::vector<float> data_;
  std::vector<int> labels_;
};

// Rows `rows` of `base` (which must outlive it), renumbered 0..rows.size()-1.
class SubsetSource : public FeatureSource {
 public:
  SubsetSource(FeatureSource& base, std::vector<size_t> rows);  // Error on an index >= base.rows()
  size_t rows() const override { return rows_.size(); }
  Shape row_shape() const override { return base_->row_shape(); }
  int label(size_t row) const override { return base_->label(rows_.at(row)); }
  void read(std::span<const size_t> rows, float* out) override;

 private:
  FeatureSource* base_;
  std::vector<size_t> rows_;
  std::vector<size_t> mapped_;  // reused by read()
};

// A disjoint split of row indices, each list ascending.
struct Split {
  std::vector<size_t> train{}, val{};
};

// Stratified split: each class with n_c rows gives k_c = round(fraction * n_c) rows to
// validation (half away from zero), clamped to [1, n_c - 1] when n_c >= 2 and fraction > 0,
// so every class with two or more rows appears on both sides and training never loses a class;
// a class with a single row stays in training. Which rows go is drawn per class (in class
// order) by a Fisher-Yates shuffle from mt19937_64(derive_seed(seed, SeedStream::split)).
// fraction in [0, 1), else UsageError.
Split stratified_split(std::span<const int> labels, double fraction, std::uint64_t seed);
Split stratified_split(const FeatureSource& src, double fraction, std::uint64_t seed);

}  // namespace tl
