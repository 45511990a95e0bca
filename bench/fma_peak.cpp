// The f32 FMA peak: 12 independent FMA chains in registers per thread, in assembly so that the
// compiler can neither fold, hoist nor spill them. The ceiling the f32 network is judged
// against (bench/RESULTS.md).
#include "fma_peak.hpp"

#include <immintrin.h>
#include <omp.h>

#include <chrono>

namespace tl::bench {

const char* to_string(FmaIsa isa) {
  return isa == FmaIsa::avx512 ? "AVX-512" : "AVX2+FMA";
}

bool cpu_has(FmaIsa isa) {
  __builtin_cpu_init();
  return isa == FmaIsa::avx512 ? __builtin_cpu_supports("avx512f")
                               : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

namespace {

// 12 x 16 lanes x 2 FLOP per iteration.
__attribute__((target("avx512f"), noinline)) float fma_loop_avx512(long iters, float start) {
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

// 12 x 8 lanes x 2 FLOP per iteration (AVX2 has 16 ymm registers: 12 chains + 3 operands).
__attribute__((target("avx2,fma"), noinline)) float fma_loop_avx2(long iters, float start) {
  __m256 acc = _mm256_set1_ps(start);
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
  asm volatile(
      "vmovaps %[a], %%ymm4\n\t vmovaps %[a], %%ymm5\n\t vmovaps %[a], %%ymm6\n\t"
      "vmovaps %[a], %%ymm7\n\t vmovaps %[a], %%ymm8\n\t vmovaps %[a], %%ymm9\n\t"
      "vmovaps %[a], %%ymm10\n\t vmovaps %[a], %%ymm11\n\t vmovaps %[a], %%ymm12\n\t"
      "vmovaps %[a], %%ymm13\n\t vmovaps %[a], %%ymm14\n\t vmovaps %[a], %%ymm15\n\t"
      "1:\n\t"
      "vfmadd231ps %[m], %[c], %%ymm4\n\t vfmadd231ps %[m], %[c], %%ymm5\n\t"
      "vfmadd231ps %[m], %[c], %%ymm6\n\t vfmadd231ps %[m], %[c], %%ymm7\n\t"
      "vfmadd231ps %[m], %[c], %%ymm8\n\t vfmadd231ps %[m], %[c], %%ymm9\n\t"
      "vfmadd231ps %[m], %[c], %%ymm10\n\t vfmadd231ps %[m], %[c], %%ymm11\n\t"
      "vfmadd231ps %[m], %[c], %%ymm12\n\t vfmadd231ps %[m], %[c], %%ymm13\n\t"
      "vfmadd231ps %[m], %[c], %%ymm14\n\t vfmadd231ps %[m], %[c], %%ymm15\n\t"
      "dec %[n]\n\t jnz 1b\n\t"
      "vaddps %%ymm4, %%ymm15, %[a]\n\t"
      : [a] "+x"(acc), [n] "+r"(iters)
      : [m] "x"(m), [c] "x"(c)
      : "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
        "xmm15", "cc");
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  return lanes[0];
}

}  // namespace

double fma_peak_gflops(FmaIsa isa, int threads, double seconds) {
  const long iters = 1 << 20;
  const double flop_per_iter = 12.0 * (isa == FmaIsa::avx512 ? 16 : 8) * 2;  // 2 FLOP per FMA
  auto loop = isa == FmaIsa::avx512 ? fma_loop_avx512 : fma_loop_avx2;
  double total = 0;
  volatile float sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
  {
    sink = sink + loop(iters, 1.0f);  // warm-up: clocks up
    long rounds = 0;
    const auto t0 = std::chrono::steady_clock::now();
    double s = 0;
    do {
      sink = sink + loop(iters, 1.0f + static_cast<float>(rounds) * 1e-7f);
      ++rounds;
      s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } while (s < seconds);
    total += rounds * iters * flop_per_iter / s / 1e9;
  }
  return total;
}

}  // namespace tl::bench
