// In-memory and subset feature sources; the stratified split.
#include "tl/feature_source.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include <fmt/format.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "tl/error.hpp"
#include "tl/seeded_random.hpp"

namespace tl {

std::vector<int> labels_of(const FeatureSource& src) {
  std::vector<int> v(src.rows());
  for (size_t i = 0; i < v.size(); ++i) v[i] = src.label(i);
  return v;
}

InMemorySource::InMemorySource(Shape row_shape, std::vector<float> data, std::vector<int> labels)
    : shape_(row_shape), data_(std::move(data)), labels_(std::move(labels)) {
  if (shape_.h < 1 || shape_.w < 1 || shape_.c < 1)
    throw Error(fmt::format("feature row shape [{}, {}, {}]: every side must be >= 1", shape_.h,
                            shape_.w, shape_.c));
  if (data_.size() != labels_.size() * row_size())
    throw Error(fmt::format("in-memory features: {} floats for {} rows of {} floats", data_.size(),
                            labels_.size(), row_size()));
}

void InMemorySource::read(std::span<const size_t> rows, float* out) {
  const size_t rs = row_size();
  for (size_t r : rows)
    if (r >= labels_.size())
      throw Error(fmt::format("in-memory features: row {} of {}", r, labels_.size()));
  // Independent row copies, so the result does not depend on the threads; tasks of at least
  // kParallelGrainBytes, so that a batch of small rows is copied inline without waking workers.
  const size_t grain = std::max<size_t>(1, kParallelGrainBytes / (rs * sizeof(float)));
  tbb::parallel_for(tbb::blocked_range<size_t>(0, rows.size(), grain), [&](const auto& range) {
    for (size_t i = range.begin(); i != range.end(); ++i)
      std::memcpy(out + i * rs, data_.data() + rows[i] * rs, rs * sizeof(float));
  });
}

SubsetSource::SubsetSource(FeatureSource& base, std::vector<size_t> rows)
    : base_(&base), rows_(std::move(rows)) {
  for (size_t r : rows_)
    if (r >= base.rows())
      throw Error(fmt::format("subset: row {} of a source with {} rows", r, base.rows()));
}

void SubsetSource::read(std::span<const size_t> rows, float* out) {
  mapped_.resize(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) mapped_[i] = rows_.at(rows[i]);
  base_->read(mapped_, out);
}

Split stratified_split(std::span<const int> labels, double fraction, std::uint64_t seed) {
  if (!(fraction >= 0.0 && fraction < 1.0))
    throw UsageError(fmt::format("validation fraction {} not in [0, 1)", fraction));
  int classes = 0;
  for (int y : labels) {
    if (y < 0) throw Error(fmt::format("negative label {}", y));
    classes = std::max(classes, y + 1);
  }
  std::vector<std::vector<size_t>> by_class(classes);
  for (size_t i = 0; i < labels.size(); ++i) by_class[labels[i]].push_back(i);

  std::mt19937_64 rng(derive_seed(seed, SeedStream::split));
  Split s;
  for (auto& rows : by_class) {
    const long long n = static_cast<long long>(rows.size());
    long long k = std::llround(fraction * static_cast<double>(n));
    if (fraction > 0 && n >= 2) k = std::clamp(k, 1LL, n - 1);
    if (n < 2) k = 0;
    shuffle(rng, std::span(rows));
    s.val.insert(s.val.end(), rows.begin(), rows.begin() + k);
    s.train.insert(s.train.end(), rows.begin() + k, rows.end());
  }
  std::sort(s.train.begin(), s.train.end());
  std::sort(s.val.begin(), s.val.end());
  return s;
}

Split stratified_split(const FeatureSource& src, double fraction, std::uint64_t seed) {
  return stratified_split(labels_of(src), fraction, seed);
}

}  // namespace tl
