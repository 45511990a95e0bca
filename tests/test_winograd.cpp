// tlkit's own Winograd F(4x4, 3x3) and F(2x2, 3x3) (issue 19): each layer shape of VGG16 and a
// stack against the float64 reference, at sizes whose tiles divide the image and sizes whose
// tiles do not, batch 1, short batches. The transforms run the code of oneDNN's ISA here, so the
// AVX2 run of scripts/test-isa-levels.sh tests the AVX2 code.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "reference_vgg16.hpp"
#include "tl/error.hpp"
#include "tl/machine.hpp"
#include "tl/winograd.hpp"

namespace tl {
namespace {

constexpr double kF32Bound = 1e-5;  // of the output's scale, as every f32 path

struct LayerCase {
  const char* layer;
  int h, w, n, run_n;  // built for n images, run on run_n
};

class WinogradLayer : public ::testing::TestWithParam<LayerCase> {};

const char* name(WinogradTile t) {
  return t == WinogradTile::f2x2 ? "F2x2" : "F4x4";
}

TEST_P(WinogradLayer, MatchesTheFloat64Reference) {
  const LayerCase c = GetParam();
  const Vgg16Weights w = ref::test_weights(19);
  const ConvWeights& k = w.conv(c.layer);
  const Shape s{.n = c.run_n, .h = c.h, .w = c.w, .c = k.cin};
  const std::vector<float> x = ref::random_input(static_cast<size_t>(s.elems()), 7, 0.f, 2.f);
  const std::vector<double> want = ref::conv3x3_relu({x.begin(), x.end()}, s, k);
  for (const WinogradTile tile : {WinogradTile::f4x4, WinogradTile::f2x2}) {
    WinogradConv conv(k, {.n = c.n, .h = c.h, .w = c.w, .c = k.cin}, tile);
    std::vector<float> y(static_cast<size_t>(c.run_n) * c.h * c.w * k.cout, -1.f);
    conv.forward(x.data(), c.run_n, y.data());
    const double err = ref::rel_error(y, want);
    RecordProperty(fmt::format("rel_error_{}", name(tile)), fmt::format("{:.2e}", err));
    EXPECT_LT(err, kF32Bound) << conv.describe();
  }
}

// Every channel count VGG16 has past block1_conv1; 4x4 tiles that divide the image (32, 28, 8)
// and that do not (33, 30, 14, 7, 5, 150/2^k, 224/2^k); batch 1 and short batches.
INSTANTIATE_TEST_SUITE_P(
    Shapes, WinogradLayer,
    ::testing::Values(
        LayerCase{"block1_conv2", 32, 32, 2, 2}, LayerCase{"block1_conv2", 33, 31, 1, 1},
        LayerCase{"block2_conv1", 16, 16, 3, 2}, LayerCase{"block2_conv2", 75, 75, 1, 1},
        LayerCase{"block3_conv1", 28, 28, 2, 1}, LayerCase{"block3_conv2", 37, 37, 2, 2},
        LayerCase{"block4_conv1", 14, 14, 4, 3}, LayerCase{"block4_conv2", 18, 18, 1, 1},
        LayerCase{"block5_conv1", 7, 7, 5, 5}, LayerCase{"block5_conv3", 9, 9, 2, 1},
        LayerCase{"block5_conv2", 2, 3, 2, 2}, LayerCase{"block4_conv3", 1, 1, 2, 2}),
    [](const auto& i) {
      return fmt::format("{}_{}x{}_n{}of{}", i.param.layer, i.param.h, i.param.w, i.param.run_n,
                         i.param.n);
    });

// block2_conv2 .. block5_conv3 with the pools between, all on Winograd, at 32, 33 and 150
// pixels of block2's input: errors do not grow past the bound through the stack.
class WinogradStack : public ::testing::TestWithParam<WinogradTile> {};

TEST_P(WinogradStack, ConvsAndPoolsMatchTheFloat64Reference) {
  const Vgg16Weights w = ref::test_weights(20);
  for (const int side : {16, 17, 75}) {
    Shape s{.n = 2, .h = side, .w = side, .c = 64};
    std::vector<float> x = ref::random_input(static_cast<size_t>(s.elems()), 8, 0.f, 2.f);
    std::vector<double> want(x.begin(), x.end());
    for (int i = layer_index("block1_pool") + 1; i <= layer_index("block5_conv3"); ++i) {
      const LayerSpec& l = vgg16_layers()[i];
      if (l.kind == LayerKind::pool) {
        want = ref::maxpool2x2(want, s);
        std::vector<double> xd(x.begin(), x.end());
        xd = ref::maxpool2x2(xd, s);
        x.assign(xd.begin(), xd.end());  // max is exact: the same pool for both
        s.h /= 2;
        s.w /= 2;
        continue;
      }
      WinogradConv conv(w.conv(l.name), s, GetParam());
      std::vector<float> y(static_cast<size_t>(s.n) * s.h * s.w * l.cout);
      conv.forward(x.data(), s.n, y.data());
      want = ref::conv3x3_relu(want, s, w.conv(l.name));
      s.c = l.cout;
      x = std::move(y);
    }
    const double err = ref::rel_error(x, want);
    RecordProperty(fmt::format("rel_error_{}", side), fmt::format("{:.2e}", err));
    EXPECT_LT(err, kF32Bound) << "block2 input " << side << "x" << side;
  }
}
INSTANTIATE_TEST_SUITE_P(Tiles, WinogradStack,
                         ::testing::Values(WinogradTile::f4x4, WinogradTile::f2x2),
                         [](const auto& i) { return name(i.param); });

// Below AVX2 (ONEDNN_MAX_CPU_ISA=SSE41 in scripts/test-isa-levels.sh) the layer is refused,
// naming it and the ISA; elsewhere it builds.
TEST(WinogradConv, RefusedBelowAvx2) {
  const Vgg16Weights w = ref::test_weights(19);
  const Shape s{.n = 1, .h = 8, .w = 8, .c = 64};
  if (!winograd_code_for(machine().isa).empty()) {
    EXPECT_NO_THROW(WinogradConv(w.conv("block2_conv1"), s));
    GTEST_SKIP() << "oneDNN ISA " << machine().isa
                 << " runs tlkit's Winograd: the refusal is tested under "
                    "ONEDNN_MAX_CPU_ISA=SSE41";
  }
  try {
    WinogradConv(w.conv("block2_conv1"), s);
    ADD_FAILURE() << "no error below AVX2";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer block2_conv1: tlkit's Winograd needs AVX2 "
                                         "(oneDNN ISA " +
                                         machine().isa + ")"),
              std::string::npos)
        << e.what();
  }
}

TEST(WinogradConv, RefusesWrongChannelsAndBatches) {
  const Vgg16Weights w = ref::test_weights(19);
  const Shape wrong{.n = 1, .h = 8, .w = 8, .c = 128};
  EXPECT_THROW(WinogradConv(w.conv("block2_conv1"), wrong), Error);
  const Shape rgb{.n = 1, .h = 8, .w = 8, .c = 3};  // block1_conv1: 3 channels, left to direct
  EXPECT_THROW(WinogradConv(w.conv("block1_conv1"), rgb), Error);
  WinogradConv conv(w.conv("block2_conv1"), {.n = 2, .h = 8, .w = 8, .c = 64});
  std::vector<float> x(3 * 8 * 8 * 64), y(3 * 8 * 8 * 128);
  EXPECT_THROW(conv.forward(x.data(), 3, y.data()), Error);
  EXPECT_THROW(conv.forward(x.data(), 0, y.data()), Error);
  ConvWeights cut = w.conv("block2_conv1");
  cut.kernel.pop_back();
  try {
    WinogradConv(cut, {.n = 1, .h = 8, .w = 8, .c = 64});
    ADD_FAILURE() << "no error for a short kernel";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer block2_conv1: 73727 kernel and 128 bias values"),
              std::string::npos)
        << e.what();
  }
}

// set_weights (fine-tuning's new weights at every step) gives what a layer built with those
// weights gives, bit for bit.
TEST(WinogradConv, SetWeightsEqualsALayerBuiltWithThem) {
  const ConvWeights a = ref::test_weights(19).conv("block3_conv2"),
                    b = ref::test_weights(21).conv("block3_conv2");
  const Shape s{.n = 2, .h = 9, .w = 10, .c = a.cin};
  const std::vector<float> x = ref::random_input(static_cast<size_t>(s.elems()), 9, 0.f, 2.f);
  std::vector<float> got(static_cast<size_t>(s.n) * s.h * s.w * a.cout), want(got.size());
  WinogradConv conv(a, s), fresh(b, s);
  conv.set_weights(b.kernel.data(), b.bias.data());
  conv.forward(x.data(), s.n, got.data());
  fresh.forward(x.data(), s.n, want.data());
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace tl
