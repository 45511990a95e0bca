// The oneDNN toolkit (tl/onednn.hpp, tl/layer_plan.hpp) that the net, the head and block5 share.
#include <cstdint>
#include <string>

#include <gtest/gtest.h>

#include "tl/error.hpp"
#include "tl/layer_plan.hpp"
#include "tl/onednn.hpp"

namespace {

using dnnl::memory;

TEST(Onednn, CallTurnsOnednnErrorsIntoErrorsNamingTheLayer) {
  // An inner product whose weights do not match its source: oneDNN refuses the descriptor.
  const memory::desc src({4, 8}, memory::data_type::f32, memory::format_tag::nc),
      wei({3, 9}, memory::data_type::f32, memory::format_tag::io),
      dst({4, 3}, memory::data_type::f32, memory::format_tag::nc);
  try {
    tl::onednn::call(
        [&] {
          dnnl::inner_product_forward::primitive_desc(
              {dnnl::prop_kind::forward_inference, src, wei, dst}, tl::onednn::engine());
        },
        "oneDNN could not build the dense layer {}", "fc1");
    FAIL() << "no error";
  } catch (const tl::Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("oneDNN could not build the dense layer fc1: ", 0), 0u)
        << e.what();
  }
  // Without an error the value comes through.
  EXPECT_EQ(tl::onednn::call([] { return 7; }, "unused"), 7);
}

TEST(Onednn, PropOfPass) {
  EXPECT_EQ(tl::onednn::prop_of(tl::Pass::training), dnnl::prop_kind::forward_training);
  EXPECT_EQ(tl::onednn::prop_of(tl::Pass::inference), dnnl::prop_kind::forward_inference);
}

TEST(Onednn, FloorPoolPaddingGivesKerasFloorSizes) {
  for (int h : {2, 3, 4, 7, 14, 15}) {
    const auto pad = tl::onednn::floor_pool_padding(h, h + 1, h / 2, (h + 1) / 2);
    EXPECT_EQ((h - 2 + pad[0]) / 2 + 1, h / 2) << h;
    EXPECT_EQ((h + 1 - 2 + pad[1]) / 2 + 1, (h + 1) / 2) << h;
  }
}

TEST(Onednn, AttrHasTheUserScratchpadAndReluWhenAsked) {
  EXPECT_EQ(tl::onednn::attr().get_scratchpad_mode(), dnnl::scratchpad_mode::user);
  EXPECT_EQ(tl::onednn::attr().get_post_ops().len(), 0);
  EXPECT_EQ(tl::onednn::attr(true).get_post_ops().kind(0), dnnl::primitive::kind::eltwise);
}

TEST(LayerPlan, AlignedBufferIsAlignedAndOnlyGrows) {
  tl::AlignedBuffer b(10);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b.data()) % 64, 0u);
  EXPECT_EQ(b.size(), 64u);
  b.reserve(200);
  EXPECT_EQ(b.size(), 256u);
  b.reserve(1);
  EXPECT_EQ(b.size(), 256u);
}

TEST(LayerPlan, PlanCacheBuildsOnceAndEmptiesBeyondItsLimit) {
  tl::PlanCache<int, int> cache(2);
  int built = 0;
  auto make = [&](int v) {
    return [&built, v] {
      ++built;
      return std::make_unique<int>(v);
    };
  };
  int& a = cache.get(1, make(10));
  EXPECT_EQ(&cache.get(1, make(99)), &a);  // the same plan, not rebuilt
  EXPECT_EQ(cache.get(2, make(20)), 20);
  EXPECT_EQ(built, 2);
  EXPECT_EQ(cache.get(3, make(30)), 30);  // third key: the cache was emptied first
  EXPECT_EQ(built, 3);
  EXPECT_EQ(std::distance(cache.begin(), cache.end()), 1);
  EXPECT_EQ(cache.get(1, make(11)), 11);  // rebuilt
}

}  // namespace
