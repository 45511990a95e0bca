// The machine's AVX-512 FMA peak: independent FMA chains in registers, one per OpenMP
// thread. The ceiling the f32 network is judged against (bench/RESULTS.md).
#include "fma_peak.hpp"

#include <immintrin.h>
#include <omp.h>

#include <chrono>

namespace tl::bench {

// 12 independent FMA chains in zmm registers, written in assembly so that the compiler can
// neither fold, hoist nor spill them: 12 x 16 lanes x 2 FLOP per iteration.
__attribute__((target("avx512f"), noinline)) static float fma_loop(long iters, float start) {
  __m512 acc = _mm512_set1_ps(start);
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
  asm volatile(
      "vmovaps %[a], %%zmm4\n\t vmovaps %[a], %%zmm5\n\t vmovaps %[a], %%zmm6\n\t"
      "vmovaps %[a], %%zmm7\n\t vmovaps %[a], %%zmm8\n\t vmovaps %[a], %%zmm9\n\t"
      "vmovaps %[a], %%zmm10\n\t vmovaps %[a], %%zmm11\n\t vmovaps %[a], %%zmm12\n\t"
      "vmovaps %[a], %%zmm13\n\t vmovaps %[a], %%zmm14\n\t vmovaps %[a], %%zmm15\n\t"
      "1:\n\t"
      "vfmadd231ps %[m], %[c], %%zmm4\n\t vfmadd231ps %[m], %[c], %%zmm5\n\t"
      "vfmadd231ps %[m], %[c], %%zmm6\n\t vfmadd231ps %[m], %[c], %%zmm7\n\t"
      "vfmadd231ps %[m], %[c], %%zmm8\n\t vfmadd231ps %[m], %[c], %%zmm9\n\t"
      "vfmadd231ps %[m], %[c], %%zmm10\n\t vfmadd231ps %[m], %[c], %%zmm11\n\t"
      "vfmadd231ps %[m], %[c], %%zmm12\n\t vfmadd231ps %[m], %[c], %%zmm13\n\t"
      "vfmadd231ps %[m], %[c], %%zmm14\n\t vfmadd231ps %[m], %[c], %%zmm15\n\t"
      "dec %[n]\n\t jnz 1b\n\t"
      "vaddps %%zmm4, %%zmm15, %[a]\n\t"
      : [a] "+v"(acc), [n] "+r"(iters)
      : [m] "v"(m), [c] "v"(c)
      : "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", "zmm9", "zmm10", "zmm11", "zmm12", "zmm13", "zmm14",
        "zmm15", "cc");
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, acc);
  return lanes[0];
}

double fma_peak_gflops(int threads, double seconds) {
  const long iters = 1 << 20;
  double total = 0;
  volatile float sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
  {
    sink = sink + fma_loop(iters, 1.0f);  // warm-up: clocks up
    long rounds = 0;
    const auto t0 = std::chrono::steady_clock::now();
    double s = 0;
    do {
      sink = sink + fma_loop(iters, 1.0f + static_cast<float>(rounds) * 1e-7f);
      ++rounds;
      s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } while (s < seconds);
    total += rounds * iters * 12.0 * 16 * 2 / s / 1e9;  // 16 lanes, 2 FLOP per FMA
  }
  return total;
}

}  // namespace tl::bench
