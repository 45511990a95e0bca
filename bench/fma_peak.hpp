// The machine's f32 FMA peak, the ceiling the f32 network is judged against (bench/RESULTS.md):
// independent FMA chains in registers, one per OpenMP thread, for AVX2+FMA (8 lanes) or
// AVX-512 (16 lanes), picked at run time.
//
//   if (tl::bench::cpu_has(tl::bench::FmaIsa::avx2))
//     double g = tl::bench::fma_peak_gflops(tl::bench::FmaIsa::avx2, 2);
#pragma once

namespace tl::bench {

enum class FmaIsa { avx2, avx512 };
const char* to_string(FmaIsa isa);  // "AVX2+FMA", "AVX-512"
// The CPU (not oneDNN's cap) has the instructions.
bool cpu_has(FmaIsa isa);
// Measured f32 FMA throughput in GFLOP/s with `threads` OpenMP threads; the CPU must have
// `isa` (cpu_has).
double fma_peak_gflops(FmaIsa isa, int threads, double seconds = 0.5);

}  // namespace tl::bench
