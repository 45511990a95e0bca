// Shape inference: cut-layer shapes for several input sizes, and its errors.
#include <gtest/gtest.h>

#include "tl/error.hpp"
#include "tl/vgg16_spec.hpp"

namespace tl {
namespace {

TEST(Vgg16Spec, TableHas13ConvsAnd5PoolsNamedAsKeras) {
  const auto layers = vgg16_layers();
  ASSERT_EQ(layers.size(), 18u);
  int convs = 0;
  for (const auto& l : layers) convs += l.kind == LayerKind::conv;
  EXPECT_EQ(convs, 13);
  EXPECT_EQ(layers.front().name, "block1_conv1");
  EXPECT_EQ(layers[13].name, "block4_pool");
  EXPECT_EQ(layers.back().name, "block5_pool");
  for (size_t i = 1; i < layers.size(); ++i) EXPECT_EQ(layers[i].cin, layers[i - 1].cout);
}

struct CutCase {
  int side;
  const char* layer;
  Shape want;
};

class CutShapes : public ::testing::TestWithParam<CutCase> {};

TEST_P(CutShapes, MatchKeras) {
  const auto& p = GetParam();
  const auto s = infer_shapes({2, p.side, p.side, 3}, "input", p.layer);
  EXPECT_EQ(s.back(), p.want) << p.side << " " << p.layer;
}

INSTANTIATE_TEST_SUITE_P(Sizes, CutShapes,
                         ::testing::Values(CutCase{224, "block5_pool", {2, 7, 7, 512}},
                                           CutCase{224, "block4_pool", {2, 14, 14, 512}},
                                           CutCase{224, "block5_conv3", {2, 14, 14, 512}},
                                           CutCase{224, "block1_conv1", {2, 224, 224, 64}},
                                           CutCase{225, "block5_pool", {2, 7, 7, 512}},
                                           CutCase{225, "block1_pool", {2, 112, 112, 64}},
                                           CutCase{150, "block5_pool", {2, 4, 4, 512}},
                                           CutCase{150, "block4_pool", {2, 9, 9, 512}},
                                           CutCase{150, "block3_pool", {2, 18, 18, 256}},
                                           CutCase{33, "block5_pool", {2, 1, 1, 512}},
                                           CutCase{33, "block1_pool", {2, 16, 16, 64}},
                                           CutCase{32, "block5_pool", {2, 1, 1, 512}},
                                           CutCase{32, "block4_pool", {2, 2, 2, 512}}));

TEST(Vgg16Spec, NonSquareAndPartialRanges) {
  EXPECT_EQ(infer_shapes({1, 240, 320, 3}, "input", "block5_pool").back(), (Shape{1, 7, 10, 512}));
  // Fine-tuning runs block4_pool -> block5_pool on cached [N, 14, 14, 512].
  const auto s = infer_shapes({8, 14, 14, 512}, "block4_pool", "block5_pool");
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s.back(), (Shape{8, 7, 7, 512}));
}

TEST(Vgg16Spec, Errors) {
  EXPECT_THROW(layer_index("block6_pool"), UsageError);
  try {
    layer_index("block6_pool");
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("block6_pool"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("block5_pool"), std::string::npos);
  }
  EXPECT_THROW(infer_shapes({1, 31, 224, 3}, "input", "block5_pool"), UsageError);
  EXPECT_THROW(infer_shapes({1, 224, 224, 3}, "block5_pool", "block4_pool"), UsageError);
  EXPECT_THROW(infer_shapes({1, 224, 224, 3}, "input", "input"), UsageError);
  EXPECT_THROW(infer_shapes({1, 14, 14, 256}, "block4_pool", "block5_pool"), UsageError);
  EXPECT_THROW(infer_shapes({0, 224, 224, 3}, "input", "block5_pool"), UsageError);
  EXPECT_THROW(infer_shapes({1, 1, 1, 512}, "block4_pool", "block5_pool"), UsageError);
}

TEST(Vgg16Spec, MacsMatchKeras) {
  // 15.35 GMAC per 224x224 image.
  EXPECT_NEAR(macs_per_image(224, 224, "input", "block5_pool") / 1e9, 15.35, 0.01);
  EXPECT_EQ(macs_per_image(224, 224, "input", "block1_conv1"), 9.0 * 3 * 64 * 224 * 224);
}

}  // namespace
}  // namespace tl
