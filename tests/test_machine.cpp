// The machine probe (lib/include/tl/machine.hpp): its parsers of cgroup and Slurm settings on
// hand-written inputs, and what it says about this CPU checked against oneDNN itself. CI runs
// it natively and again under ONEDNN_MAX_CPU_ISA=AVX2 (and AVX512_CORE), where the answers
// change; the checks here hold at every level.
#include <gtest/gtest.h>

#include "test_util.hpp"
#include "tl/machine.hpp"

namespace tl {
namespace {

using namespace machine_detail;

TEST(MachineProbe, CgroupCpuQuota) {
  EXPECT_FALSE(cpu_quota("max 100000"));
  EXPECT_FALSE(cpu_quota(""));
  EXPECT_FALSE(cpu_quota("garbage"));
  EXPECT_DOUBLE_EQ(*cpu_quota("150000 100000\n"), 1.5);
  EXPECT_DOUBLE_EQ(*cpu_quota("200000 100000"), 2.0);
  EXPECT_FALSE(cpu_quota("-1 100000"));  // cgroup v1's "no quota", as joined by the probe
}

TEST(MachineProbe, UsableCpusTakesTheSmallestLimitAndSaysWhich) {
  std::string why;
  EXPECT_EQ(usable_cpus(16, "", std::nullopt, &why), 16);
  EXPECT_EQ(why, "affinity mask 16");
  EXPECT_EQ(usable_cpus(16, "4", std::nullopt, &why), 4);
  EXPECT_HAS(why, "SLURM_CPUS_PER_TASK=4");
  EXPECT_EQ(usable_cpus(16, "32", 2.5, &why), 3);  // a quota of 2.5 CPUs: 3 threads
  EXPECT_HAS(why, "cgroup CPU quota 2.5");
  EXPECT_EQ(usable_cpus(2, "8", 6.0, &why), 2);
  EXPECT_EQ(usable_cpus(4, "junk", 0.2, &why), 1);
  EXPECT_EQ(usable_cpus(0, "", std::nullopt, &why), 1);
}

TEST(MachineProbe, CgroupMemoryLimit) {
  EXPECT_FALSE(memory_limit("max\n"));
  EXPECT_FALSE(memory_limit(""));
  EXPECT_FALSE(memory_limit("9223372036854771712"));  // cgroup v1 without a limit
  EXPECT_EQ(*memory_limit("4294967296\n"), 4294967296ull);
}

TEST(MachineProbe, ProbedOnceAndConsistentWithOneDnn) {
  const Machine& m = machine();
  EXPECT_EQ(&m, &machine());
  EXPECT_FALSE(m.isa.empty());
  EXPECT_HAS(m.onednn, "oneDNN 2.");
  EXPECT_GE(m.cpus, 1);
  EXPECT_GT(m.memory, 0u);
  EXPECT_GT(available_memory(), 0u);
  // Every x86-64 CPU tlkit supports runs f32 and int8 natively.
  EXPECT_TRUE(m.runs(Precision::f32)) << m.f32_direct.impl;
  EXPECT_TRUE(m.runs(Precision::int8)) << m.int8.impl;
  // The defaults and auto choices are things this CPU runs.
  EXPECT_TRUE(m.runs(Precision::f32, m.default_f32_algo()));
  EXPECT_TRUE(m.runs(m.fastest_precision()));
  // VNNI is read from the int8 kernel oneDNN picks, AMX from its ISA.
  EXPECT_EQ(m.vnni, m.int8.impl.find("vnni") != std::string::npos ||
                        m.int8.impl.find("amx") != std::string::npos);
  if (m.amx) {
    EXPECT_TRUE(m.vnni);
  }
  if (m.isa == "avx2") {  // natively or under ONEDNN_MAX_CPU_ISA=AVX2
    EXPECT_FALSE(m.runs(Precision::bf16));
    EXPECT_FALSE(m.f32_winograd.native);                      // oneDNN has none below AVX-512 ...
    EXPECT_TRUE(m.runs(Precision::f32, ConvAlgo::winograd));  // ... tlkit's runs instead
    EXPECT_EQ(&m.kernel(Precision::f32, ConvAlgo::winograd), &m.f32_winograd_tlkit);
    EXPECT_HAS(m.f32_winograd_tlkit.impl, "tlkit winograd F(4x4,3x3) avx2");
    EXPECT_FALSE(m.vnni);
    EXPECT_EQ(m.default_f32_algo(), ConvAlgo::winograd);
  }
  // tlkit's Winograd: AVX2 and up (below: ONEDNN_MAX_CPU_ISA=SSE41 in test-isa-levels.sh).
  EXPECT_EQ(m.runs(Precision::f32, ConvAlgo::winograd_tlkit),
            m.isa.starts_with("avx2") || m.isa.starts_with("avx512"))
      << m.isa;
  EXPECT_HAS(m.describe(), "f32 winograd-tlkit: ");
  EXPECT_HAS(m.describe(), "oneDNN ISA: " + m.isa);
  EXPECT_HAS(m.summary(), m.isa);
}

TEST(MachineProbe, RequireRefusesWhatHasNoNativeKernelNamingTheIsa) {
  const Machine& m = machine();
  EXPECT_NO_THROW(m.require(Precision::f32, ConvAlgo::direct, "--precision"));
  EXPECT_NO_THROW(m.require_training(Precision::f32, "--finetune-precision"));
  int refused = 0;
  for (const auto& [p, a] :
       {std::pair{Precision::bf16, ConvAlgo::direct}, std::pair{Precision::f32, ConvAlgo::winograd},
        std::pair{Precision::f32, ConvAlgo::winograd_tlkit}}) {
    if (m.runs(p, a)) {
      EXPECT_NO_THROW(m.require(p, a, "--precision"));
      continue;
    }
    ++refused;
    try {
      m.require(p, a, "--precision");
      ADD_FAILURE() << "no error for " << to_string(p);
    } catch (const UsageError& e) {
      EXPECT_HAS(e.what(), "--precision");
      EXPECT_HAS(e.what(), m.isa);
      EXPECT_HAS(e.what(), "it runs f32");
    }
  }
  if (!m.bf16_training.native) {
    ++refused;
    EXPECT_THROW(m.require_training(Precision::bf16, "--finetune-precision"), UsageError);
  }
  if (refused == 0)
    GTEST_SKIP() << "oneDNN ISA " << m.isa
                 << " runs bf16 and f32 Winograd natively: no refusal to test here (CI runs "
                    "this again under ONEDNN_MAX_CPU_ISA=AVX2)";
}

}  // namespace
}  // namespace tl
