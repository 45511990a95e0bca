// Tests for decoding, resizing and preprocessing images (tl/image.hpp). Expected values come
// from real Pillow 9.4 and NumPy float32 (Keras's arithmetic), written here as literals.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "odd_images.hpp"
#include "tl/error.hpp"
#include "tl/image.hpp"

namespace fs = std::filesystem;

namespace {

// ---------------------------------------------------------------------------------------
// Nearest indices

struct NearestCase {
  int in;
  int out;
  std::vector<int> pil;  // source index of each output pixel, read back from Pillow
};

// Pillow 9.4: Image.fromarray(np.arange(in, dtype=int32)[None], "I").resize((out, 1),
// Image.NEAREST); the same lists come back along the y axis.
const std::vector<NearestCase>& pillow_cases() {
  static const std::vector<NearestCase> cases = {
      // 640 -> 150
      {640, 150, {2,   6,   10,  14,  19,  23,  27,  31,  36,  40,  44,  49,  53,  57,  61,
                  66,  70,  74,  78,  83,  87,  91,  95,  100, 104, 108, 113, 117, 121, 125,
                  130, 134, 138, 142, 147, 151, 155, 160, 164, 168, 172, 177, 181, 185, 189,
                  194, 198, 202, 206, 211, 215, 219, 224, 228, 232, 236, 241, 245, 249, 253,
                  258, 262, 266, 270, 275, 279, 283, 288, 292, 296, 300, 305, 309, 313, 317,
                  322, 326, 330, 334, 339, 343, 347, 352, 356, 360, 364, 369, 373, 377, 381,
                  386, 390, 394, 398, 403, 407, 411, 415, 420, 424, 428, 433, 437, 441, 445,
                  450, 454, 458, 462, 467, 471, 475, 479, 484, 488, 492, 497, 501, 505, 509,
                  514, 518, 522, 526, 531, 535, 539, 543, 548, 552, 556, 561, 565, 569, 573,
                  578, 582, 586, 590, 595, 599, 603, 607, 612, 616, 620, 625, 629, 633, 637}},
      // 4032 -> 224
      {4032,
       224,
       {9,    27,   45,   63,   81,   99,   117,  135,  153,  171,  189,  207,  225,  243,  261,
        279,  297,  315,  333,  351,  369,  387,  405,  423,  441,  459,  477,  495,  513,  531,
        549,  567,  585,  603,  621,  639,  657,  675,  693,  711,  729,  747,  765,  783,  801,
        819,  837,  855,  873,  891,  909,  927,  945,  963,  981,  999,  1017, 1035, 1053, 1071,
        1089, 1107, 1125, 1143, 1161, 1179, 1197, 1215, 1233, 1251, 1269, 1287, 1305, 1323, 1341,
        1359, 1377, 1395, 1413, 1431, 1449, 1467, 1485, 1503, 1521, 1539, 1557, 1575, 1593, 1611,
        1629, 1647, 1665, 1683, 1701, 1719, 1737, 1755, 1773, 1791, 1809, 1827, 1845, 1863, 1881,
        1899, 1917, 1935, 1953, 1971, 1989, 2007, 2025, 2043, 2061, 2079, 2097, 2115, 2133, 2151,
        2169, 2187, 2205, 2223, 2241, 2259, 2277, 2295, 2313, 2331, 2349, 2367, 2385, 2403, 2421,
        2439, 2457, 2475, 2493, 2511, 2529, 2547, 2565, 2583, 2601, 2619, 2637, 2655, 2673, 2691,
        2709, 2727, 2745, 2763, 2781, 2799, 2817, 2835, 2853, 2871, 2889, 2907, 2925, 2943, 2961,
        2979, 2997, 3015, 3033, 3051, 3069, 3087, 3105, 3123, 3141, 3159, 3177, 3195, 3213, 3231,
        3249, 3267, 3285, 3303, 3321, 3339, 3357, 3375, 3393, 3411, 3429, 3447, 3465, 3483, 3501,
        3519, 3537, 3555, 3573, 3591, 3609, 3627, 3645, 3663, 3681, 3699, 3717, 3735, 3753, 3771,
        3789, 3807, 3825, 3843, 3861, 3879, 3897, 3915, 3933, 3951, 3969, 3987, 4005, 4023}},
      // 500 -> 224
      {500, 224, {1,   3,   5,   7,   10,  12,  14,  16,  18,  21,  23,  25,  27,  30,  32,  34,
                  36,  39,  41,  43,  45,  47,  50,  52,  54,  56,  59,  61,  63,  65,  68,  70,
                  72,  74,  77,  79,  81,  83,  85,  88,  90,  92,  94,  97,  99,  101, 103, 106,
                  108, 110, 112, 114, 117, 119, 121, 123, 126, 128, 130, 132, 135, 137, 139, 141,
                  143, 146, 148, 150, 152, 155, 157, 159, 161, 164, 166, 168, 170, 172, 175, 177,
                  179, 181, 184, 186, 188, 190, 193, 195, 197, 199, 202, 204, 206, 208, 210, 213,
                  215, 217, 219, 222, 224, 226, 228, 231, 233, 235, 237, 239, 242, 244, 246, 248,
                  251, 253, 255, 257, 260, 262, 264, 266, 268, 271, 273, 275, 277, 280, 282, 284,
                  286, 289, 291, 293, 295, 297, 300, 302, 304, 306, 309, 311, 313, 315, 318, 320,
                  322, 324, 327, 329, 331, 333, 335, 338, 340, 342, 344, 347, 349, 351, 353, 356,
                  358, 360, 362, 364, 367, 369, 371, 373, 376, 378, 380, 382, 385, 387, 389, 391,
                  393, 396, 398, 400, 402, 405, 407, 409, 411, 414, 416, 418, 420, 422, 425, 427,
                  429, 431, 434, 436, 438, 440, 443, 445, 447, 449, 452, 454, 456, 458, 460, 463,
                  465, 467, 469, 472, 474, 476, 478, 481, 483, 485, 487, 489, 492, 494, 496, 498}},
      // 375 -> 224
      {375, 224, {0,   2,   4,   5,   7,   9,   10,  12,  14,  15,  17,  19,  20,  22,  24,  25,
                  27,  29,  30,  32,  34,  35,  37,  39,  41,  42,  44,  46,  47,  49,  51,  52,
                  54,  56,  57,  59,  61,  62,  64,  66,  67,  69,  71,  72,  74,  76,  77,  79,
                  81,  82,  84,  86,  87,  89,  91,  92,  94,  96,  97,  99,  101, 102, 104, 106,
                  107, 109, 111, 113, 114, 116, 118, 119, 121, 123, 124, 126, 128, 129, 131, 133,
                  134, 136, 138, 139, 141, 143, 144, 146, 148, 149, 151, 153, 154, 156, 158, 159,
                  161, 163, 164, 166, 168, 169, 171, 173, 174, 176, 178, 179, 181, 183, 184, 186,
                  188, 190, 191, 193, 195, 196, 198, 200, 201, 203, 205, 206, 208, 210, 211, 213,
                  215, 216, 218, 220, 221, 223, 225, 226, 228, 230, 231, 233, 235, 236, 238, 240,
                  241, 243, 245, 246, 248, 250, 251, 253, 255, 256, 258, 260, 261, 263, 265, 267,
                  268, 270, 272, 273, 275, 277, 278, 280, 282, 283, 285, 287, 288, 290, 292, 293,
                  295, 297, 298, 300, 302, 303, 305, 307, 308, 310, 312, 313, 315, 317, 318, 320,
                  322, 323, 325, 327, 328, 330, 332, 333, 335, 337, 339, 340, 342, 344, 345, 347,
                  349, 350, 352, 354, 355, 357, 359, 360, 362, 364, 365, 367, 369, 370, 372, 374}},
      // 7 -> 3
      {7, 3, {1, 3, 5}},
      // 3 -> 7
      {3, 7, {0, 0, 1, 1, 1, 2, 2}},
  };
  return cases;
}

TEST(PilNearestIndices, MatchPillow) {
  for (const auto& c : pillow_cases()) {
    SCOPED_TRACE(std::to_string(c.in) + " -> " + std::to_string(c.out));
    EXPECT_EQ(tl::pil_nearest_indices(c.in, c.out), c.pil);
  }
}

TEST(PilNearestIndices, SameSizeIsIdentity) {
  const std::vector<int> idx = tl::pil_nearest_indices(224, 224);
  ASSERT_EQ(idx.size(), 224u);
  for (int i = 0; i < 224; ++i) EXPECT_EQ(idx[i], i);
}

TEST(PilNearestIndices, OneOutputPixelPicksTheMiddle) {
  EXPECT_EQ(tl::pil_nearest_indices(640, 1), std::vector<int>{320});
  EXPECT_EQ(tl::pil_nearest_indices(1, 5), std::vector<int>(5, 0));
}

TEST(PilNearestIndices, RejectsNonPositiveSizes) {
  EXPECT_THROW(tl::pil_nearest_indices(0, 3), tl::Error);
  EXPECT_THROW(tl::pil_nearest_indices(3, 0), tl::Error);
}

// Pillow adds the step per pixel; (i + 0.5) * scale lands on the other side of an integer
// for 640 -> 150, so a closed-form rewrite would be caught here.
TEST(PilNearestIndices, RepeatedAdditionIsNotTheClosedForm) {
  const std::vector<int> ours = tl::pil_nearest_indices(640, 150);
  const double scale = 640.0 / 150.0;
  int differ = 0;
  for (int i = 0; i < 150; ++i) differ += static_cast<int>((i + 0.5) * scale) != ours[i];
  EXPECT_GT(differ, 0);
}

std::vector<int> opencv_nearest(int in, int out, int interpolation) {
  cv::Mat src(1, in, CV_32S);
  for (int i = 0; i < in; ++i) src.at<int>(0, i) = i;
  cv::Mat dst;
  cv::resize(src, dst, cv::Size(out, 1), 0, 0, interpolation);
  return {dst.begin<int>(), dst.end<int>()};
}

// OpenCV's nearest modes are not Pillow's: a regression to them must fail.
TEST(PilNearestIndices, DiffersFromOpenCvNearestExact) {
  EXPECT_NE(opencv_nearest(640, 150, cv::INTER_NEAREST_EXACT), tl::pil_nearest_indices(640, 150));
  EXPECT_NE(opencv_nearest(4032, 224, cv::INTER_NEAREST_EXACT), tl::pil_nearest_indices(4032, 224));
  EXPECT_NE(opencv_nearest(500, 224, cv::INTER_NEAREST), tl::pil_nearest_indices(500, 224));
}

// ---------------------------------------------------------------------------------------
// resize_image

// R = row, G = column, B = 200 (as in the Pillow run that produced the literals below).
cv::Mat coordinate_image(int h, int w) {
  cv::Mat m(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) m.at<cv::Vec3b>(y, x) = cv::Vec3b(y, x, 200);
  }
  return m;
}

void expect_picks(const cv::Mat& out, const std::vector<int>& rows, const std::vector<int>& cols) {
  ASSERT_EQ(out.type(), CV_8UC3);
  ASSERT_EQ(out.rows, static_cast<int>(rows.size()));
  ASSERT_EQ(out.cols, static_cast<int>(cols.size()));
  for (int y = 0; y < out.rows; ++y) {
    for (int x = 0; x < out.cols; ++x) {
      const cv::Vec3b p = out.at<cv::Vec3b>(y, x);
      ASSERT_EQ(p, cv::Vec3b(rows[y], cols[x], 200)) << "at " << y << "," << x;
    }
  }
}

// Pillow 9.4, Image.fromarray(coordinate image, "RGB").resize((w, h), Image.NEAREST).
TEST(ResizeImage, NearestMatchesPillowOnBothAxes) {
  expect_picks(tl::resize_image(coordinate_image(11, 13), 4, 5, tl::ResizeMode::nearest),
               {1, 4, 6, 9}, {1, 3, 6, 9, 11});
  expect_picks(tl::resize_image(coordinate_image(2, 3), 5, 7, tl::ResizeMode::nearest),
               {0, 0, 1, 1, 1}, {0, 0, 1, 1, 1, 2, 2});
}

TEST(ResizeImage, NearestLargeImageUsesPillowIndices) {
  // 16-bit coordinates: R, G = low bytes of row, column; B = their high bytes.
  const int h = 480, w = 640;
  cv::Mat src(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x)
      src.at<cv::Vec3b>(y, x) = cv::Vec3b(y & 255, x & 255, (y >> 8) | ((x >> 8) << 4));
  }
  const cv::Mat out = tl::resize_image(src, 224, 150, tl::ResizeMode::nearest);
  ASSERT_EQ(out.size(), cv::Size(150, 224));
  const std::vector<int> rows = tl::pil_nearest_indices(h, 224);
  const std::vector<int> cols = pillow_cases()[0].pil;  // 640 -> 150 from Pillow
  for (int y = 0; y < 224; ++y) {
    for (int x = 0; x < 150; ++x) {
      const cv::Vec3b p = out.at<cv::Vec3b>(y, x);
      const int row = p[0] | ((p[2] & 15) << 8);
      const int col = p[1] | ((p[2] >> 4) << 8);
      ASSERT_EQ(row, rows[y]);
      ASSERT_EQ(col, cols[x]);
    }
  }
}

TEST(ResizeImage, NearestReadsRoiInput) {
  const cv::Mat big = coordinate_image(20, 30);
  const cv::Mat roi = big(cv::Rect(5, 3, 13, 11));  // not continuous
  const cv::Mat out = tl::resize_image(roi, 4, 5, tl::ResizeMode::nearest);
  expect_picks(out, {4, 7, 9, 12}, {6, 8, 11, 14, 16});
}

cv::Mat noise_image(int h, int w, int seed) {
  cv::Mat m(h, w, CV_8UC3);
  cv::RNG rng(seed);
  rng.fill(m, cv::RNG::UNIFORM, 0, 256);
  return m;
}

bool same(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0;
}

TEST(ResizeImage, BilinearAndAreaAreOpenCv) {
  const cv::Mat src = noise_image(97, 131, 1);
  cv::Mat want;
  cv::resize(src, want, cv::Size(64, 48), 0, 0, cv::INTER_LINEAR);
  EXPECT_TRUE(same(tl::resize_image(src, 48, 64, tl::ResizeMode::bilinear), want));
  cv::resize(src, want, cv::Size(64, 48), 0, 0, cv::INTER_AREA);
  EXPECT_TRUE(same(tl::resize_image(src, 48, 64, tl::ResizeMode::area), want));
}

TEST(ResizeImage, SameSizeIsACopy) {
  const cv::Mat src = noise_image(32, 40, 2);
  for (auto mode : {tl::ResizeMode::nearest, tl::ResizeMode::bilinear, tl::ResizeMode::area}) {
    const cv::Mat out = tl::resize_image(src, 32, 40, mode);
    EXPECT_TRUE(same(out, src));
    EXPECT_NE(out.data, src.data);
  }
}

// torchvision's preset for 224: short side to 256 (long side truncated), centre crop with
// offsets from Python's round(): (341 - 224) / 2 = 58.5 rounds to 58.
TEST(ResizeImage, CropLandscapeIsResize256ThenCentre224) {
  const cv::Mat src = noise_image(300, 400, 3);
  cv::Mat scaled;
  cv::resize(src, scaled, cv::Size(341, 256), 0, 0, cv::INTER_LINEAR);
  const cv::Mat want = scaled(cv::Rect(58, 16, 224, 224));
  EXPECT_TRUE(same(tl::resize_image(src, 224, 224, tl::ResizeMode::crop), want));
}

TEST(ResizeImage, CropPortrait) {
  const cv::Mat src = noise_image(500, 375, 4);  // 256 x 375 * 256 / 500 -> 341 x 256
  cv::Mat scaled;
  cv::resize(src, scaled, cv::Size(256, 341), 0, 0, cv::INTER_LINEAR);
  const cv::Mat want = scaled(cv::Rect(16, 58, 224, 224));
  EXPECT_TRUE(same(tl::resize_image(src, 224, 224, tl::ResizeMode::crop), want));
}

TEST(ResizeImage, CropExactCoverIsOnlyACentreCut) {
  const cv::Mat src = noise_image(256, 256, 5);
  EXPECT_TRUE(
      same(tl::resize_image(src, 224, 224, tl::ResizeMode::crop), src(cv::Rect(16, 16, 224, 224))));
}

// Target 112 x 224 must cover 128 x 256: a 300 x 400 image binds on the width (256 / 400 >
// 128 / 300), so it becomes 192 x 256 and the centre 112 x 224 is cut at (40, 16).
TEST(ResizeImage, CropNonSquareTarget) {
  const cv::Mat src = noise_image(300, 400, 6);
  cv::Mat scaled;
  cv::resize(src, scaled, cv::Size(256, 192), 0, 0, cv::INTER_LINEAR);
  const cv::Mat want = scaled(cv::Rect(16, 40, 224, 112));
  EXPECT_TRUE(same(tl::resize_image(src, 112, 224, tl::ResizeMode::crop), want));
}

TEST(ResizeImage, RejectsBadInput) {
  EXPECT_THROW(tl::resize_image(cv::Mat(), 4, 4, tl::ResizeMode::nearest), tl::Error);
  EXPECT_THROW(tl::resize_image(cv::Mat(4, 4, CV_8UC1), 4, 4, tl::ResizeMode::nearest), tl::Error);
  EXPECT_THROW(tl::resize_image(noise_image(4, 4, 7), 0, 4, tl::ResizeMode::bilinear), tl::Error);
  EXPECT_THROW(tl::resize_image(noise_image(1, 5000, 7), 224, 224, tl::ResizeMode::crop),
               tl::Error);  // 256 x 1280000 intermediate
}

// ---------------------------------------------------------------------------------------
// preprocess_image

// Pixels (R, G, B) and what Keras gives for them: NumPy float32, imagenet_utils's
// _preprocess_numpy_input for caffe/torch/tf, `x *= 1./255` (ImageDataGenerator) for rescale.
const std::vector<cv::Vec3b> kPixels = {
    {0, 0, 0}, {255, 255, 255}, {1, 128, 254}, {3, 6, 7}, {12, 100, 200}};

struct PreprocessCase {
  tl::Preprocess mode;
  std::vector<float> want;  // [pixel][3] in the mode's channel order
};

const std::vector<PreprocessCase>& preprocess_cases() {
  static const std::vector<PreprocessCase> cases = {
      {tl::Preprocess::caffe,
       {-103.939f, -116.779f, -123.68f, 151.061f, 138.22101f, 131.32f, 150.061f, 11.221001f,
        -122.68f, -96.939f, -110.779f, -120.68f, 96.061f, -16.779f, -111.68f}},
      {tl::Preprocess::torch,
       {-2.117904f, -2.0357141f, -1.8044444f, 2.2489083f, 2.4285715f, 2.64f, -2.1007793f,
        0.2051822f, 2.622571f, -2.0665298f, -1.9306722f, -1.68244f, -1.9124069f, -0.28501397f,
        1.6813945f}},
      {tl::Preprocess::tf,
       {-1.0f, -1.0f, -1.0f, 1.0f, 1.0f, 1.0f, -0.99215686f, 0.003921628f, 0.99215686f, -0.9764706f,
        -0.9529412f, -0.94509804f, -0.90588236f, -0.21568626f, 0.5686275f}},
      {tl::Preprocess::rescale,
       {0.0f, 0.0f, 0.0f, 1.0f, 1.0f, 1.0f, 0.003921569f, 0.5019608f, 0.9960785f, 0.011764707f,
        0.023529414f, 0.027450982f, 0.04705883f, 0.3921569f, 0.7843138f}},
      {tl::Preprocess::none,
       {0.0f, 0.0f, 0.0f, 255.0f, 255.0f, 255.0f, 1.0f, 128.0f, 254.0f, 3.0f, 6.0f, 7.0f, 12.0f,
        100.0f, 200.0f}},
  };
  return cases;
}

cv::Mat pixel_row() {
  cv::Mat m(1, static_cast<int>(kPixels.size()), CV_8UC3);
  for (int i = 0; i < m.cols; ++i) m.at<cv::Vec3b>(0, i) = kPixels[i];
  return m;
}

TEST(PreprocessImage, EachModeMatchesKerasBitForBit) {
  const cv::Mat rgb = pixel_row();
  for (const auto& c : preprocess_cases()) {
    SCOPED_TRACE(std::string(tl::to_string(c.mode)));
    std::vector<float> got(c.want.size(), std::nanf(""));
    tl::preprocess_image(rgb, c.mode, got.data());
    for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], c.want[i]) << "element " << i;
  }
}

// rescale multiplies by float32(1/255) as Keras does; x / 255 differs in the last bit here.
TEST(PreprocessImage, RescaleMultipliesLikeKeras) {
  const cv::Mat rgb(1, 1, CV_8UC3, cv::Scalar(254, 3, 12));
  float got[3];
  tl::preprocess_image(rgb, tl::Preprocess::rescale, got);
  EXPECT_EQ(got[0], 0.9960785f);
  EXPECT_NE(got[0], 254.0f / 255.0f);
}

TEST(PreprocessImage, CaffeIsBgrOthersRgb) {
  const cv::Mat rgb(1, 1, CV_8UC3, cv::Scalar(10, 20, 30));  // R = 10, B = 30
  float caffe[3], none[3];
  tl::preprocess_image(rgb, tl::Preprocess::caffe, caffe);
  tl::preprocess_image(rgb, tl::Preprocess::none, none);
  EXPECT_EQ(caffe[0], 30.0f - 103.939f);
  EXPECT_EQ(caffe[2], 10.0f - 123.68f);
  EXPECT_EQ(none[0], 10.0f);
  EXPECT_EQ(none[2], 30.0f);
}

TEST(PreprocessImage, LayoutIsHwcAndRoiIsRead) {
  const cv::Mat big = coordinate_image(8, 9);
  const cv::Mat roi = big(cv::Rect(2, 1, 5, 4));
  std::vector<float> got(4 * 5 * 3);
  tl::preprocess_image(roi, tl::Preprocess::none, got.data());
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 5; ++x) {
      const float* p = &got[(y * 5 + x) * 3];
      EXPECT_EQ(p[0], y + 1.0f);
      EXPECT_EQ(p[1], x + 2.0f);
      EXPECT_EQ(p[2], 200.0f);
    }
  }
}

TEST(PreprocessImage, RejectsWrongType) {
  float dst[3];
  EXPECT_THROW(tl::preprocess_image(cv::Mat(1, 1, CV_8UC4), tl::Preprocess::none, dst), tl::Error);
  EXPECT_THROW(tl::preprocess_image(cv::Mat(), tl::Preprocess::none, dst), tl::Error);
}

// ---------------------------------------------------------------------------------------
// Options

TEST(ImageOptions, ParseRoundTrips) {
  for (auto p : {tl::Preprocess::caffe, tl::Preprocess::torch, tl::Preprocess::tf,
                 tl::Preprocess::rescale, tl::Preprocess::none}) {
    EXPECT_EQ(tl::parse_preprocess(tl::to_string(p)), p);
  }
  for (auto r : {tl::ResizeMode::nearest, tl::ResizeMode::bilinear, tl::ResizeMode::area,
                 tl::ResizeMode::crop}) {
    EXPECT_EQ(tl::parse_resize(tl::to_string(r)), r);
  }
  EXPECT_EQ(tl::to_string(tl::Preprocess::caffe), "caffe");
  EXPECT_EQ(tl::to_string(tl::ResizeMode::crop), "crop");
}

template <typename F>
std::string usage_error_of(F f) {
  try {
    f();
  } catch (const tl::UsageError& e) {
    return e.what();
  }
  return "(no UsageError)";
}

TEST(ImageOptions, BadValuesNameTheAcceptedOnes) {
  const std::string p = usage_error_of([] { tl::parse_preprocess("imagenet"); });
  EXPECT_NE(p.find("'imagenet'"), std::string::npos) << p;
  EXPECT_NE(p.find("caffe, torch, tf, rescale, none"), std::string::npos) << p;
  const std::string r = usage_error_of([] { tl::parse_resize("bicubic"); });
  EXPECT_NE(r.find("'bicubic'"), std::string::npos) << r;
  EXPECT_NE(r.find("nearest, bilinear, area, crop"), std::string::npos) << r;
  EXPECT_THROW(tl::parse_preprocess("Caffe"), tl::UsageError);
  EXPECT_THROW(tl::parse_resize(""), tl::UsageError);
}

TEST(ImageExtension, AnyCase) {
  for (const char* ok : {"a.jpg", "a.JPG", "dir/b.JpEg", "c.png", "d.PNG", "e.bmp", "f.ppm",
                         "g.PGM", "h.tif", "i.TIFF", "j.webp", "k.WebP"}) {
    EXPECT_TRUE(tl::has_image_extension(ok)) << ok;
  }
  for (const char* bad : {"a.txt", "noext", "a.jpg.txt", "a.gif", "a.jp", "dir.jpg/file", "a."}) {
    EXPECT_FALSE(tl::has_image_extension(bad)) << bad;
  }
}

// ---------------------------------------------------------------------------------------
// decode_image and load_image on files in a fresh temporary folder

class ImageFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "tl_test_image_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  fs::path write_image(const std::string& name, const cv::Mat& m,
                       const std::vector<int>& params = {}) {
    const fs::path p = dir_ / name;
    EXPECT_TRUE(cv::imwrite(p.string(), m, params)) << p;
    return p;
  }
  fs::path write_bytes(const std::string& name, const std::vector<std::uint8_t>& bytes) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    return p;
  }
  static std::vector<std::uint8_t> read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  // The what() of the tl::Error that decoding `p` throws ("" when none).
  static std::string decode_error(const fs::path& p) {
    try {
      tl::decode_image(p);
    } catch (const tl::Error& e) {
      return e.what();
    }
    return "";
  }
  void expect_decode_error(const fs::path& p, const std::string& reason) {
    const std::string what = decode_error(p);
    EXPECT_NE(what.find(p.string()), std::string::npos) << what;
    EXPECT_NE(what.find(reason), std::string::npos) << what;
  }

  fs::path dir_;
};

cv::Vec3b rgb_at(const cv::Mat& m, int y, int x) {
  return m.at<cv::Vec3b>(y, x);
}

TEST_F(ImageFiles, PngGrayBecomesRgb) {
  cv::Mat gray(3, 4, CV_8UC1);
  for (int i = 0; i < 12; ++i) gray.data[i] = static_cast<std::uint8_t>(i * 20);
  const cv::Mat rgb = tl::decode_image(write_image("gray.png", gray));
  ASSERT_EQ(rgb.type(), CV_8UC3);
  ASSERT_EQ(rgb.size(), cv::Size(4, 3));
  for (int i = 0; i < 12; ++i) {
    const std::uint8_t v = static_cast<std::uint8_t>(i * 20);
    EXPECT_EQ(rgb_at(rgb, i / 4, i % 4), cv::Vec3b(v, v, v));
  }
}

TEST_F(ImageFiles, PngRgbaDropsAlpha) {
  cv::Mat bgra(1, 2, CV_8UC4);
  bgra.at<cv::Vec4b>(0, 0) = cv::Vec4b(10, 20, 30, 0);  // fully transparent: colour kept
  bgra.at<cv::Vec4b>(0, 1) = cv::Vec4b(40, 50, 60, 128);
  const cv::Mat rgb = tl::decode_image(write_image("rgba.png", bgra));
  ASSERT_EQ(rgb.type(), CV_8UC3);
  EXPECT_EQ(rgb_at(rgb, 0, 0), cv::Vec3b(30, 20, 10));
  EXPECT_EQ(rgb_at(rgb, 0, 1), cv::Vec3b(60, 50, 40));
}

// Pillow reads 16-bit RGB PNGs as raw mode "RGB;16B": the high byte of each sample.
TEST_F(ImageFiles, Png16BitKeepsTheHighByte) {
  cv::Mat bgr16(1, 2, CV_16UC3);
  bgr16.at<cv::Vec3w>(0, 0) = cv::Vec3w(0x1234, 0x5678, 0x9ABC);
  bgr16.at<cv::Vec3w>(0, 1) = cv::Vec3w(0x00FF, 0x80FF, 0xFFFF);
  const cv::Mat rgb = tl::decode_image(write_image("c16.png", bgr16));
  ASSERT_EQ(rgb.type(), CV_8UC3);
  EXPECT_EQ(rgb_at(rgb, 0, 0), cv::Vec3b(0x9A, 0x56, 0x12));  // Pillow: 9a 56 12
  EXPECT_EQ(rgb_at(rgb, 0, 1), cv::Vec3b(0xFF, 0x80, 0x00));  // Pillow: ff 80 00

  cv::Mat gray16(1, 2, CV_16UC1);
  gray16.at<std::uint16_t>(0, 0) = 0x1234;
  gray16.at<std::uint16_t>(0, 1) = 0xFFFF;
  const cv::Mat g = tl::decode_image(write_image("g16.png", gray16));
  EXPECT_EQ(rgb_at(g, 0, 0), cv::Vec3b(0x12, 0x12, 0x12));
  EXPECT_EQ(rgb_at(g, 0, 1), cv::Vec3b(0xFF, 0xFF, 0xFF));

  cv::Mat bgra16(1, 1, CV_16UC4, cv::Scalar(0x1234, 0x5678, 0x9ABC, 0x00FF));
  EXPECT_EQ(rgb_at(tl::decode_image(write_image("a16.png", bgra16)), 0, 0),
            cv::Vec3b(0x9A, 0x56, 0x12));
}

TEST_F(ImageFiles, BmpIsExactRgb) {
  const cv::Mat bgr = noise_image(5, 7, 8);
  const cv::Mat rgb = tl::decode_image(write_image("noise.bmp", bgr));
  cv::Mat want;
  cv::cvtColor(bgr, want, cv::COLOR_BGR2RGB);
  EXPECT_TRUE(same(rgb, want));
}

TEST_F(ImageFiles, JpegChannelOrder) {
  const cv::Mat red_bgr(16, 16, CV_8UC3, cv::Scalar(0, 0, 255));
  const cv::Mat rgb =
      tl::decode_image(write_image("red.jpg", red_bgr, {cv::IMWRITE_JPEG_QUALITY, 100}));
  ASSERT_EQ(rgb.type(), CV_8UC3);
  const cv::Vec3b p = rgb_at(rgb, 8, 8);
  EXPECT_GE(p[0], 250);
  EXPECT_LE(p[1], 5);
  EXPECT_LE(p[2], 5);
}

TEST_F(ImageFiles, BytesAndFileAgree) {
  const fs::path p = write_image("noise.png", noise_image(9, 11, 9));
  const std::vector<std::uint8_t> bytes = read_bytes(p);
  EXPECT_TRUE(same(tl::decode_image(bytes, "x"), tl::decode_image(p)));
}

TEST_F(ImageFiles, MissingFile) {
  expect_decode_error(dir_ / "missing.jpg", "cannot open");
}

TEST_F(ImageFiles, Directory) {
  fs::create_directory(dir_ / "sub.jpg");
  expect_decode_error(dir_ / "sub.jpg", "directory");
}

TEST_F(ImageFiles, EmptyFile) {
  expect_decode_error(write_bytes("empty.png", {}), "empty");
}

TEST_F(ImageFiles, GarbageBytes) {
  const std::string text = "this is not an image, just some text\n";
  expect_decode_error(write_bytes("text.jpg", {text.begin(), text.end()}), "cannot decode");
}

TEST_F(ImageFiles, EmptyBytesNameTheSource) {
  try {
    tl::decode_image(std::span<const std::uint8_t>(), "archive/member.png");
    FAIL() << "no throw";
  } catch (const tl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("archive/member.png"), std::string::npos);
  }
}

// libjpeg only warns on a short JPEG and fills it with grey; PIL raises, so must we.
TEST_F(ImageFiles, TruncatedJpeg) {
  for (const bool progressive : {false, true}) {
    SCOPED_TRACE(progressive ? "progressive" : "baseline");
    const fs::path p = write_image("whole.jpg", noise_image(64, 64, 10),
                                   {cv::IMWRITE_JPEG_PROGRESSIVE, progressive ? 1 : 0});
    std::vector<std::uint8_t> bytes = read_bytes(p);
    ASSERT_GT(bytes.size(), 1000u);
    EXPECT_NO_THROW(tl::decode_image(p));
    const std::vector<std::uint8_t> half(bytes.begin(), bytes.begin() + bytes.size() / 2);
    expect_decode_error(write_bytes("half.jpg", half), "truncated");
    const std::vector<std::uint8_t> no_eoi(bytes.begin(), bytes.end() - 2);
    expect_decode_error(write_bytes("no_eoi.jpg", no_eoi), "truncated");
    const std::vector<std::uint8_t> header(bytes.begin(), bytes.begin() + 100);
    expect_decode_error(write_bytes("header.jpg", header), "truncated");
  }
}

// Restart markers inside the scan and bytes after EOI (phone trailers) are not truncation.
TEST_F(ImageFiles, JpegRestartMarkersAndTrailerDecode) {
  const fs::path p =
      write_image("rst.jpg", noise_image(64, 64, 11), {cv::IMWRITE_JPEG_RST_INTERVAL, 1});
  const cv::Mat want = tl::decode_image(p);
  std::vector<std::uint8_t> bytes = read_bytes(p);
  for (std::uint8_t b : {0x00, 0x12, 0xFF, 0xD8}) bytes.push_back(b);
  EXPECT_TRUE(same(tl::decode_image(write_bytes("trailer.jpg", bytes)), want));
}

TEST_F(ImageFiles, TruncatedPng) {
  const std::vector<std::uint8_t> bytes =
      read_bytes(write_image("whole.png", noise_image(64, 64, 12)));
  const std::vector<std::uint8_t> half(bytes.begin(), bytes.begin() + bytes.size() / 2);
  expect_decode_error(write_bytes("half.png", half), "cannot decode");
}

TEST_F(ImageFiles, LoadImageIsDecodeResizePreprocess) {
  const cv::Mat bgr = noise_image(37, 53, 13);
  const fs::path p = write_image("load.png", bgr);
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  const tl::ImageOptions opt{.height = 24, .width = 32};  // nearest, caffe
  std::vector<float> want(24 * 32 * 3), got(24 * 32 * 3);
  tl::preprocess_image(tl::resize_image(rgb, 24, 32, tl::ResizeMode::nearest),
                       tl::Preprocess::caffe, want.data());
  tl::load_image(p, opt, got.data());
  EXPECT_EQ(got, want);

  const tl::ImageOptions same_size{
      .height = 37, .width = 53, .resize = tl::ResizeMode::area, .preprocess = tl::Preprocess::tf};
  std::vector<float> want2(37 * 53 * 3), got2(37 * 53 * 3);
  tl::preprocess_image(rgb, tl::Preprocess::tf, want2.data());
  tl::load_image(p, same_size, got2.data());
  EXPECT_EQ(got2, want2);
}

TEST_F(ImageFiles, LoadImageErrorsNameTheFile) {
  std::vector<float> dst(224 * 224 * 3);
  const fs::path p = dir_ / "nope.png";
  try {
    tl::load_image(p, {}, dst.data());
    FAIL() << "no throw";
  } catch (const tl::Error& e) {
    EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------
// Images OpenCV cannot write, against Pillow's convert('RGB') (Keras's load_img). The bytes and
// Pillow's pixels come from tests/make_odd_images.py (tests/odd_images.hpp).

// The largest |ours - Pillow's| over every sample; -1 when the sizes differ.
int max_diff(const cv::Mat& rgb, const tl::testing::PilRgb& pil) {
  if (rgb.type() != CV_8UC3 || rgb.rows != pil.rows || rgb.cols != pil.cols) return -1;
  int worst = 0;
  for (int y = 0; y < rgb.rows; ++y)
    for (int x = 0; x < rgb.cols; ++x)
      for (int c = 0; c < 3; ++c) {
        const int want = pil.rgb[(static_cast<std::size_t>(y) * pil.cols + x) * 3 + c];
        worst = std::max(worst, std::abs(rgb.at<cv::Vec3b>(y, x)[c] - want));
      }
  return worst;
}

// Adobe (inverted) CMYK, as Photoshop and Pillow write it. Both decode with the same libjpeg;
// then OpenCV computes k' - (255 - c') k' / 256 from the inverted samples where Pillow computes
// (255 - C)(255 - K) / 255: they differ by 1 at most (measured: 1).
TEST(PillowReference, CmykJpegMatchesPillowWithinJpegTolerance) {
  using tl::testing::kCmykJpeg;
  const cv::Mat rgb = tl::decode_image(kCmykJpeg, "cmyk.jpg");
  EXPECT_LE(max_diff(rgb, tl::testing::kCmykJpegRgb), 2);
  EXPECT_EQ(rgb.at<cv::Vec3b>(4, 4), cv::Vec3b(255, 255, 255));  // white quadrant
  const cv::Vec3b cyan = rgb.at<cv::Vec3b>(4, 12);
  EXPECT_LE(cyan[0], 2);
  EXPECT_GE(cyan[1], 253);
  EXPECT_GE(cyan[2], 253);
}

TEST(PillowReference, GrayAlphaPngIsTheGrayWithoutTheAlpha) {
  EXPECT_EQ(max_diff(tl::decode_image(tl::testing::kGrayAlphaPng, "la.png"),
                     tl::testing::kGrayAlphaPngRgb),
            0);
}

// tRNS makes a palette entry transparent; convert('RGB') keeps the palette colour, as do we.
TEST(PillowReference, PaletteWithTransparencyGivesThePaletteColours) {
  EXPECT_EQ(max_diff(tl::decode_image(tl::testing::kPaletteTrnsPng, "p.png"),
                     tl::testing::kPaletteTrnsPngRgb),
            0);
}

// The one documented difference from Pillow: 16-bit grey opens as mode "I" there, and
// convert('RGB') clips it at 255 (anything above 255 is white); tlkit takes the high byte, as
// Pillow itself does for 16-bit RGB (lib/src/image_decode.cpp, docs/HARDENING.md).
TEST(PillowReference, Gray16PngIsTheHighByteWherePillowClips) {
  const cv::Mat rgb = tl::decode_image(tl::testing::kGray16Png, "g16.png");
  ASSERT_EQ(rgb.cols, 5);
  const std::vector<int> ours{0, 0, 1, 0x12, 0xFF}, pillow{0, 255, 255, 255, 255};
  for (int x = 0; x < 5; ++x) {
    EXPECT_EQ(rgb.at<cv::Vec3b>(0, x), cv::Vec3b::all(static_cast<std::uint8_t>(ours[x])));
    EXPECT_EQ(tl::testing::kGray16PngRgb.rgb[x * 3], pillow[x]);
  }
}

// libpng skips APNG's acTL/fcTL/fdAT chunks and decodes the default image, which is the first
// frame: the frame Pillow returns before seek().
TEST(PillowReference, AnimatedPngIsItsFirstFrame) {
  EXPECT_EQ(max_diff(tl::decode_image(tl::testing::kAnimatedPng, "anim.png"),
                     tl::testing::kAnimatedPngRgb),
            0);
}

// OpenCV 4.6 has no GIF decoder (4.11 adds one). A GIF is refused with a reason that says so;
// in a run it is skipped into /failed. (.gif is not one of the listed extensions, as in
// Keras's flow_from_directory; only a --list can name one.)
TEST(PillowReference, AnimatedGifIsRefusedNamingTheFormat) {
  try {
    tl::decode_image(tl::testing::kAnimatedGif, "anim.gif");
    FAIL() << "a GIF decoded";
  } catch (const tl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("anim.gif"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("GIF is not supported"), std::string::npos) << e.what();
  }
}

// Pillow reads 16-bit RGB TIFF as raw mode "RGB;16L" (the high byte), as for PNG.
TEST_F(ImageFiles, Tiff16BitKeepsTheHighByteAndOnePixelDecodes) {
  cv::Mat bgr16(2, 1, CV_16UC3);
  bgr16.at<cv::Vec3w>(0, 0) = cv::Vec3w(0x1234, 0x5678, 0x9ABC);
  bgr16.at<cv::Vec3w>(1, 0) = cv::Vec3w(0x00FF, 0x80FF, 0xFFFF);
  const cv::Mat rgb = tl::decode_image(write_image("c16.tif", bgr16));
  ASSERT_EQ(rgb.type(), CV_8UC3);
  EXPECT_EQ(rgb_at(rgb, 0, 0), cv::Vec3b(0x9A, 0x56, 0x12));
  EXPECT_EQ(rgb_at(rgb, 1, 0), cv::Vec3b(0xFF, 0x80, 0x00));
  for (const char* name : {"one.png", "one.tif", "one.bmp", "one.webp", "one.ppm"}) {
    SCOPED_TRACE(name);
    const cv::Mat one = tl::decode_image(write_image(name, cv::Mat(1, 1, CV_8UC3, {10, 20, 30})));
    ASSERT_EQ(one.rows, 1);
    ASSERT_EQ(one.cols, 1);
    if (std::string(name) != "one.webp") {  // lossy
      EXPECT_EQ(rgb_at(one, 0, 0), cv::Vec3b(30, 20, 10));
    }
  }
}

}  // namespace
