// tl-extract --augment K (issue 8): the draw rule against golden values from the Python rule in
// docs/FORMAT.md; each transform alone on synthetic images, checked against pixel positions
// computed here by hand (not by the library); fill modes; the extracted rows (layout, equal to
// the library's own copies, identical at 1 and 2 threads, after SIGKILL + resume, in shards
// and merged); the validation split by image; predictions on originals; --preview; every
// refusal naming its option; --augment-at source|network (a marker through the public load
// function at both stages, the attribute, its default and files written before it).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "extract_fixtures.hpp"
#include "image_fixtures.hpp"
#include "tl/augment_preview.hpp"
#include "tl/error.hpp"
#include "tl/extract.hpp"
#include "tl/feature_file.hpp"
#include "tl/feature_file_source.hpp"
#include "tl/image_augment.hpp"
#include "tl/merge.hpp"
#include "tl/model_file.hpp"
#include "tl/predict_run.hpp"
#include "tl/slurm_array.hpp"
#include "tl/train_run.hpp"
#include "tl/vgg16.hpp"

namespace tl {
namespace {

namespace fs = std::filesystem;
using testing::Contents;
using testing::read_all;
using testing::run;
using testing::small_config;
using testing::TempDir;

constexpr double kDeg = std::numbers::pi / 180;

// ---- the draw rule ------------------------------------------------------------------------

TEST(AugmentDraw, UniformsAndParametersEqualThePythonRuleOfFormatMd) {
  // Printed by the Python snippet of docs/FORMAT.md ("Augmented rows"), repr() digits.
  const auto u = augment_uniforms(7, "cats/cat001.jpg", 3);
  const double want[10] = {0.5254329637913503,  0.8809968120807572,  0.28437562031122676,
                           0.39966958832290467, 0.21305214007690232, 0.8669904026685783,
                           0.7522486795481628,  0.04735921774713647, 0.43073843993109584,
                           0.12906146441039146};
  for (int k = 0; k < 10; ++k) EXPECT_EQ(u[k], want[k]) << "u[" << k << "]";
  EXPECT_EQ(augment_uniforms(0, "\xc3\x84/b c.png", 1)[0], 0.9791781636124705);  // UTF-8 path

  AugmentOptions a;
  a.copies = 4;
  a.seed = 7;
  a.rotation = 40;
  a.height_shift = 0.2;
  a.width_shift = 0.1;
  a.shear = 10;
  a.zoom_lo = 0.8;
  a.zoom_hi = 1.2;
  a.brightness_lo = 0.5;
  a.brightness_hi = 1.5;
  a.horizontal_flip = a.vertical_flip = true;
  a.channel_shift = 20;
  const AugmentParams p = draw_augment(a, "cats/cat001.jpg", 3, 224, 160);
  EXPECT_EQ(p.theta, 2.0346371033080217);
  EXPECT_EQ(p.tx, 34.137314362435845);   // rows: a fraction of the height (224)
  EXPECT_EQ(p.ty, -6.8999801500407445);  // columns: a fraction of the width (160)
  EXPECT_EQ(p.shear, -2.0066082335419066);
  EXPECT_EQ(p.zx, 0.885220856030761);
  EXPECT_EQ(p.zy, 1.1467961610674313);
  EXPECT_FALSE(p.flip_horizontal);
  EXPECT_TRUE(p.flip_vertical);
  EXPECT_EQ(p.channel_shift, -2.7704624027561664);
  EXPECT_EQ(p.brightness, 0.6290614644103915);
}

TEST(AugmentDraw, PureWithinRangesAndEachParameterHasItsOwnDraw) {
  AugmentOptions a;
  a.copies = 1;
  a.rotation = 30;
  a.width_shift = 0.25;
  a.zoom_lo = 0.9;
  a.zoom_hi = 1.3;
  double lo = 1e9, hi = -1e9;
  int flips = 0;
  for (int c = 1; c <= 400; ++c) {
    const auto p = draw_augment(a, "x/" + std::to_string(c % 7) + ".png", c, 50, 80);
    lo = std::min(lo, p.theta);
    hi = std::max(hi, p.theta);
    EXPECT_LE(std::abs(p.ty), 0.25 * 80);
    EXPECT_EQ(p.tx, 0);  // no --height-shift
    EXPECT_GE(p.zx, 0.9);
    EXPECT_LT(p.zx, 1.3);
    EXPECT_EQ(p.brightness, 1);
    flips += p.flip_horizontal;
  }
  EXPECT_LT(lo, -25);  // spans the range
  EXPECT_GT(hi, 25);
  EXPECT_EQ(flips, 0);
  // Same inputs, same draw; another copy, path or seed, another draw.
  const auto p1 = draw_augment(a, "a.png", 1, 50, 80);
  EXPECT_EQ(p1.theta, draw_augment(a, "a.png", 1, 50, 80).theta);
  EXPECT_NE(p1.theta, draw_augment(a, "a.png", 2, 50, 80).theta);
  EXPECT_NE(p1.theta, draw_augment(a, "b.png", 1, 50, 80).theta);
  auto b = a;
  b.seed = 1;
  EXPECT_NE(p1.theta, draw_augment(b, "a.png", 1, 50, 80).theta);
  // Turning a flip on leaves the other parameters as they were (fixed slots).
  b = a;
  b.horizontal_flip = true;
  const auto p2 = draw_augment(b, "a.png", 1, 50, 80);
  EXPECT_EQ(p2.theta, p1.theta);
  EXPECT_EQ(p2.ty, p1.ty);
  EXPECT_EQ(p2.zy, p1.zy);
}

// ---- each transform alone -----------------------------------------------------------------

AugmentOptions fill_constant() {
  AugmentOptions o;
  o.copies = 1;
  o.fill = FillMode::constant;
  return o;
}

// A black h x w image with a white 3x3 marker centred at (r, c).
cv::Mat marker(int h, int w, int r, int c) {
  cv::Mat m(h, w, CV_8UC3, cv::Scalar::all(0));
  cv::rectangle(m, {c - 1, r - 1}, {c + 1, r + 1}, cv::Scalar::all(255), -1);
  return m;
}

// The intensity-weighted centre (row, col) of channel 0.
cv::Point2d centroid(const cv::Mat& m) {
  double s = 0, sr = 0, sc = 0;
  for (int r = 0; r < m.rows; ++r)
    for (int c = 0; c < m.cols; ++c) {
      const double v = m.at<cv::Vec3b>(r, c)[0];
      s += v;
      sr += v * r;
      sc += v * c;
    }
  return {sr / s, sc / s};  // x = row, y = col
}

// A random RGB image.
cv::Mat noise(int h, int w, unsigned seed) {
  cv::Mat m(h, w, CV_8UC3);
  cv::RNG rng(seed);
  rng.fill(m, cv::RNG::UNIFORM, 0, 256);
  return m;
}

TEST(AugmentTransforms, Rotation90IsAClockwiseQuarterTurnPixelForPixel) {
  const cv::Mat img = noise(17, 17, 1);
  AugmentParams p;
  p.theta = 90;
  cv::Mat want;
  cv::rotate(img, want, cv::ROTATE_90_CLOCKWISE);  // dst(r, c) = src(n-1-c, r)
  EXPECT_EQ(cv::norm(apply_augment(img, p, fill_constant()), want, cv::NORM_INF), 0);
  p.theta = -90;
  cv::rotate(img, want, cv::ROTATE_90_COUNTERCLOCKWISE);
  EXPECT_EQ(cv::norm(apply_augment(img, p, fill_constant()), want, cv::NORM_INF), 0);
}

TEST(AugmentTransforms, RotatedMarkerLandsWhereItShould) {
  // 41 x 61 image, centre (20, 30). A marker 12 rows above the centre, rotated by theta:
  // it moves clockwise on screen to centre + (-12 cos, 12 sin).
  const double theta = 30;
  const cv::Mat img = marker(41, 61, 20 - 12, 30);
  AugmentParams p;
  p.theta = theta;
  const auto got = centroid(apply_augment(img, p, fill_constant()));
  EXPECT_NEAR(got.x, 20 - 12 * std::cos(theta * kDeg), 0.15);
  EXPECT_NEAR(got.y, 30 + 12 * std::sin(theta * kDeg), 0.15);
}

TEST(AugmentTransforms, ShiftMovesRowsByTxAndColumnsByTy) {
  const cv::Mat img = noise(20, 30, 2);
  AugmentParams p;
  p.tx = 5;   // rows: the content moves up by 5
  p.ty = -3;  // columns: the content moves right by 3
  const cv::Mat out = apply_augment(img, p, fill_constant());
  for (int r = 0; r < 15; ++r)
    for (int c = 3; c < 30; ++c)
      ASSERT_EQ(out.at<cv::Vec3b>(r, c), img.at<cv::Vec3b>(r + 5, c - 3)) << r << "," << c;
  const auto got = centroid(apply_augment(marker(20, 30, 10, 12), p, fill_constant()));
  EXPECT_NEAR(got.x, 5, 1e-9);
  EXPECT_NEAR(got.y, 15, 1e-9);
}

TEST(AugmentTransforms, ShearAndZoomMoveAMarkerAsKerasMatrixSays) {
  // Shear by s about the centre (cr, cc): input row = dr - sin(s) dc, col = cos(s) dc, so a
  // marker at (r, c) lands at dc = (c - cc) / cos(s), dr = (r - cr) + sin(s) dc.
  const double s = 20, cr = 25, cc = 25;
  AugmentParams p;
  p.shear = s;
  auto got = centroid(apply_augment(marker(51, 51, 30, 40), p, fill_constant()));
  const double dc = (40 - cc) / std::cos(s * kDeg);
  EXPECT_NEAR(got.y, cc + dc, 0.15);
  EXPECT_NEAR(got.x, cr + (30 - cr) + std::sin(s * kDeg) * dc, 0.15);
  // Zoom: input = z * (output - centre): zx = 2 halves row distances, zy = 0.5 doubles
  // column distances (Keras: a zoom above 1 shrinks the content).
  p = {};
  p.zx = 2;
  p.zy = 0.5;
  got = centroid(apply_augment(marker(51, 51, 15, 30), p, fill_constant()));
  EXPECT_NEAR(got.x, cr + (15 - cr) / 2.0, 0.15);
  EXPECT_NEAR(got.y, cc + (30 - cc) * 2.0, 0.15);
}

TEST(AugmentTransforms, CompositionIsRotationOfTheShiftedGrid) {
  // Keras: M = R(theta) T(tx, ty) about the centre: the output centre samples the input at
  // centre + R (tx, ty). With theta = 90 and (tx, ty) = (4, 0): 4 columns right of centre.
  AugmentParams p;
  p.theta = 90;
  p.tx = 4;
  const auto got = centroid(apply_augment(marker(21, 21, 10, 14), p, fill_constant()));
  EXPECT_NEAR(got.x, 10, 1e-9);
  EXPECT_NEAR(got.y, 10, 1e-9);
  const cv::Matx23d m = augment_matrix(p, 21, 21);  // (row, col): (10, 10) -> (10, 14)
  EXPECT_NEAR(m(0, 0) * 10 + m(0, 1) * 10 + m(0, 2), 10, 1e-12);
  EXPECT_NEAR(m(1, 0) * 10 + m(1, 1) * 10 + m(1, 2), 14, 1e-12);
}

TEST(AugmentTransforms, FlipsChannelShiftAndBrightness) {
  const cv::Mat img = noise(9, 13, 3);
  AugmentParams p;
  p.flip_horizontal = true;
  const cv::Mat h = apply_augment(img, p, fill_constant());
  p = {};
  p.flip_vertical = true;
  const cv::Mat v = apply_augment(img, p, fill_constant());
  for (int r = 0; r < 9; ++r)
    for (int c = 0; c < 13; ++c) {
      ASSERT_EQ(h.at<cv::Vec3b>(r, c), img.at<cv::Vec3b>(r, 12 - c));
      ASSERT_EQ(v.at<cv::Vec3b>(r, c), img.at<cv::Vec3b>(8 - r, c));
    }
  // Channel shift: + s on every channel, clipped to the image's own min and max (10, 200).
  cv::Mat ramp(1, 4, CV_8UC3);
  ramp.at<cv::Vec3b>(0, 0) = {10, 50, 100};
  ramp.at<cv::Vec3b>(0, 1) = {150, 190, 200};
  ramp.at<cv::Vec3b>(0, 2) = {20, 30, 40};
  ramp.at<cv::Vec3b>(0, 3) = {199, 11, 12};
  p = {};
  p.channel_shift = 30;
  cv::Mat out = apply_augment(ramp, p, fill_constant());
  EXPECT_EQ(out.at<cv::Vec3b>(0, 0), cv::Vec3b(40, 80, 130));
  EXPECT_EQ(out.at<cv::Vec3b>(0, 1), cv::Vec3b(180, 200, 200));
  EXPECT_EQ(out.at<cv::Vec3b>(0, 3), cv::Vec3b(200, 41, 42));
  p.channel_shift = -15.4;  // rounded to the nearest level
  out = apply_augment(ramp, p, fill_constant());
  EXPECT_EQ(out.at<cv::Vec3b>(0, 0), cv::Vec3b(10, 35, 85));
  EXPECT_EQ(out.at<cv::Vec3b>(0, 2), cv::Vec3b(10, 15, 25));
  // Brightness: PIL's blend with black, truncated, clipped at 255.
  AugmentOptions o = fill_constant();
  o.brightness_lo = 0.5;
  o.brightness_hi = 2;
  p = {};
  p.brightness = 0.5;
  out = apply_augment(ramp, p, o);
  EXPECT_EQ(out.at<cv::Vec3b>(0, 0), cv::Vec3b(5, 25, 50));
  EXPECT_EQ(out.at<cv::Vec3b>(0, 3), cv::Vec3b(99, 5, 6));
  p.brightness = 1.7;
  out = apply_augment(ramp, p, o);
  EXPECT_EQ(out.at<cv::Vec3b>(0, 0), cv::Vec3b(17, 85, 170));
  EXPECT_EQ(out.at<cv::Vec3b>(0, 1), cv::Vec3b(255, 255, 255));
}

TEST(AugmentTransforms, FillModesMatchScipysNearestConstantReflectAndWrap) {
  // One row of 8 distinct columns, shifted left by 3 (ty = 3: output col c samples c + 3),
  // so output columns 5, 6, 7 sample input columns 8, 9, 10, outside the image.
  cv::Mat img(3, 8, CV_8UC3);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 8; ++c) img.at<cv::Vec3b>(r, c) = cv::Vec3b::all(10 + 20 * c);
  AugmentParams p;
  p.ty = 3;
  auto cols = [&](FillMode f, double value) {
    AugmentOptions o;
    o.copies = 1;
    o.fill = f;
    o.fill_value = value;
    const cv::Mat out = apply_augment(img, p, o);
    std::vector<int> v;
    for (int c = 0; c < 8; ++c) v.push_back(out.at<cv::Vec3b>(1, c)[0]);
    return v;
  };
  auto level = [](std::vector<int> input_cols) {
    for (int& c : input_cols) c = 10 + 20 * c;
    return input_cols;
  };
  EXPECT_EQ(cols(FillMode::nearest, 0), level({3, 4, 5, 6, 7, 7, 7, 7}));  // aaa|abcd|ddd
  EXPECT_EQ(cols(FillMode::reflect, 0), level({3, 4, 5, 6, 7, 7, 6, 5}));  // abcd|dcba
  EXPECT_EQ(cols(FillMode::wrap, 0), level({3, 4, 5, 6, 7, 0, 1, 2}));     // abcd|abcd
  EXPECT_EQ(cols(FillMode::constant, 77), (std::vector<int>{70, 90, 110, 130, 150, 77, 77, 77}));
}

// ---- options ------------------------------------------------------------------------------

TEST(AugmentOptions, EveryBadValueIsRefusedNamingItsOption) {
  auto refused = [](auto&& change) {
    AugmentOptions a;
    a.copies = 2;
    a.rotation = 10;
    change(a);
    return testing::error_of([&] { a.validate(); });
  };
  EXPECT_HAS(refused([](auto& a) { a.copies = -1; }), "--augment");
  EXPECT_HAS(refused([](auto& a) { a.rotation = -5; }), "--rotation");
  EXPECT_HAS(refused([](auto& a) { a.rotation = NAN; }), "--rotation");
  EXPECT_HAS(refused([](auto& a) { a.width_shift = 1.0; }), "--width-shift");
  EXPECT_HAS(refused([](auto& a) { a.height_shift = -0.1; }), "--height-shift");
  EXPECT_HAS(refused([](auto& a) { a.shear = 90; }), "--shear");
  EXPECT_HAS(refused([](auto& a) { a.zoom_lo = 0; }), "--zoom");
  EXPECT_HAS(refused([](auto& a) { a.zoom_lo = 1.5, a.zoom_hi = 1.2; }), "--zoom");
  EXPECT_HAS(refused([](auto& a) { a.brightness_lo = 2, a.brightness_hi = 1; }),
             "--brightness: 2,1");
  EXPECT_HAS(refused([](auto& a) { a.channel_shift = 300; }), "--channel-shift");
  EXPECT_HAS(refused([](auto& a) { a.fill_value = 9; }), "--fill-value: goes with --fill constant");
  EXPECT_HAS(refused([](auto& a) { a.seed = ~0ull; }), "--seed");
  EXPECT_HAS(refused([](auto& a) { a.rotation = 0; }), "--augment 2: no transform given");
  EXPECT_HAS(refused([](auto& a) { a.copies = 0; }), "--rotation: needs --augment K");
  EXPECT_HAS(refused([](auto& a) { a.copies = 0, a.rotation = 0, a.at = AugmentStage::network; }),
             "--augment-at: needs --augment K");
  EXPECT_HAS(testing::error_of([] { parse_fill_mode("mirror"); }), "nearest, constant, reflect");
  EXPECT_HAS(testing::error_of([] { parse_augment_stage("input"); }), "source, network");
  AugmentOptions ok;
  ok.copies = 3;
  ok.horizontal_flip = true;
  EXPECT_NO_THROW(ok.validate());
  AugmentOptions other = ok;
  other.seed = 5;
  EXPECT_HAS(ok.difference(other), "--seed: the file has 0, this run asks for 5");
  EXPECT_EQ(AugmentOptions{}.difference(AugmentOptions{}), "");
}

// tl-extract's command line, stderr captured: the message names the option.
std::string extract_error(const std::string& args) {
  const std::string cmd =
      std::string(TL_EXTRACT_BIN) + " --images /nonexistent --output x.h5 " + args + " 2>&1";
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "popen failed";
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  const int status = pclose(p);
  EXPECT_EQ(WEXITSTATUS(status), 2) << out;  // usage error
  return out;
}

TEST(AugmentOptions, CommandLineRefusalsNameTheOption) {
  EXPECT_HAS(extract_error("--augment 2 --zoom -1"), "--zoom: -1");
  EXPECT_HAS(extract_error("--augment 2 --zoom 1,x"), "--zoom: bad value '1,x'");
  EXPECT_HAS(extract_error("--augment 2 --brightness 2,1"), "--brightness: 2,1");
  EXPECT_HAS(extract_error("--augment 2 --brightness 0.5"), "--brightness: bad value");
  EXPECT_HAS(extract_error("--augment 2 --rotation 5 --fill mirror"), "--fill: unknown");
  EXPECT_HAS(extract_error("--augment 2"), "--augment 2: no transform given");
  EXPECT_HAS(extract_error("--horizontal-flip"), "--horizontal-flip: needs --augment K");
  EXPECT_HAS(extract_error("--augment 2 --rotation 5 --fill-value 3"), "--fill-value");
  EXPECT_HAS(extract_error("--augment 2 --rotation 5 --augment-at middle"),
             "--augment-at: unknown stage 'middle' (accepted: source, network)");
  EXPECT_HAS(extract_error("--augment-at network"), "--augment-at: needs --augment K");
}

// ---- extraction ---------------------------------------------------------------------------

ExtractConfig augmented(const fs::path& images, const fs::path& out, int copies = 2) {
  ExtractConfig c = small_config(images, out);
  c.augment.copies = copies;
  c.augment.seed = 11;
  c.augment.rotation = 25;
  c.augment.width_shift = 0.15;
  c.augment.zoom_lo = 0.9;
  c.augment.zoom_hi = 1.1;
  c.augment.horizontal_flip = true;
  c.augment.brightness_lo = 0.8;
  c.augment.brightness_hi = 1.2;
  return c;
}

TEST(AugmentExtract, RowsAreEachImageThenItsCopiesAndEqualTheLibrarysOwnCopies) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a", "b"}, 3, 37, 45);
  testing::write_text(d / "imgs" / "a" / "broken.png", "not a png");
  const auto plain_cfg = small_config(d / "imgs", d / "plain.h5");
  const auto cfg = augmented(d / "imgs", d / "aug.h5");
  run(plain_cfg);
  const ExtractSummary s = run(cfg);
  EXPECT_TRUE(s.complete);
  const Contents plain = read_all(plain_cfg.output), aug = read_all(cfg.output);
  const auto index = FeatureReader(cfg.output).augment_index();
  ASSERT_EQ(aug.paths.size(), 18u);  // 6 images x 3; the broken one has no rows
  ASSERT_EQ(aug.failed.size(), 1u);
  EXPECT_EQ(aug.failed[0].first, "a/broken.png");
  EXPECT_EQ(aug.meta.entries_done, 7);
  EXPECT_EQ(aug.meta.augment.copies, 2);
  EXPECT_EQ(aug.meta.augment.rotation, 25);
  EXPECT_TRUE(aug.meta.augment.horizontal_flip);
  EXPECT_EQ(aug.meta.augment.difference(cfg.augment), "");  // the attributes round-trip
  EXPECT_EQ(FeatureReader(plain_cfg.output).augment_index(), std::vector<std::int32_t>(6, 0));
  EXPECT_EQ(h5::File::open(cfg.output).read_attr<std::int64_t>("format_version"), 2);
  EXPECT_EQ(h5::File::open(plain_cfg.output).read_attr<std::int64_t>("format_version"), 1);
  const size_t row = 8 * 8 * 128;
  Vgg16 net(load_weights("random:3"), cfg.net);
  std::vector<float> x(32 * 32 * 3), y(net.output_shape().elems());
  for (size_t i = 0; i < 6; ++i) {
    for (size_t c = 0; c < 3; ++c) {
      const size_t r = i * 3 + c;
      EXPECT_EQ(index[r], static_cast<std::int32_t>(c));
      EXPECT_EQ(aug.paths[r], plain.paths[i]);  // labels and paths repeat the original's
      EXPECT_EQ(aug.labels[r], plain.labels[i]);
    }
    // The original row is the plain run's row, bit for bit.
    EXPECT_TRUE(std::equal(&aug.features[i * 3 * row], &aug.features[(i * 3 + 1) * row],
                           &plain.features[i * row]));
    // Copy 2 is the library's copy 2 of that image through the same net.
    std::vector<cv::Mat> rgb;
    load_augmented(d / "imgs" / plain.paths[i], plain.paths[i], cfg.image, cfg.augment, 2, rgb);
    ASSERT_EQ(rgb.size(), 3u);
    EXPECT_GT(cv::norm(rgb[0], rgb[2], cv::NORM_L1), 0);  // a copy is not its original
    preprocess_image(rgb[2], cfg.image.preprocess, x.data());
    net.forward(x.data(), 1, y.data());
    for (size_t k = 0; k < row; ++k)
      ASSERT_NEAR(aug.features[(i * 3 + 2) * row + k], y[k], 1e-5f * (1 + std::abs(y[k])));
  }
}

TEST(AugmentExtract, IdenticalAtOneAndTwoThreadsBothSchedulesAndAnyBatch) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a", "b", "c"}, 3, 30, 41);
  auto a = augmented(d / "imgs", d / "a.h5", 3);
  a.threads = 1;
  a.net.batch = 2;  // fewer rows than a group: one image per slot, forwarded in two passes
  auto b = augmented(d / "imgs", d / "b.h5", 3);
  b.threads = 2;
  b.net.batch = 2;
  auto c = augmented(d / "imgs", d / "c.h5", 3);
  c.schedule = Schedule::net_per_thread;
  c.net.batch = 2;
  auto e = augmented(d / "imgs", d / "e.h5", 3);
  e.net.batch = 9;  // two images (8 rows) a slot, forwarded as one batch
  for (const auto* cfg : {&a, &b, &c, &e}) run(*cfg);
  const Contents ca = read_all(a.output), cb = read_all(b.output), cc = read_all(c.output),
                 ce = read_all(e.output);
  ASSERT_EQ(ca.paths.size(), 36u);
  EXPECT_EQ(ca.features, cb.features);  // bit for bit at 1 and 2 threads, both schedules
  EXPECT_EQ(ca.features, cc.features);
  EXPECT_EQ(ca.paths, ce.paths);
  EXPECT_EQ(FeatureReader(a.output).augment_index(), FeatureReader(e.output).augment_index());
  ASSERT_EQ(ce.features.size(), ca.features.size());  // other batch: oneDNN may block otherwise
  for (size_t i = 0; i < ca.features.size(); ++i)
    ASSERT_NEAR(ce.features[i], ca.features[i], 1e-5f * (1 + std::abs(ca.features[i])));
}

TEST(AugmentExtract, ResumingWithOtherAugmentationIsRefusedNamingTheOption) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a"}, 2);
  auto cfg = augmented(d / "imgs", d / "out.h5");
  std::atomic<bool> stop{true};  // creates the file, commits nothing
  std::ostringstream log;
  run_extract(cfg, log, &stop);
  auto other = cfg;
  other.augment.rotation = 30;
  EXPECT_HAS(testing::error_of([&] { run(other); }), "--rotation: the file has 25");
  other = cfg;
  other.augment.copies = 3;
  EXPECT_HAS(testing::error_of([&] { run(other); }), "--augment: the file has 2");
  other = cfg;
  other.augment = {};
  EXPECT_HAS(testing::error_of([&] { run(other); }),
             "--augment: the file has 2, this run asks for 0");
  other = cfg;
  other.augment.seed = 12;
  EXPECT_HAS(testing::error_of([&] { run(other); }), "--seed");
  other = cfg;
  other.augment.at = AugmentStage::network;
  EXPECT_HAS(testing::error_of([&] { run(other); }),
             "--augment-at: the file has source, this run asks for network");
  EXPECT_TRUE(run(cfg).complete);  // the same settings resume
}

TEST(AugmentExtract, KilledAtRandomPointsEndsEqualToAnUninterruptedRun) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a", "b"}, 30, 90, 110);
  testing::write_text(d / "imgs" / "b" / "broken.jpg", "nope");
  auto args = [&](const fs::path& out) {
    return std::vector<std::string>{TL_EXTRACT_BIN,
                                    "--images",
                                    (d / "imgs").string(),
                                    "--output",
                                    out.string(),
                                    "--weights",
                                    "random:2",
                                    "--size",
                                    "96",
                                    "--layer",
                                    "block5_pool",
                                    "--batch",
                                    "3",
                                    "--threads",
                                    "2",
                                    "--quiet",
                                    "--augment",
                                    "2",
                                    "--seed",
                                    "5",
                                    "--rotation",
                                    "40",
                                    "--zoom",
                                    "0.2",
                                    "--horizontal-flip",
                                    "--fill",
                                    "reflect"};
  };
  pid_t pid;
  int status = 0;
  ASSERT_EQ(testing::spawn_quiet(args(d / "ref.h5"), pid), 0);
  waitpid(pid, &status, 0);
  ASSERT_EQ(WEXITSTATUS(status), 3);  // one image failed
  int exit_code = -1;
  const int kills = testing::kill_at_random_then_finish(
      args(d / "out.h5"), 8, 25, 8,
      [&] {
        if (!fs::exists(d / "out.h5")) return;
        // Committed rows only, in whole groups: 3 rows per image done.
        FeatureReader r(d / "out.h5");
        const auto& m = r.meta();
        EXPECT_EQ(m.rows_done, 3 * (m.entries_done - m.failed_count));
        EXPECT_EQ(r.paths().size(), r.rows());
        EXPECT_EQ(r.augment_index().size(), r.rows());
      },
      exit_code);
  EXPECT_TRUE(exit_code == 0 || exit_code == 3);
  RecordProperty("kills", kills);
  EXPECT_GE(kills, 2);
  const Contents ref = read_all(d / "ref.h5"), got = read_all(d / "out.h5");
  EXPECT_TRUE(got.meta.complete);
  EXPECT_EQ(got.features, ref.features);
  EXPECT_EQ(got.labels, ref.labels);
  EXPECT_EQ(got.paths, ref.paths);
  EXPECT_EQ(got.failed, ref.failed);
  EXPECT_EQ(FeatureReader(d / "out.h5").augment_index(),
            FeatureReader(d / "ref.h5").augment_index());
}

TEST(AugmentExtract, ShardsMergeIntoTheWholeRunAndMixedShardsAreRefused) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a", "b"}, 3);
  const auto whole = augmented(d / "imgs", d / "whole.h5");
  run(whole);
  fs::create_directories(d / "s.shards");
  for (int k = 0; k < 3; ++k) {
    auto s = augmented(d / "imgs", d / "s.shards" / shard_file_name({k, 3}));
    s.shard = {k, 3};
    run(s);
  }
  std::ostringstream log;
  merge_shards({.shards = d / "s.shards", .output = d / "virtual.h5"}, log);
  merge_shards({.shards = d / "s.shards", .output = d / "copy.h5", .copy = true}, log);
  const Contents w = read_all(whole.output);
  for (const char* name : {"virtual.h5", "copy.h5"}) {
    const Contents m = read_all(d / name);
    EXPECT_EQ(m.features, w.features) << name;
    EXPECT_EQ(m.paths, w.paths) << name;
    EXPECT_EQ(m.meta.entries_done, 6) << name;  // images, not rows
    EXPECT_EQ(m.meta.rows_done, 18) << name;
    EXPECT_EQ(m.meta.augment.difference(whole.augment), "") << name;
    EXPECT_EQ(FeatureReader(d / name).augment_index(), FeatureReader(whole.output).augment_index());
  }
  // A shard made without augmentation (or with other settings) is foreign, named.
  auto plain = small_config(d / "imgs", d / "s.shards" / shard_file_name({1, 3}));
  plain.shard = {1, 3};
  plain.overwrite = true;
  run(plain);
  const auto msg = testing::error_of([&] { check_shard_folder(d / "s.shards"); });
  EXPECT_HAS(msg, "shard-1-of-3.h5");
  EXPECT_HAS(msg, "--augment");
  // The Slurm array passes the same augmentation to every task.
  SlurmArray array;
  array.tasks = 2;
  const std::string script = slurm_array_script(whole, array);
  for (const char* part :
       {"--augment 2", "--seed 11", "--rotation 25", "--width-shift 0.15", "--zoom 0.9,1.1",
        "--horizontal-flip", "--brightness 0.8,1.2", "--fill nearest", "--augment-at source"})
    EXPECT_HAS(script, part);
  auto net_stage = whole;
  net_stage.augment.at = AugmentStage::network;
  EXPECT_HAS(slurm_array_script(net_stage, array), "--augment-at network");
  // A shard made at the other stage is foreign too, named.
  auto other_stage = augmented(d / "imgs", d / "s.shards" / shard_file_name({1, 3}));
  other_stage.shard = {1, 3};
  other_stage.overwrite = true;
  other_stage.augment.at = AugmentStage::network;
  run(other_stage);
  const auto stage_msg = testing::error_of([&] { check_shard_folder(d / "s.shards"); });
  EXPECT_HAS(stage_msg, "shard-1-of-3.h5");
  EXPECT_HAS(stage_msg, "--augment-at");
}

// ---- --augment-at source|network ----------------------------------------------------------

// A black source image (rows x cols) with a white block: rows [r0, r0 + h), cols [c0, c0 + w).
cv::Mat block_image(int rows, int cols, int r0, int c0, int h, int w) {
  cv::Mat m(rows, cols, CV_8UC3, cv::Scalar::all(0));
  m(cv::Rect(c0, r0, w, h)).setTo(cv::Scalar::all(255));
  return m;
}

TEST(AugmentAt, ShiftedMarkerLandsAtTheSamePlaceAtBothStages) {
  // A 144 x 320 source (wider than the 48 x 64 network input, another aspect) with a 15 x 25
  // block centred at (59, 130). A shift by the fractions (fh, fw) moves content by -fh of the
  // height and -fw of the width, whichever image it is applied to; resizing maps a source
  // position y to (y + 0.5) * out / in - 0.5. So the block's centre lands at
  // ((59 + 0.5) * 48 / 144 - 0.5 - fh * 48, (130 + 0.5) * 64 / 320 - 0.5 - fw * 64) at
  // both stages, up to the nearest resize's sampling (a third and a fifth of a source pixel
  // per network pixel: under 0.6 of a network pixel).
  TempDir d;
  testing::write_image(d / "m" / "wide.png", block_image(144, 320, 52, 118, 15, 25));
  ImageOptions opt;
  opt.height = 48;
  opt.width = 64;
  AugmentOptions a;
  a.copies = 6;
  a.seed = 4;
  a.height_shift = 0.2;
  a.width_shift = 0.3;
  a.fill = FillMode::constant;
  double moved = 0;
  std::vector<cv::Mat> at_source, at_network;
  load_augmented(d / "m" / "wide.png", "m/wide.png", opt, a, a.copies, at_source);
  a.at = AugmentStage::network;
  load_augmented(d / "m" / "wide.png", "m/wide.png", opt, a, a.copies, at_network);
  ASSERT_EQ(at_source.size(), 7u);
  ASSERT_EQ(at_network.size(), 7u);
  EXPECT_EQ(cv::norm(at_source[0], at_network[0], cv::NORM_INF), 0);  // the same original
  for (int c = 1; c <= a.copies; ++c) {
    const auto u = augment_uniforms(a.seed, "m/wide.png", c);  // fh ~ u[1], fw ~ u[2]
    const double fh = -0.2 + 0.4 * u[1], fw = -0.3 + 0.6 * u[2];
    const double want_r = (59 + 0.5) * 48 / 144 - 0.5 - fh * 48;
    const double want_c = (130 + 0.5) * 64 / 320 - 0.5 - fw * 64;
    for (const auto* stage : {&at_source, &at_network}) {
      const cv::Mat& img = (*stage)[c];
      ASSERT_EQ(img.size(), cv::Size(64, 48));
      const auto got = centroid(img);
      const char* name = stage == &at_source ? "source" : "network";
      EXPECT_NEAR(got.x, want_r, 0.6) << name << " copy " << c;
      EXPECT_NEAR(got.y, want_c, 0.6) << name << " copy " << c;
    }
    moved = std::max({moved, std::abs(fh * 48), std::abs(fw * 64)});
  }
  EXPECT_GT(moved, 8);  // the shifts are large enough to tell the image sizes apart
}

TEST(AugmentAt, EachStageIsItsDocumentedOrderPixelForPixel) {
  // source: decode -> draw for the decoded size -> apply_augment -> resize; network: decode ->
  // resize -> draw for the network size -> apply_augment. Rotation and zoom about the centre
  // too: on a non-square image resized to a square, the two differ.
  TempDir d;
  const cv::Mat bgr = testing::make_image(70, 110, 5);
  testing::write_image(d / "x.png", bgr);
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  ImageOptions opt;
  opt.height = opt.width = 40;
  AugmentOptions a;
  a.copies = 3;
  a.rotation = 30;
  a.width_shift = 0.1;
  a.zoom_lo = 0.8;
  a.zoom_hi = 1.2;
  a.channel_shift = 30;
  a.brightness_lo = 0.7;
  a.brightness_hi = 1.3;
  a.horizontal_flip = true;
  for (const FillMode fill : {FillMode::nearest, FillMode::constant, FillMode::reflect}) {
    a.fill = fill;
    a.at = AugmentStage::source;
    std::vector<cv::Mat> src, net;
    load_augmented(d / "x.png", "x.png", opt, a, a.copies, src);
    a.at = AugmentStage::network;
    load_augmented(d / "x.png", "x.png", opt, a, a.copies, net);
    const cv::Mat sized = resize_image(rgb, 40, 40, opt.resize);
    for (int c = 1; c <= a.copies; ++c) {
      const cv::Mat want_src = resize_image(
          apply_augment(rgb, draw_augment(a, "x.png", c, 70, 110), a), 40, 40, opt.resize);
      const cv::Mat want_net = apply_augment(sized, draw_augment(a, "x.png", c, 40, 40), a);
      EXPECT_EQ(cv::norm(src[c], want_src, cv::NORM_INF), 0) << c;
      EXPECT_EQ(cv::norm(net[c], want_net, cv::NORM_INF), 0) << c;
      EXPECT_GT(cv::norm(src[c], net[c], cv::NORM_L1), 0) << c;  // the stages differ
    }
  }
}

TEST(AugmentAt, ASideBeyondOpenCVsWarpIsRefusedAtSourceNamingTheOtherStage) {
  // cv::remap (under cv::warpAffine) asserts sides below 32767; the decoder takes up to PIL's
  // pixel limit. At source such an image fails with a reason; at network it is transformed.
  TempDir d;
  testing::write_image(d / "pano.png", noise(2, 33000, 9));
  ImageOptions opt;
  opt.height = opt.width = 32;
  AugmentOptions a;
  a.copies = 1;
  a.rotation = 10;
  std::vector<cv::Mat> out;
  const auto msg =
      testing::error_of([&] { load_augmented(d / "pano.png", "pano.png", opt, a, a.copies, out); });
  EXPECT_HAS(msg, "pano.png");
  EXPECT_HAS(msg, "2x33000 is too large to augment at its own resolution");
  EXPECT_HAS(msg, "--augment-at network");
  EXPECT_TRUE(out.empty());  // no original without its copies
  a.at = AugmentStage::network;
  load_augmented(d / "pano.png", "pano.png", opt, a, a.copies, out);
  EXPECT_EQ(out.size(), 2u);
}

TEST(AugmentAt, StagesGiveDifferentValidRowsAndTheAttributeRoundTrips) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a", "b"}, 2, 45, 70);  // larger than 32x32, wide
  const auto src_cfg = augmented(d / "imgs", d / "src.h5");
  auto net_cfg = augmented(d / "imgs", d / "net.h5");
  net_cfg.augment.at = AugmentStage::network;
  EXPECT_EQ(src_cfg.augment.at, AugmentStage::source);  // the default
  run(src_cfg);
  run(net_cfg);
  const Contents s = read_all(src_cfg.output), n = read_all(net_cfg.output);
  EXPECT_EQ(s.meta.augment.at, AugmentStage::source);
  EXPECT_EQ(n.meta.augment.at, AugmentStage::network);
  EXPECT_EQ(h5::File::open(src_cfg.output).read_attr<std::string>("augment_at"), "source");
  EXPECT_EQ(h5::File::open(net_cfg.output).read_attr<std::string>("augment_at"), "network");
  EXPECT_EQ(h5::File::open(src_cfg.output).read_attr<std::int64_t>("format_version"), 2);
  EXPECT_EQ(h5::File::open(net_cfg.output).read_attr<std::int64_t>("format_version"), 2);
  ASSERT_EQ(s.features.size(), n.features.size());
  ASSERT_EQ(s.paths, n.paths);
  const auto index = FeatureReader(src_cfg.output).augment_index();
  EXPECT_EQ(index, FeatureReader(net_cfg.output).augment_index());
  const size_t row = s.features.size() / s.paths.size();
  for (size_t r = 0; r < s.paths.size(); ++r) {
    const auto sb = s.features.begin() + r * row, nb = n.features.begin() + r * row;
    EXPECT_TRUE(std::all_of(sb, sb + row, [](float v) { return std::isfinite(v); })) << r;
    EXPECT_TRUE(std::all_of(nb, nb + row, [](float v) { return std::isfinite(v); })) << r;
    if (index[r] == 0)
      EXPECT_TRUE(std::equal(sb, sb + row, nb)) << "original row " << r;
    else
      EXPECT_FALSE(std::equal(sb, sb + row, nb)) << "copy row " << r;
  }
}

TEST(AugmentAt, DefaultIsSourceOnTheCommandLineAndInTheHelp) {
  EXPECT_EQ(AugmentOptions{}.at, AugmentStage::source);
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a"}, 1);
  auto output_of = [](const std::string& cmd) {
    std::string out;
    FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    if (!p) return std::string("popen failed");
    char buf[512];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
    return out;
  };
  const std::string bin = TL_EXTRACT_BIN;
  const std::string base = bin + " --images " + (d / "imgs").string() + " --preview " +
                           (d / "p.png").string() + " --augment 1 --rotation 5";
  EXPECT_HAS(output_of(base), "at source resolution");
  EXPECT_HAS(output_of(base + " --augment-at network"), "at network size");
  const std::string help = output_of(bin + " --help");
  EXPECT_HAS(help, "--augment-at");
  EXPECT_HAS(help, "(=source)");
}

TEST(AugmentAt, AFileWithoutTheAttributeReadsAsNetworkAndResumesOnlyAtNetwork) {
  // Files written before --augment-at existed made their copies at the network size.
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a"}, 3, 45, 70);
  auto old = augmented(d / "imgs", d / "old.h5");
  old.augment.at = AugmentStage::network;
  std::atomic<bool> stop{true};
  std::ostringstream log;
  run_extract(old, log, &stop);  // creates the file, commits nothing
  {
    auto f = h5::File::open(old.output, h5::Mode::read_write);
    f.delete_attr("augment_at");
  }
  EXPECT_EQ(FeatureReader(old.output).meta().augment.at, AugmentStage::network);
  auto now = old;
  now.augment.at = AugmentStage::source;  // today's default
  EXPECT_HAS(testing::error_of([&] { run(now); }),
             "--augment-at: the file has network, this run asks for source");
  EXPECT_TRUE(run(old).complete);  // resumed at network
  auto fresh = old;
  fresh.output = d / "fresh.h5";
  run(fresh);
  EXPECT_EQ(read_all(old.output).features, read_all(fresh.output).features);
  EXPECT_EQ(FeatureReader(old.output).meta().augment.at, AugmentStage::network);
  EXPECT_EQ(h5::File::open(old.output).read_attr<std::int64_t>("format_version"), 2);
  // An unknown value in a file is the file's fault (Error, not a usage error), named.
  {
    auto f = h5::File::open(fresh.output, h5::Mode::read_write);
    f.write_attr("augment_at", "elsewhere");
  }
  EXPECT_HAS(testing::error_of([&] { FeatureReader r(fresh.output); }), "augment_at");
}

// ---- training and prediction --------------------------------------------------------------

TEST(AugmentTrain, ValidationSplitHoldsOriginalsOnlyAndNoSiblingTrains) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a", "b", "c"}, 6, 32, 32);
  const auto cfg = augmented(d / "imgs", d / "aug.h5", 3);
  run(cfg);
  const auto plain_cfg = small_config(d / "imgs", d / "plain.h5");
  run(plain_cfg);
  FeatureFileSource src({cfg.output}, 1ull << 30);
  ASSERT_EQ(src.rows(), 72u);
  EXPECT_TRUE(src.has_augmented_rows());
  EXPECT_EQ(src.original_rows().size(), 18u);
  const Split s = split_by_image(src, 0.34, 3);
  EXPECT_EQ(s.val.size(), 6u);  // 2 of 6 images per class
  EXPECT_EQ(s.train.size() + s.val.size() * 4, 72u);
  std::set<std::string> val_paths;
  for (size_t r : s.val) {
    EXPECT_EQ(src.augment_index()[r], 0) << "validation row " << r << " is a copy";
    val_paths.insert(src.paths()[r]);
  }
  for (size_t r : s.train) EXPECT_EQ(val_paths.count(src.paths()[r]), 0u) << src.paths()[r];
  // The images held out are the ones the plain file's split holds out.
  FeatureFileSource plain({plain_cfg.output}, 1ull << 30);
  EXPECT_FALSE(plain.has_augmented_rows());
  const Split p = split_by_image(plain, 0.34, 3);
  EXPECT_EQ(p.val, stratified_split(plain, 0.34, 3).val);
  std::set<std::string> plain_val;
  for (size_t r : p.val) plain_val.insert(plain.paths()[r]);
  EXPECT_EQ(plain_val, val_paths);

  // tl-train: a split and a validation file both use originals only; tl-predict too.
  std::ostringstream log;
  TrainRunConfig t;
  t.train = {cfg.output};
  t.val_split = 0.34;
  t.output = d / "m1.h5";
  t.options.epochs = 2;
  t.quiet = true;
  run_training(t, log);
  EXPECT_HAS(log.str(), "6 images held out of 18");
  EXPECT_HAS(log.str(), "training on 48 rows");
  EXPECT_HAS(load_model(d / "m1.h5").info.training.at("augment"), "3 copies per image");
  EXPECT_HAS(load_model(d / "m1.h5").info.training.at("augment"), "at source resolution");
  t.val_split = 0;
  t.val = {cfg.output};
  t.output = d / "m2.h5";
  run_training(t, log);
  EXPECT_HAS(log.str(), "its 18 original rows (augmented copies left out)");
  PredictRunConfig pc;
  pc.model = d / "m2.h5";
  pc.features = cfg.output;
  pc.output = d / "pred.csv";
  pc.metrics_json = d / "pred.json";
  const PredictRunSummary ps = run_prediction(pc, log);
  EXPECT_EQ(ps.rows, 18u);
  const std::string csv = testing::read_bytes(d / "pred.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 19);  // header + one line per image
  EXPECT_HAS(testing::read_bytes(d / "pred.json"), "\"rows\": 18");
}

// ---- preview ------------------------------------------------------------------------------

TEST(AugmentPreview, GridOfTheFirstImagesAndTheirFirstCopies) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a", "b"}, 3, 40, 30);
  testing::write_text(d / "imgs" / "a" / "img0.png", "broken: skipped, the next one is used");
  auto cfg = augmented(d / "imgs", d / "unused.h5", 12);
  cfg.net.height = 48;
  cfg.net.width = 40;
  std::ostringstream log;
  const auto s = write_augment_preview(cfg, d / "p.png", log, 4, 8);
  EXPECT_EQ(s.images, 4);
  EXPECT_EQ(s.copies, 8);
  const cv::Mat png = cv::imread((d / "p.png").string(), cv::IMREAD_UNCHANGED);
  ASSERT_FALSE(png.empty());
  EXPECT_EQ(png.rows, 4 * 48);
  EXPECT_EQ(png.cols, 9 * 40);
  EXPECT_EQ(png.channels(), 3);
  EXPECT_HAS(log.str(), "a/img0.png");
  EXPECT_HAS(log.str(), "at source resolution");  // the stage, default source
  EXPECT_FALSE(fs::exists(d / "unused.h5"));      // nothing extracted
  cfg.augment.copies = 2;                         // fewer copies than asked for: all of them
  EXPECT_EQ(write_augment_preview(cfg, d / "q.png", log, 1, 8).width, 3 * 40);
  cfg.augment = {};
  EXPECT_HAS(testing::error_of([&] { write_augment_preview(cfg, d / "r.png", log); }),
             "--preview: needs --augment");
  cfg = augmented(d / "imgs", d / "unused.h5");
  EXPECT_HAS(testing::error_of([&] { write_augment_preview(cfg, d / "no-dir" / "p.png", log); }),
             "p.png");
}

}  // namespace
}  // namespace tl
