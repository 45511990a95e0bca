// What this machine can run, probed once per process and asked of oneDNN rather than guessed:
// oneDNN's effective CPU ISA (which honours ONEDNN_MAX_CPU_ISA), for each precision and f32
// convolution algorithm whether oneDNN has a native (non-reference) kernel here and which,
// whether int8 runs on VNNI or AMX, and the CPUs and memory this process may use.
//
//   const tl::Machine& m = tl::machine();
//   m.require(tl::Precision::bf16, tl::ConvAlgo::direct, "--precision");  // UsageError if not
//   tl::ConvAlgo algo = m.default_f32_algo();  // winograd where oneDNN has it, else direct
//   std::cout << m.describe();                 // what --version prints
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tl/precision.hpp"

namespace tl {

// One (precision, algorithm) pair as oneDNN would run VGG16's convolutions here.
struct KernelProbe {
  bool native = false;  // oneDNN has a non-reference implementation for every conv layer
  std::string impl;     // its implementation names ("first layer" noted), or why there is none
};

struct Machine {
  std::string onednn;       // "oneDNN 2.6.3 (cpu runtime OpenMP)"
  std::string isa;          // oneDNN's effective ISA: "avx2", "avx512_core_amx", ...
  std::string cpu;          // the processor's model name
  std::string flags;        // the processor's own vector flags (not capped): "avx2 fma avx512f ..."
  bool isa_capped = false;  // ONEDNN_MAX_CPU_ISA (or DNNL_MAX_CPU_ISA) is set
  bool vnni = false;        // int8 convolutions multiply-add with VNNI (or AMX) instructions
  bool amx = false;         // oneDNN uses AMX tiles here
  int cpus = 1;             // CPUs this process may use
  std::string cpus_source;  // how cpus was found: "affinity mask 16, SLURM_CPUS_PER_TASK=4"
  std::uint64_t memory = 0;   // bytes this process may use: the cgroup limit, else physical
  std::string memory_source;  // "cgroup memory.max" or "physical"
  KernelProbe f32_direct, f32_winograd, bf16, int8;
  // tlkit's own f32 Winograd (tl/winograd.hpp): native from AVX2 up.
  KernelProbe f32_winograd_tlkit;
  KernelProbe bf16_training;  // bf16 convolutions forward + backward (tl-train --finetune)

  // The probe of the convolutions `p` runs (`a` matters for f32 only).
  const KernelProbe& kernel(Precision p, ConvAlgo a = ConvAlgo::direct) const;
  bool runs(Precision p, ConvAlgo a = ConvAlgo::direct) const { return kernel(p, a).native; }
  // Throws UsageError naming `option`, this ISA and what runs here instead when oneDNN has no
  // native kernel for (p, a).
  void require(Precision p, ConvAlgo a, std::string_view option) const;
  // What a net of precision `p` asked for `--algo a` runs (--algo changes f32 only): require()
  // of it, naming --algo for f32 Winograd and --precision otherwise.
  void require_net(Precision p, ConvAlgo a) const;
  // The same for fine-tuning's convolutions (forward and backward): f32 always runs; bf16
  // needs bf16_training (UsageError naming `option` and the ISA).
  void require_training(Precision p, std::string_view option) const;
  // The f32 default: Winograd, oneDNN's where it has one (AVX-512), else tlkit's (AVX2); direct
  // below AVX2.
  ConvAlgo default_f32_algo() const;
  // --precision auto: the fastest precision with a native kernel here whose cost stays
  // small: int8 where it runs on VNNI or AMX (demo head -0.8 points), else bf16 where the CPU
  // has bf16 instructions (avx512_core's emulated bf16 is 5x slower than f32), else f32.
  // int8 without VNNI is 1.9x f32 on AVX2 but cost the demo head 4 points (7-bit weights),
  // so auto leaves it to an explicit --precision int8 (bench/RESULTS.md).
  Precision fastest_precision() const;
  // int8 without VNNI multiplies u8 x s8 pairs into saturating s16 sums (vpmaddubsw):
  // weights are then quantised to 7 bits (-63..63) so that no pair can saturate.
  bool int8_seven_bit_weights() const { return !vnni; }
  // What it runs: one line ("oneDNN 2.6.3 (OpenMP), ISA avx2, 2 CPUs, 23.4 GiB").
  std::string summary() const;
  // Everything above, one item a line (--version).
  std::string describe() const;
};

// Probed on the first call (thread-safe), then the same object for the life of the process.
const Machine& machine();

// Memory a new allocation can get now without swapping: MemAvailable, bounded by what the
// cgroup still allows. 0 when unknown.
std::uint64_t available_memory();

// The pure parts of the probe, for tests.
namespace machine_detail {
// cgroup v2 "cpu.max" ("max 100000" or "150000 100000") -> CPUs (1.5), nullopt when unlimited.
std::optional<double> cpu_quota(std::string_view cpu_max);
// min(affinity, SLURM_CPUS_PER_TASK, ceil(quota)), at least 1; `source` says which applied.
int usable_cpus(int affinity, std::string_view slurm_cpus_per_task, std::optional<double> quota,
                std::string* source);
// cgroup v2 "memory.max" ("max" or bytes) or v1 limit_in_bytes -> bytes, nullopt when none.
std::optional<std::uint64_t> memory_limit(std::string_view text);
}  // namespace machine_detail

}  // namespace tl
