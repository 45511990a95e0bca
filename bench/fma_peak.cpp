// The machine's AVX-512 FMA peak: independent FMA chains in registers, one per OpenMP
// thread. The ceiling the f32 network is judged against (bench/RESULTS.md).
#include "fma_peak.hpp"

#include <immintrin.h>
#include <omp.h>

#include <chrono>

namespace tl::bench {

__attribute__((target("avx512f"))) static float fma_loop(long iters) {
  // 12 independent accumulators hide the 4-cycle FMA latency on 2 FMA ports.
  __m512 a[12];
  for (int k = 0; k < 12; ++k) a[k] = _mm512_set1_ps(1.0f + k * 1e-3f);
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
  for (long i = 0; i < iters; ++i)
#pragma GCC unroll 12
    for (int k = 0; k < 12; ++k) a[k] = _mm512_fmadd_ps(a[k], m, c);
  __m512 s = a[0];
  for (int k = 1; k < 12; ++k) s = _mm512_add_ps(s, a[k]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, s);  // (_mm512_reduce_add_ps trips -Wuninitialized in GCC 12's header)
  float sum = 0;
  for (float v : lanes) sum += v;
  return sum;
}

double fma_peak_gflops(int threads, double seconds) {
  const long iters = 1 << 22;
  double total = 0;
  volatile float sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
  {
    fma_loop(iters);  // warm-up: clocks up
    long rounds = 0;
    const auto t0 = std::chrono::steady_clock::now();
    double s = 0;
    do {
      sink = sink + fma_loop(iters);
      ++rounds;
      s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } while (s < seconds);
    total += rounds * iters * 12.0 * 16 * 2 / s / 1e9;  // 16 lanes, 2 FLOP per FMA
  }
  return total;
}

}  // namespace tl::bench
