// Reproducible random numbers for training: std::mt19937_64 (whose output sequence the C++
// standard fixes) plus our own conversions, because std::uniform_real_distribution and
// std::uniform_int_distribution are implementation-defined and could change with the library.
//
//   std::mt19937_64 rng(tl::derive_seed(seed, tl::SeedStream::shuffle));
//   double u = tl::uniform01(rng);            // [0, 1), 53 random bits
//   tl::shuffle(rng, std::span(indices));     // Fisher-Yates, same order on every platform
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <utility>

namespace tl {

// Independent streams drawn from one user seed, so that e.g. changing the dropout rate does
// not change the shuffling order.
enum class SeedStream : std::uint64_t { init = 1, shuffle = 2, dropout = 3, split = 4 };

// splitmix64 of (seed, stream): well-mixed, distinct seeds for each stream.
inline std::uint64_t derive_seed(std::uint64_t seed, SeedStream stream) {
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ull * (static_cast<std::uint64_t>(stream) + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [0, 1) from the top 53 bits of one draw.
inline double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

// Uniform integer in [0, n), n >= 1, without modulo bias (rejection of the short last range).
inline std::uint64_t uniform_below(std::mt19937_64& rng, std::uint64_t n) {
  const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;  // a multiple of n
  std::uint64_t r;
  do r = rng();
  while (r >= limit);
  return r % n;
}

// Fisher-Yates (Durstenfeld): for i = n-1 .. 1 swap v[i] with v[uniform_below(i + 1)].
template <typename T>
void shuffle(std::mt19937_64& rng, std::span<T> v) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[uniform_below(rng, i)]);
}

}  // namespace tl
