// The oneDNN network against the float64 reference: every layer alone, the whole stack at
// small sizes, partial ranges, short batches, bf16 and Winograd with their stated bounds.
#include <malloc.h>

#include <cstdio>

#include <gtest/gtest.h>

#include <fmt/format.h>

#include "reference_vgg16.hpp"
#include "test_util.hpp"
#include "tl/error.hpp"
#include "tl/int8_quantization.hpp"
#include "tl/machine.hpp"
#include "tl/vgg16.hpp"

namespace tl {
namespace {

#define EXPECT_HAS_THROW_MSG(stmt, part)                                          \
  do {                                                                            \
    try {                                                                         \
      stmt;                                                                       \
      ADD_FAILURE() << "no error from " #stmt;                                    \
    } catch (const Error& e) {                                                    \
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what(); \
    }                                                                             \
  } while (0)

// Error bounds relative to the output's scale (max |ref|).
constexpr double kF32Bound = 1e-5;
// bf16 rounds activations and weights to 8 mantissa bits (2^-9 relative) at every layer and
// accumulates in f32; over the whole stack we allow 3%, and 1% for a single layer.
constexpr double kBf16LayerBound = 1e-2;
constexpr double kBf16StackBound = 3e-2;

const Vgg16Weights& weights() {
  static const Vgg16Weights w = ref::test_weights(7);
  return w;
}

std::vector<double> to_double(const std::vector<float>& v) {
  return {v.begin(), v.end()};
}

struct Run {
  std::vector<float> got;
  std::vector<double> want;
};

Run run(std::string_view from, std::string_view to, Shape in, Precision p = Precision::f32,
        ConvAlgo algo = ConvAlgo::direct, std::uint64_t seed = 3) {
  NetConfig cfg{.batch = in.n,
                .height = in.h,
                .width = in.w,
                .from = std::string(from),
                .to = std::string(to),
                .precision = p,
                .algo = algo};
  Vgg16 net(weights(), cfg);
  EXPECT_EQ(net.input_shape(), in);
  // Inputs of an image-like scale for the first layer, ReLU-like (>= 0) after it.
  const bool image = from == kInputLayer;
  auto x = ref::random_input(in.elems(), seed, image ? -120.f : 0.f, image ? 150.f : 2.f);
  Run r{std::vector<float>(net.output_shape().elems()), {}};
  net.forward(x.data(), in.n, r.got.data());
  r.want = ref::forward(weights(), to_double(x), in, from, to);
  EXPECT_EQ(r.got.size(), r.want.size());
  return r;
}

struct LayerCase {
  std::string from, to;
};

std::vector<LayerCase> each_layer() {
  std::vector<LayerCase> v;
  std::string prev(kInputLayer);
  for (const auto& l : vgg16_layers()) {
    v.push_back({prev, std::string(l.name)});
    prev = l.name;
  }
  return v;
}

class EachLayer : public ::testing::TestWithParam<LayerCase> {};

Shape small_input(const std::string& from) {
  const int i = layer_index(from);
  // The first conv needs the 32x32 minimum; later layers run on odd, non-square maps.
  return i < 0 ? Shape{2, 32, 35, 3} : Shape{2, 9, 13, vgg16_layers()[i].cout};
}

TEST_P(EachLayer, F32MatchesFloat64Reference) {
  const auto& p = GetParam();
  const auto r = run(p.from, p.to, small_input(p.from));
  EXPECT_LT(ref::rel_error(r.got, r.want), kF32Bound) << p.to;
}

TEST_P(EachLayer, Bf16WithinItsBound) {
  TL_SKIP_UNLESS_NATIVE(Precision::bf16, ConvAlgo::direct);
  const auto& p = GetParam();
  const auto r = run(p.from, p.to, small_input(p.from), Precision::bf16);
  EXPECT_LT(ref::rel_error(r.got, r.want), kBf16LayerBound) << p.to;
}

// tlkit's own Winograd (issue 19) on every layer it runs (the first conv runs direct), on odd,
// non-square maps whose 4x4 tiles do not divide them. Natively and under the AVX2 cap, which
// runs its AVX2 code.
TEST_P(EachLayer, TlkitWinogradMatchesFloat64Reference) {
  TL_SKIP_UNLESS_NATIVE(Precision::f32, ConvAlgo::winograd_tlkit);
  const auto& p = GetParam();
  const auto r = run(p.from, p.to, small_input(p.from), Precision::f32, ConvAlgo::winograd_tlkit);
  EXPECT_LT(ref::rel_error(r.got, r.want), kF32Bound) << p.to;
}

INSTANTIATE_TEST_SUITE_P(Vgg16, EachLayer, ::testing::ValuesIn(each_layer()),
                         [](const auto& info) { return info.param.to; });

TEST(Vgg16Stack, WholeStackF32AtSmallSizes) {
  for (Shape in : {Shape{2, 32, 32, 3}, Shape{1, 37, 45, 3}}) {
    const auto r = run("input", "block5_pool", in);
    EXPECT_LT(ref::rel_error(r.got, r.want), kF32Bound) << in.h << "x" << in.w;
  }
}

TEST(Vgg16Stack, WholeStackBf16) {
  TL_SKIP_UNLESS_NATIVE(Precision::bf16, ConvAlgo::direct);
  const auto r = run("input", "block5_pool", {2, 32, 32, 3}, Precision::bf16);
  EXPECT_LT(ref::rel_error(r.got, r.want), kBf16StackBound);
}

// int8 against the float64 reference, relative to the output's scale, per kind of int8
// kernel (lib/src/int8_quantization.cpp, s8_weight_max). Measured with these tests' data: the
// largest single-layer error and the whole stack at 32x32.
struct Int8Bound {
  const char* kernels;
  double layer, stack;
  const char* why;
};
constexpr Int8Bound kInt8Bounds[] = {
    {"VNNI or AMX (avx512_core_vnni, avx2_vnni, avx512_core_bf16, avx512_core_amx)", 1e-2, 3e-2,
     "u8 activations and s8 per-channel weights carry 8 bits (2^-8 = 4e-3 of the range per "
     "rounding), summed exactly in s32; measured 6.9e-3 per layer, 1.6e-2 for the stack"},
    {"no VNNI (avx2, avx512_core)", 1.5e-2, 4e-2,
     "u8 x s8 pairs are summed in saturating s16 (vpmaddubsw): with 8-bit weights the error "
     "was 0.11 per layer, so weights are quantised to 7 bits (-63..63) and the first layer's "
     "weights are halved by oneDNN itself; measured 1.1e-2 per layer, 2.3e-2 for the stack "
     "(7-bit activations instead: 1.3e-2 and 2.9e-2)"},
};
const Int8Bound& int8_bound() {
  return machine().vnni ? kInt8Bounds[0] : kInt8Bounds[1];
}

Run run_int8(std::string_view from, std::string_view to, Shape in, std::uint64_t seed = 3) {
  NetConfig cfg{.batch = in.n,
                .height = in.h,
                .width = in.w,
                .from = std::string(from),
                .to = std::string(to)};
  const bool image = from == kInputLayer;
  const auto x = ref::random_input(in.elems(), seed, image ? -120.f : 0.f, image ? 150.f : 2.f);
  // Calibrated on the measured images themselves: this isolates the arithmetic (scales,
  // bias, rounding) from the sampling of ranges; values past a calibrated range saturate.
  cfg.calibration =
      std::make_shared<Int8Calibration>(calibrate_int8(weights(), cfg, x.data(), in.n));
  cfg.precision = Precision::int8;
  Vgg16 net(weights(), cfg);
  Run r{std::vector<float>(net.output_shape().elems()), {}};
  net.forward(x.data(), in.n, r.got.data());
  r.want = ref::forward(weights(), to_double(x), in, from, to);
  return r;
}

TEST_P(EachLayer, Int8WithinItsBound) {
  const auto& p = GetParam();
  const auto r = run_int8(p.from, p.to, small_input(p.from));
  const double err = ref::rel_error(r.got, r.want);
  EXPECT_LT(err, int8_bound().layer) << p.to << " on " << machine().isa << ": " << int8_bound().why;
}

TEST(Vgg16Stack, WholeStackInt8) {
  const auto r = run_int8("input", "block5_pool", {2, 32, 32, 3});
  const double err = ref::rel_error(r.got, r.want);
  EXPECT_LT(err, int8_bound().stack) << machine().isa << ": " << int8_bound().why;
  RecordProperty("int8_rel_error", fmt::format("{:.2e}", err));
  std::printf("int8 on %s (%s): whole stack %.3g\n", machine().isa.c_str(), int8_bound().kernels,
              err);
  const auto b4 = run_int8("block4_pool", "block5_pool", {2, 6, 6, 512});
  EXPECT_LT(ref::rel_error(b4.got, b4.want), int8_bound().stack) << machine().isa;
}

// --algo changes f32 only: bf16 and int8 run the same (direct) convolutions whatever it says.
// (even where oneDNN has no f32 Winograd: --algo winograd is no error for them).
class AlgoChangesF32Only : public ::testing::TestWithParam<Precision> {};

TEST_P(AlgoChangesF32Only, SameRowsWhateverTheAlgorithm) {
  const Precision p = GetParam();
  TL_SKIP_UNLESS_NATIVE(p, ConvAlgo::direct);
  const NetConfig f32{.batch = 2, .height = 40, .width = 40};
  const auto x = ref::random_input(f32.batch * 40 * 40 * 3, 5, -120.f, 150.f);
  std::vector<std::vector<float>> out;
  for (const auto algo :
       {ConvAlgo::direct, ConvAlgo::winograd, ConvAlgo::automatic, ConvAlgo::winograd_tlkit}) {
    NetConfig cfg = f32;
    cfg.precision = p;
    cfg.algo = algo;
    if (p == Precision::int8)
      cfg.calibration =
          std::make_shared<Int8Calibration>(calibrate_int8(weights(), f32, x.data(), f32.batch));
    Vgg16 net(weights(), cfg);
    EXPECT_EQ(net.algo_used(), ConvAlgo::direct) << to_string(p);
    out.emplace_back(net.output_shape().elems());
    net.forward(x.data(), f32.batch, out.back().data());
  }
  EXPECT_EQ(out[1], out[0]) << to_string(p) << " winograd";
  EXPECT_EQ(out[2], out[0]) << to_string(p) << " auto";
  EXPECT_EQ(out[3], out[0]) << to_string(p) << " winograd-tlkit";
}

INSTANTIATE_TEST_SUITE_P(Vgg16, AlgoChangesF32Only,
                         ::testing::Values(Precision::bf16, Precision::int8),
                         [](const auto& info) { return std::string(to_string(info.param)); });

// A precision or algorithm with no native kernel is refused by the net itself too (the tools
// refuse it before touching any file); the message names the ISA. Runs where the kernel is
// missing: natively on AVX2 CPUs, and in CI under ONEDNN_MAX_CPU_ISA=AVX2.
TEST(Vgg16Net, RefusesWhatThisCpuCannotRun) {
  int refused = 0;
  for (const auto& [p, a] : {std::pair{Precision::f32, ConvAlgo::winograd},
                             std::pair{Precision::bf16, ConvAlgo::direct}}) {
    if (machine().runs(p, a)) continue;
    ++refused;
    try {
      Vgg16 net(weights(), {.batch = 1, .height = 32, .width = 32, .precision = p, .algo = a});
      ADD_FAILURE() << "no error for " << to_string(p) << " " << to_string(a);
    } catch (const UsageError& e) {
      EXPECT_HAS(e.what(), machine().isa);
      EXPECT_HAS(e.what(), "it runs f32");
    }
  }
  if (refused == 0)
    GTEST_SKIP() << "oneDNN ISA " << machine().isa
                 << " runs f32 Winograd and bf16 natively: nothing to refuse (CI runs this "
                    "under ONEDNN_MAX_CPU_ISA=AVX2)";
}

// The algorithm recorded is the one that ran: Winograd where oneDNN has it, else direct.
TEST(Vgg16Net, AlgoUsedIsWhatRan) {
  Vgg16 direct(weights(), {.batch = 1, .height = 32, .width = 32, .to = "block1_pool"});
  EXPECT_EQ(direct.algo_used(), ConvAlgo::direct);
  EXPECT_EQ(direct.describe().find("wino"), std::string::npos) << direct.describe();
  TL_SKIP_UNLESS_NATIVE(Precision::f32, ConvAlgo::winograd);
  Vgg16 wino(
      weights(),
      {.batch = 1, .height = 32, .width = 32, .to = "block2_conv2", .algo = ConvAlgo::winograd});
  // --algo winograd: oneDNN's where it has one, else tlkit's.
  const bool onednn = machine().f32_winograd.native;
  EXPECT_EQ(wino.algo_used(), onednn ? ConvAlgo::winograd : ConvAlgo::winograd_tlkit);
  EXPECT_HAS(wino.describe(), onednn ? "wino" : "tlkit winograd");
  Vgg16 tlkit(weights(), {.batch = 1,
                          .height = 32,
                          .width = 32,
                          .to = "block2_conv2",
                          .algo = ConvAlgo::winograd_tlkit});
  EXPECT_EQ(tlkit.algo_used(), ConvAlgo::winograd_tlkit);
  EXPECT_HAS(tlkit.describe(), "block1_conv2: tlkit winograd F(4x4,3x3)");
  // The first layer (3 input channels) runs direct under either Winograd.
  for (const Vgg16* net : {&wino, &tlkit}) {
    const std::string d = net->describe(), first = d.substr(d.find("block1_conv1: "));
    EXPECT_EQ(first.substr(0, first.find('\n')).find("wino"), std::string::npos) << d;
  }
}

// The input shape without a net, and int8 ranges measured on the very batch a net will run
// (tl-forward and the benchmarks): the same as calibrate_int8 on an f32 copy of the config.
TEST(Vgg16Net, InputShapeOfAndRangesFromTheBatchItself) {
  for (const NetConfig& c :
       {NetConfig{.batch = 3, .height = 40, .width = 48, .to = "block1_pool"},
        NetConfig{
            .batch = 2, .height = 8, .width = 8, .from = "block3_pool", .to = "block4_conv1"}}) {
    const Shape s = Vgg16::input_shape_of(c);
    EXPECT_EQ(s, Vgg16(weights(), c).input_shape());
  }
  NetConfig cfg{.batch = 2, .height = 32, .width = 32, .to = "block1_pool"};
  const auto x = ref::random_input(2 * 32 * 32 * 3, 2, -100.f, 100.f);
  const Int8Calibration want = calibrate_int8(weights(), cfg, x.data(), 2);
  cfg.precision = Precision::int8;
  const NetConfig got = with_ranges_from(weights(), cfg, x.data(), 2);
  ASSERT_TRUE(got.calibration);
  EXPECT_EQ(got.precision, Precision::int8);
  EXPECT_EQ(got.calibration->outputs, want.outputs);
  EXPECT_EQ(got.calibration->input, want.input);
  EXPECT_NO_THROW(Vgg16(weights(), got));
}

TEST(Vgg16Net, Int8NeedsAMatchingCalibration) {
  EXPECT_HAS_THROW_MSG(
      Vgg16(weights(), {.batch = 1, .height = 32, .width = 32, .precision = Precision::int8}),
      "calibration");
  NetConfig cfg{.batch = 1, .height = 32, .width = 32, .to = "block1_pool"};
  const auto x = ref::random_input(32 * 32 * 3, 1, -100.f, 100.f);
  auto c = std::make_shared<Int8Calibration>(calibrate_int8(weights(), cfg, x.data(), 1));
  EXPECT_EQ(c->outputs.size(), 3u);  // block1_conv1, block1_conv2, block1_pool
  EXPECT_GT(c->input, 90.f);
  cfg.precision = Precision::int8;
  cfg.to = "block2_conv1";  // no range measured for it
  cfg.calibration = c;
  EXPECT_HAS_THROW_MSG(Vgg16(weights(), cfg), "block2_conv1");
}

TEST(Vgg16Stack, WinogradF32WithinItsBound) {
  TL_SKIP_UNLESS_NATIVE(Precision::f32, ConvAlgo::winograd);
  const auto r = run("input", "block5_pool", {1, 40, 40, 3}, Precision::f32, ConvAlgo::winograd);
  const double err = ref::rel_error(r.got, r.want);
  EXPECT_LT(err, kF32Bound);  // Winograd is the tools' f32 default: it must hold f32's bound
  RecordProperty("winograd_rel_error", fmt::format("{:.2e}", err));
}

// The size the network is made for: both f32 algorithms against float64 over the whole stack
// at 224x224 (the decision of issue 6: Winograd becomes the f32 default only if it stays
// within the direct convolution's bound here too).
void check_at_224(ConvAlgo algo) {
  const auto r = run("input", "block5_pool", {1, 224, 224, 3}, Precision::f32, algo);
  const double err = ref::rel_error(r.got, r.want);
  EXPECT_LT(err, kF32Bound) << to_string(algo);
  ::testing::Test::RecordProperty(std::string(to_string(algo)) + "_rel_error_224",
                                  fmt::format("{:.2e}", err));
  std::printf("%s at 224x224 on %s: max |error| / max |reference| = %.3g\n",
              std::string(to_string(algo)).c_str(), machine().isa.c_str(), err);
}
TEST(Vgg16Stack, DirectAt224AgainstFloat64) {
  check_at_224(ConvAlgo::direct);
}
TEST(Vgg16Stack, WinogradAt224AgainstFloat64) {
  TL_SKIP_UNLESS_NATIVE(Precision::f32, ConvAlgo::winograd);
  check_at_224(ConvAlgo::winograd);
}

// tlkit's Winograd through the whole stack at 32, 33 and 150 pixels, a short batch included
// (224: TlkitWinogradAt224AgainstFloat64).
TEST(Vgg16Stack, TlkitWinogradAtSmallAndOddSizes) {
  TL_SKIP_UNLESS_NATIVE(Precision::f32, ConvAlgo::winograd_tlkit);
  for (const Shape in : {Shape{2, 32, 32, 3}, Shape{1, 33, 33, 3}, Shape{1, 150, 150, 3}}) {
    const auto r = run("input", "block5_pool", in, Precision::f32, ConvAlgo::winograd_tlkit);
    const double err = ref::rel_error(r.got, r.want);
    EXPECT_LT(err, kF32Bound) << in.h << "x" << in.w;
    RecordProperty(fmt::format("rel_error_{}", in.h), fmt::format("{:.2e}", err));
  }
}

// An image's features do not depend on the batch it came in (shards, resumes and short
// batches must give the same rows, as oneDNN's direct convolutions do): 4 images through nets
// built for 1, 4, 7 and 32, bit for bit. (oneDNN's gemm rounded rows differently for other row
// counts under the AVX2 cap until the block size stopped depending on the batch.)
TEST(Vgg16Stack, TlkitWinogradRowsDoNotDependOnTheBatch) {
  TL_SKIP_UNLESS_NATIVE(Precision::f32, ConvAlgo::winograd_tlkit);
  const auto x = ref::random_input(4 * 32 * 32 * 3, 9, -120.f, 150.f);
  std::vector<std::vector<float>> rows;
  for (const int batch : {4, 1, 7, 32}) {
    Vgg16 net(weights(),
              {.batch = batch, .height = 32, .width = 32, .algo = ConvAlgo::winograd_tlkit});
    const size_t row = net.output_shape().per_image();
    std::vector<float> y(4 * row);
    for (int i = 0; i < 4; i += std::min(batch, 4))
      net.forward(x.data() + i * 32 * 32 * 3, std::min(batch, 4), y.data() + i * row);
    rows.push_back(y);
  }
  for (size_t k = 1; k < rows.size(); ++k) EXPECT_EQ(rows[k], rows[0]) << "batch case " << k;
}
TEST(Vgg16Stack, TlkitWinogradAt224AgainstFloat64) {
  TL_SKIP_UNLESS_NATIVE(Precision::f32, ConvAlgo::winograd_tlkit);
  check_at_224(ConvAlgo::winograd_tlkit);
}

TEST(Vgg16Stack, CutAtEveryBlockEndAndResumeFromBlock4) {
  // block4_pool -> block5_pool (fine-tuning's range) equals the tail of a full run.
  const auto r = run("block4_pool", "block5_pool", {3, 6, 5, 512});
  EXPECT_LT(ref::rel_error(r.got, r.want), kF32Bound);
  const auto c = run("input", "block5_conv3", {1, 32, 48, 3});
  EXPECT_LT(ref::rel_error(c.got, c.want), kF32Bound);
}

TEST(Vgg16Stack, ShortBatchGivesTheSameRows) {
  Vgg16 net(weights(), {.batch = 4, .height = 32, .width = 32, .to = "block3_pool"});
  const auto x = ref::random_input(net.input_shape().elems(), 11, -100.f, 100.f);
  std::vector<float> full(net.output_shape().elems());
  net.forward(x.data(), 4, full.data());
  const size_t row = net.output_shape().per_image();
  std::vector<float> part(3 * row, -1.f);
  net.forward(x.data(), 3, part.data());
  for (size_t i = 0; i < part.size(); ++i) ASSERT_EQ(part[i], full[i]) << i;
  EXPECT_THROW(net.forward(x.data(), 5, full.data()), Error);
  EXPECT_THROW(net.forward(x.data(), 0, full.data()), Error);
}

TEST(Vgg16Stack, RepeatedForwardIsDeterministicAndAllocatesNothingNet) {
  Vgg16 net(weights(), {.batch = 2, .height = 64, .width = 64, .to = "block5_pool"});
  const auto x = ref::random_input(net.input_shape().elems(), 5, -100.f, 100.f);
  std::vector<float> a(net.output_shape().elems()), b(a.size());
  net.forward(x.data(), 2, a.data());  // warm-up
  const size_t before = mallinfo2().uordblks;
  for (int i = 0; i < 3; ++i) net.forward(x.data(), 2, b.data());
  const size_t after = mallinfo2().uordblks;
  EXPECT_EQ(a, b);
  EXPECT_LE(after, before + 4096) << "heap grew by " << after - before << " bytes";
}

TEST(Vgg16Net, ErrorsNameTheProblem) {
  Vgg16Weights partial = weights();
  partial.convs.pop_back();  // no block5_conv3
  try {
    Vgg16 net(partial, {.batch = 1, .height = 32, .width = 32});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("block5_conv3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Vgg16(weights(), {.batch = 1, .height = 16, .width = 32}), UsageError);
  EXPECT_THROW(Vgg16(weights(), {.batch = 1, .to = "block9"}), UsageError);
  EXPECT_THROW(parse_precision("fp64"), UsageError);
  EXPECT_THROW(parse_algo("fft"), UsageError);
  EXPECT_EQ(parse_precision("bf16"), Precision::bf16);
}

TEST(Vgg16Net, DescribesImplementationsAndRuntime) {
  Vgg16 net(weights(), {.batch = 1, .height = 32, .width = 32, .to = "block1_pool"});
  EXPECT_NE(net.describe().find("block1_conv1: "), std::string::npos);
  EXPECT_NE(machine().summary().find("oneDNN 2."), std::string::npos);
}

}  // namespace
}  // namespace tl
