#pragma once
namespace tl::bench {
// Measured AVX-512 f32 FMA throughput in GFLOP/s with `threads` OpenMP threads.
double fma_peak_gflops(int threads, double seconds = 0.5);
}  // namespace tl::bench
