// Global pooling of one stored row over H and W (see global_pool.hpp for why by hand).
#include "tl/global_pool.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "tl/error.hpp"

namespace tl {

Pool parse_pool(std::string_view s) {
  if (s == "none" || s == "flatten") return Pool::none;
  if (s == "avg") return Pool::avg;
  if (s == "max") return Pool::max;
  throw UsageError(fmt::format(
      "unknown pooling '{}' (accepted: none, avg, max; or as a head names them: flatten, avg, max)",
      s));
}

std::string_view to_string(Pool p) {
  switch (p) {
    case Pool::none:
      return "none";
    case Pool::avg:
      return "avg";
    case Pool::max:
      return "max";
  }
  return "?";
}

long long pooled_size(Pool p, int h, int w, int c) {
  return p == Pool::none ? 1LL * h * w * c : c;
}

// Channels reduced at once: their double accumulators stay in registers and L1.
constexpr int kChunk = 64;

void global_pool(Pool p, const float* row, int h, int w, int c, float* out) {
  const long long hw = 1LL * h * w;
  switch (p) {
    case Pool::none:  // [h, w, c] -> [h*w*c], Keras's Flatten order is the stored order
      std::memcpy(out, row, hw * c * sizeof(float));
      return;
    case Pool::avg:  // [h, w, c] -> [c]: each channel summed in (h, w) order in double
      for (int k0 = 0; k0 < c; k0 += kChunk) {
        const int n = std::min(kChunk, c - k0);
        double acc[kChunk] = {};
        for (long long i = 0; i < hw; ++i)
          for (int k = 0; k < n; ++k) acc[k] += row[i * c + k0 + k];
        for (int k = 0; k < n; ++k)
          out[k0 + k] = static_cast<float>(acc[k] / static_cast<double>(hw));
      }
      return;
    case Pool::max:  // [h, w, c] -> [c]; a NaN is passed over, as std::max(acc, NaN) keeps acc
      for (int k0 = 0; k0 < c; k0 += kChunk) {
        const int n = std::min(kChunk, c - k0);
        double acc[kChunk];
        std::fill(acc, acc + n, -INFINITY);
        for (long long i = 0; i < hw; ++i)
          for (int k = 0; k < n; ++k)
            acc[k] = std::max(acc[k], static_cast<double>(row[i * c + k0 + k]));
        for (int k = 0; k < n; ++k) out[k0 + k] = static_cast<float>(acc[k]);
      }
      return;
  }
}

void global_pool_backward(Pool p, const float* row, int h, int w, int c, const float* diff_out,
                          float* diff_row) {
  const long long hw = 1LL * h * w;
  switch (p) {
    case Pool::none:
      std::memcpy(diff_row, diff_out, hw * c * sizeof(float));
      return;
    case Pool::avg:  // [c] -> [h, w, c]
      for (long long i = 0; i < hw; ++i)
        for (int k = 0; k < c; ++k) diff_row[i * c + k] = diff_out[k] / static_cast<float>(hw);
      return;
    case Pool::max:  // [c] -> [h, w, c]: all to the first maximal position of each channel
      std::fill(diff_row, diff_row + hw * c, 0.f);
      for (int k = 0; k < c; ++k) {
        long long best = 0;
        for (long long i = 1; i < hw; ++i)
          if (row[i * c + k] > row[best * c + k]) best = i;
        diff_row[best * c + k] = diff_out[k];
      }
      return;
  }
}

}  // namespace tl
