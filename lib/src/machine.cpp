// The machine probe: oneDNN is asked (a small primitive descriptor per precision and
// algorithm, its implementation name read back); the CPUs and memory come from the affinity
// mask, Slurm's environment and the process's cgroup.
#include "tl/machine.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.hpp>

#include "tl/error.hpp"
#include "tl/onednn.hpp"
#include "tl/winograd.hpp"

namespace tl {

namespace machine_detail {

std::optional<double> cpu_quota(std::string_view cpu_max) {
  std::istringstream in{std::string(cpu_max)};
  std::string quota;
  double period = 0;
  if (!(in >> quota >> period) || quota == "max" || period <= 0) return std::nullopt;
  char* end = nullptr;
  const double q = std::strtod(quota.c_str(), &end);
  if (end == quota.c_str() || *end != '\0' || q <= 0) return std::nullopt;
  return q / period;
}

int usable_cpus(int affinity, std::string_view slurm_cpus_per_task, std::optional<double> quota,
                std::string* source) {
  int n = std::max(affinity, 1);
  std::string why = fmt::format("affinity mask {}", affinity);
  if (!slurm_cpus_per_task.empty()) {
    const int k = std::atoi(std::string(slurm_cpus_per_task).c_str());
    if (k > 0) {
      why += fmt::format(", SLURM_CPUS_PER_TASK={}", k);
      n = std::min(n, k);
    }
  }
  if (quota) {
    const int q = std::max(1, static_cast<int>(std::ceil(*quota - 1e-9)));
    why += fmt::format(", cgroup CPU quota {:.3g}", *quota);
    n = std::min(n, q);
  }
  if (source) *source = why;
  return n;
}

std::optional<std::uint64_t> memory_limit(std::string_view text) {
  std::istringstream in{std::string(text)};
  std::string v;
  if (!(in >> v) || v == "max") return std::nullopt;
  char* end = nullptr;
  const unsigned long long b = std::strtoull(v.c_str(), &end, 10);
  // cgroup v1 says "no limit" with a huge number (PAGE_COUNTER_MAX pages).
  if (end == v.c_str() || *end != '\0' || b == 0 || b >= (1ull << 60)) return std::nullopt;
  return b;
}

}  // namespace machine_detail

namespace {

using dnnl::memory;
using dt = memory::data_type;
using tag = memory::format_tag;

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return f ? s.str() : std::string();
}

// The process's cgroup folders, deepest first, that exist under /sys/fs/cgroup: for cgroup v2
// ("0::/a/b") /sys/fs/cgroup/a/b, /sys/fs/cgroup/a, /sys/fs/cgroup; for v1 the same under the
// controller's mount (`v1` = "cpu" or "memory").
std::vector<std::string> cgroup_dirs(std::string_view v1) {
  std::vector<std::string> dirs;
  std::istringstream in(read_file("/proc/self/cgroup"));
  for (std::string line; std::getline(in, line);) {
    const auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1), root;
    if (controllers.empty()) {
      root = "/sys/fs/cgroup";
    } else {
      std::istringstream cs(controllers);
      bool match = false;
      for (std::string c; std::getline(cs, c, ',');) match |= c == v1;
      if (!match) continue;
      root = "/sys/fs/cgroup/" + controllers;
    }
    for (;;) {
      const std::string dir = root + (path == "/" ? "" : path);
      if (::access(dir.c_str(), R_OK) == 0) dirs.push_back(dir);
      if (path.empty() || path == "/") break;
      path = path.substr(0, path.rfind('/'));
      if (path.empty()) path = "/";
    }
  }
  return dirs;
}

std::optional<double> cgroup_cpu_quota() {
  std::optional<double> q;
  auto take = [&](std::optional<double> v) {
    if (v && (!q || *v < *q)) q = v;
  };
  for (const auto& d : cgroup_dirs("")) take(machine_detail::cpu_quota(read_file(d + "/cpu.max")));
  for (const auto& d : cgroup_dirs("cpu")) {
    const std::string quota = read_file(d + "/cpu.cfs_quota_us"),
                      period = read_file(d + "/cpu.cfs_period_us");
    if (!quota.empty() && quota[0] != '-' && !period.empty())
      take(machine_detail::cpu_quota(quota + " " + period));
  }
  return q;
}

// The smallest memory limit of the process's cgroups, and what it has in use there.
std::optional<std::uint64_t> cgroup_memory_limit(std::uint64_t* in_use) {
  std::optional<std::uint64_t> limit;
  std::uint64_t used = 0;
  auto take = [&](const std::string& dir, const char* max_file, const char* cur_file) {
    const auto v = machine_detail::memory_limit(read_file(dir + "/" + max_file));
    if (v && (!limit || *v < *limit)) {
      limit = v;
      used = std::strtoull(read_file(dir + "/" + cur_file).c_str(), nullptr, 10);
    }
  };
  for (const auto& d : cgroup_dirs("")) take(d, "memory.max", "memory.current");
  for (const auto& d : cgroup_dirs("memory"))
    take(d, "memory.limit_in_bytes", "memory.usage_in_bytes");
  if (in_use) *in_use = used;
  return limit;
}

std::uint64_t meminfo_bytes(std::string_view key) {
  std::istringstream in(read_file("/proc/meminfo"));
  for (std::string k; in >> k;) {
    std::uint64_t kib = 0;
    in >> kib;
    if (k == key) return kib * 1024;
    in.ignore(1 << 10, '\n');
  }
  return 0;
}

std::string cpuinfo_field(std::string_view key) {
  std::istringstream in(read_file("/proc/cpuinfo"));
  for (std::string line; std::getline(in, line);)
    if (line.starts_with(key)) {
      const auto c = line.find(':');
      return c == std::string::npos ? "" : line.substr(line.find_first_not_of(" \t", c + 1));
    }
  return "";
}

std::string vector_flags() {
  std::istringstream in(cpuinfo_field("flags"));
  std::string out;
  for (std::string f; in >> f;)
    if (f == "avx2" || f == "fma" || f == "avx512f" || f == "avx512_vnni" || f == "avx_vnni" ||
        f == "avx512_bf16" || f == "amx_bf16" || f == "amx_int8")
      out += (out.empty() ? "" : " ") + f;
  return out;
}

std::string isa_name(dnnl::cpu_isa isa) {
  using dnnl::cpu_isa;
  switch (isa) {
    case cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
    case cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case cpu_isa::avx512_core:
      return "avx512_core";
    case cpu_isa::avx2_vnni:
      return "avx2_vnni";
    case cpu_isa::avx2:
      return "avx2";
    case cpu_isa::avx:
      return "avx";
    case cpu_isa::sse41:
      return "sse41";
    default:
      return fmt::format("isa {}", static_cast<int>(isa));
  }
}

// The implementation oneDNN picks for a 3x3 convolution {2, cin, 16, 16} -> {2, 64, 16, 16}
// of these types, or nullopt when it has none.
std::optional<std::string> conv_impl(const dnnl::engine& eng, dt src, dt wei, dt dst,
                                     dnnl::algorithm alg, int cin) {
  try {
    const memory::desc s({2, cin, 16, 16}, src, tag::any), w({64, cin, 3, 3}, wei, tag::any),
        b({64}, dt::f32, tag::x), d({2, 64, 16, 16}, dst, tag::any);
    const dnnl::convolution_forward::desc cd(dnnl::prop_kind::forward_inference, alg, s, w, b, d,
                                             {1, 1}, {1, 1}, {1, 1});
    return std::string(dnnl::convolution_forward::primitive_desc(cd, eng).impl_info_str());
  } catch (const dnnl::error&) {
    return std::nullopt;
  }
}

bool is_reference(const std::string& impl) {
  return impl.find("ref") != std::string::npos;
}

// A layer after the first (64 channels in) and, unless `wino`, the first (3 channels: RGB).
KernelProbe probe(const dnnl::engine& eng, const char* what, dt first_src, dt src, dt wei, dt dst,
                  bool wino, const std::string& isa) {
  const auto alg =
      wino ? dnnl::algorithm::convolution_winograd : dnnl::algorithm::convolution_direct;
  const auto mid = conv_impl(eng, src, wei, dst, alg, 64);
  if (!mid) return {false, fmt::format("oneDNN has no {} convolution for ISA {}", what, isa)};
  if (is_reference(*mid)) return {false, fmt::format("only oneDNN's reference code ({})", *mid)};
  if (wino) return {true, *mid + " (the first layer runs direct)"};
  const auto first = conv_impl(eng, first_src, wei, dst, alg, 3);
  if (!first || is_reference(*first))
    return {false, fmt::format("{}; the first layer has {}", *mid,
                               first ? "only " + *first : std::string("none"))};
  return {true, *first == *mid ? *mid : fmt::format("{}, first layer {}", *mid, *first)};
}

// Fine-tuning's bf16 convolutions: forward (training), backward data and backward weights of
// a 512 -> 512 layer (block5), f32 bias and weight gradients as conv_layer.cpp keeps them.
KernelProbe probe_bf16_training(const dnnl::engine& eng, const std::string& isa) {
  try {
    using dnnl::algorithm, dnnl::prop_kind;
    const memory::desc s({2, 512, 4, 4}, dt::bf16, tag::any),
        w({512, 512, 3, 3}, dt::bf16, tag::any), b({512}, dt::f32, tag::x),
        d({2, 512, 4, 4}, dt::bf16, tag::any), dw({512, 512, 3, 3}, dt::f32, tag::any);
    const dnnl::convolution_forward::primitive_desc fwd({prop_kind::forward_training,
                                                         algorithm::convolution_direct,
                                                         s,
                                                         w,
                                                         b,
                                                         d,
                                                         {1, 1},
                                                         {1, 1},
                                                         {1, 1}},
                                                        eng);
    const dnnl::convolution_backward_data::primitive_desc bwd_data(
        {algorithm::convolution_direct, s, w, d, {1, 1}, {1, 1}, {1, 1}}, eng, fwd);
    const dnnl::convolution_backward_weights::primitive_desc bwd_weights(
        {algorithm::convolution_direct, s, dw, b, d, {1, 1}, {1, 1}, {1, 1}}, eng, fwd);
    const std::string impls[] = {fwd.impl_info_str(), bwd_data.impl_info_str(),
                                 bwd_weights.impl_info_str()};
    for (const auto& i : impls) {
      if (is_reference(i)) return {false, fmt::format("only oneDNN's reference code ({})", i)};
      // avx512_core emulates bf16 (5x slower than f32 measured): its training steps also
      // missed the bf16 step bound of test_finetune (2.3e-2 and 3.1e-2 against 2e-2).
      const std::string isa_part = i.substr(i.find(':') + 1);
      if (isa_part.find("bf16") == std::string::npos && isa_part.find("amx") == std::string::npos)
        return {false, fmt::format("only emulated bf16 ({}): no AVX512_BF16 or AMX", i)};
    }
    return {true, fmt::format("forward {}, backward {} / {}", impls[0], impls[1], impls[2])};
  } catch (const dnnl::error&) {
    return {false, fmt::format("oneDNN has no bf16 convolution training for ISA {}", isa)};
  }
}

Machine probe_machine() {
  Machine m;
  const dnnl_version_t* v = dnnl_version();
  m.onednn = fmt::format("oneDNN {}.{}.{} ({})", v->major, v->minor, v->patch,
                         v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other runtime");
  m.isa = isa_name(dnnl::get_effective_cpu_isa());
  for (const char* env : {"ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"})
    if (const char* e = std::getenv(env); e && *e) m.isa_capped = true;
  m.cpu = cpuinfo_field("model name");
  m.flags = vector_flags();

  const dnnl::engine& eng = onednn::engine();
  m.f32_direct = probe(eng, "f32", dt::f32, dt::f32, dt::f32, dt::f32, false, m.isa);
  m.f32_winograd = probe(eng, "f32 Winograd", dt::f32, dt::f32, dt::f32, dt::f32, true, m.isa);
  const std::string_view wino_code = winograd_code_for(m.isa);
  m.f32_winograd_tlkit = {
      .native = !wino_code.empty(),
      .impl = wino_code.empty()
                  ? fmt::format("tlkit's Winograd needs AVX2 (ISA {})", m.isa)
                  : fmt::format("tlkit winograd F(4x4,3x3) {} (the first layer runs direct)",
                                wino_code)};
  m.bf16 = probe(eng, "bf16", dt::bf16, dt::bf16, dt::bf16, dt::bf16, false, m.isa);
  // int8: s8 images into the first layer, u8 (post-ReLU) activations after it.
  m.int8 = probe(eng, "int8", dt::s8, dt::u8, dt::s8, dt::u8, false, m.isa);
  m.bf16_training = probe_bf16_training(eng, m.isa);
  m.vnni = m.int8.native && (m.int8.impl.find("vnni") != std::string::npos ||
                             m.int8.impl.find("amx") != std::string::npos);
  m.amx = m.isa.find("amx") != std::string::npos;

  cpu_set_t set;
  CPU_ZERO(&set);
  const int affinity = sched_getaffinity(0, sizeof set, &set) == 0
                           ? CPU_COUNT(&set)
                           : static_cast<int>(std::thread::hardware_concurrency());
  const char* slurm = std::getenv("SLURM_CPUS_PER_TASK");
  m.cpus =
      machine_detail::usable_cpus(affinity, slurm ? slurm : "", cgroup_cpu_quota(), &m.cpus_source);

  const std::uint64_t physical = meminfo_bytes("MemTotal:");
  const auto limit = cgroup_memory_limit(nullptr);
  if (limit && (physical == 0 || *limit < physical)) {
    m.memory = *limit;
    m.memory_source = "cgroup limit";
  } else {
    m.memory = physical;
    m.memory_source = "physical";
  }
  return m;
}

}  // namespace

const KernelProbe& Machine::kernel(Precision p, ConvAlgo a) const {
  switch (p) {
    case Precision::bf16:
      return bf16;
    case Precision::int8:
      return int8;
    case Precision::f32:
      break;
  }
  if (a == ConvAlgo::winograd_tlkit) return f32_winograd_tlkit;
  if (a == ConvAlgo::winograd) return f32_winograd.native ? f32_winograd : f32_winograd_tlkit;
  return f32_direct;
}

void Machine::require(Precision p, ConvAlgo a, std::string_view option) const {
  const KernelProbe& k = kernel(p, a);
  if (k.native) return;
  std::vector<std::string> can;
  if (f32_winograd.native || f32_winograd_tlkit.native)
    can.push_back("f32 (winograd or direct)");
  else if (f32_direct.native)
    can.push_back("f32 (direct)");
  if (bf16.native) can.push_back("bf16");
  if (int8.native) can.push_back("int8");
  const std::string what =
      p == Precision::f32 ? fmt::format("f32 {}", to_string(a)) : std::string(to_string(p));
  throw UsageError(fmt::format(
      "{} {}: this CPU (oneDNN ISA {}{}) has no native {} convolution ({}); it runs {}", option,
      p == Precision::f32 && option == "--algo" ? to_string(a) : to_string(p), isa,
      isa_capped ? ", capped by ONEDNN_MAX_CPU_ISA" : "", what, k.impl,
      can.empty() ? std::string("nothing natively") : fmt::format("{}", fmt::join(can, ", "))));
}

void Machine::require_net(Precision p, ConvAlgo a) const {
  if (p == Precision::f32 && (a == ConvAlgo::winograd || a == ConvAlgo::winograd_tlkit))
    require(Precision::f32, a, "--algo");
  else
    require(p, ConvAlgo::direct, "--precision");
}

void Machine::require_training(Precision p, std::string_view option) const {
  if (p == Precision::f32 || (p == Precision::bf16 && bf16_training.native)) return;
  throw UsageError(fmt::format(
      "{} {}: this CPU (oneDNN ISA {}{}) cannot train {} convolutions natively ({}); use f32",
      option, to_string(p), isa, isa_capped ? ", capped by ONEDNN_MAX_CPU_ISA" : "", to_string(p),
      p == Precision::bf16 ? bf16_training.impl : std::string("not offered")));
}

ConvAlgo Machine::default_f32_algo() const {
  return f32_winograd.native || f32_winograd_tlkit.native ? ConvAlgo::winograd : ConvAlgo::direct;
}

Precision Machine::fastest_precision() const {
  if (int8.native && vnni) return Precision::int8;
  const auto colon = bf16.impl.find(':');
  const bool bf16_instructions =  // not avx512_core's emulation of bf16
      colon != std::string::npos && (bf16.impl.find("bf16", colon) != std::string::npos ||
                                     bf16.impl.find("amx", colon) != std::string::npos);
  if (bf16.native && bf16_instructions) return Precision::bf16;
  return Precision::f32;
}

std::string Machine::summary() const {
  return fmt::format("{}, CPU ISA {}{}, {} CPUs, {:.1f} GiB", onednn, isa,
                     isa_capped ? " (capped)" : "", cpus,
                     static_cast<double>(memory) / (1024.0 * 1024 * 1024));
}

std::string Machine::describe() const {
  auto k = [](const KernelProbe& p) {
    return fmt::format("{} ({})", p.native ? "native" : "NOT AVAILABLE", p.impl);
  };
  return fmt::format(
      "{}\n"
      "CPU: {} [{}]\n"
      "oneDNN ISA: {}{}\n"
      "f32 direct: {}\n"
      "f32 winograd: {}\n"
      "f32 winograd-tlkit: {}\n"
      "bf16: {}\n"
      "int8: {}{}\n"
      "bf16 fine-tuning: {}\n"
      "VNNI: {}, AMX: {}\n"
      "default f32 algorithm: {}; --precision auto: {}\n"
      "CPUs: {} ({})\n"
      "memory: {:.1f} GiB ({})\n",
      onednn, cpu.empty() ? "unknown" : cpu, flags, isa,
      isa_capped ? " (capped by ONEDNN_MAX_CPU_ISA)" : "", k(f32_direct), k(f32_winograd),
      k(f32_winograd_tlkit), k(bf16), k(int8),
      int8.native && int8_seven_bit_weights() ? "; 7-bit weights (no VNNI)" : "", k(bf16_training),
      vnni ? "yes" : "no", amx ? "yes" : "no", to_string(default_f32_algo()),
      to_string(fastest_precision()), cpus, cpus_source,
      static_cast<double>(memory) / (1024.0 * 1024 * 1024), memory_source);
}

const Machine& machine() {
  static const Machine m = probe_machine();
  return m;
}

std::uint64_t available_memory() {
  std::uint64_t avail = meminfo_bytes("MemAvailable:");
  if (avail == 0) {
    const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) avail = static_cast<std::uint64_t>(pages) * page;
  }
  std::uint64_t used = 0;
  if (const auto limit = cgroup_memory_limit(&used); limit && *limit > used)
    avail = avail > 0 ? std::min(avail, *limit - used) : *limit - used;
  return avail;
}

}  // namespace tl
