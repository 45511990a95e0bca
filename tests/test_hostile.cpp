// Hostile inputs (issue 10): what the fuzz targets and the hardening review found, each kept as
// a test. Every reader must refuse bad input with a tl::Error that names it, never crash, hang
// or allocate what a header merely claims. Outcomes are listed in docs/HARDENING.md.
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "cli.hpp"
#include "extract_fixtures.hpp"
#include "image_fixtures.hpp"
#include "odd_images.hpp"
#include "test_util.hpp"
#include "tl/dense_head.hpp"
#include "tl/extract.hpp"
#include "tl/feature_file.hpp"
#include "tl/hdf5.hpp"
#include "tl/image.hpp"
#include "tl/image_list.hpp"
#include "tl/model_file.hpp"
#include "tl/report.hpp"
#include "tl/vgg16.hpp"
#include "tl/weights.hpp"

extern char** environ;

namespace tl {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

std::vector<std::uint8_t> bytes_of(std::string_view s) {
  return {s.begin(), s.end()};
}

void put_be32(std::vector<std::uint8_t>& b, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
}
void put_le32(std::vector<std::uint8_t>& b, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
}

// ---- decompression bombs: refused from the header, before the decoder allocates ------------

std::vector<std::uint8_t> png_header(std::uint32_t w, std::uint32_t h) {
  std::vector<std::uint8_t> b = bytes_of(std::string("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16));
  b.resize(33, 0);
  put_be32(b, 16, w);
  put_be32(b, 20, h);
  b[24] = 8;  // bit depth
  b[25] = 2;  // RGB
  return b;
}

TEST(DecompressionBomb, PngHeaderClaimingGigapixelsIsRefusedNamingTheLimit) {
  const std::string e =
      testing::error_of([] { decode_image(png_header(100000, 100000), "bomb.png"); });
  EXPECT_HAS(e, "bomb.png");
  EXPECT_HAS(e, "100000x100000");
  EXPECT_HAS(e, "178956970");
  EXPECT_HAS(e, "TL_MAX_IMAGE_PIXELS");
}

TEST(DecompressionBomb, EveryCheckedFormatIsRefused) {
  // JPEG: SOI, then SOF0 with height 60000, width 60000.
  std::vector<std::uint8_t> jpeg{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF,
                                 0xC0, 0x00, 0x11, 0x08, 0xEA, 0x60, 0xEA, 0x60, 0x03};
  jpeg.resize(40, 0);
  // BMP: a BITMAPINFOHEADER of 50000 x -50000 (top-down).
  std::vector<std::uint8_t> bmp(54, 0);
  bmp[0] = 'B', bmp[1] = 'M';
  put_le32(bmp, 14, 40);
  put_le32(bmp, 18, 50000);
  put_le32(bmp, 22, static_cast<std::uint32_t>(-50000));
  // WebP VP8X: canvas 16384 x 16384.
  std::vector<std::uint8_t> webp = bytes_of(std::string("RIFF\0\0\0\0WEBPVP8X", 16));
  webp.resize(40, 0);
  for (std::size_t at : {24, 27}) webp[at] = 0xFF, webp[at + 1] = 0x3F;
  // TIFF: one IFD with ImageWidth and ImageLength (LONG) of 30000.
  std::vector<std::uint8_t> tiff = bytes_of(std::string("II*\0\x08\0\0\0\x02\0", 10));
  tiff.resize(40, 0);
  for (std::uint32_t e = 0; e < 2; ++e) {
    const std::size_t at = 10 + 12 * e;
    tiff[at] = static_cast<std::uint8_t>(256 + e);
    tiff[at + 1] = 1;
    tiff[at + 2] = 4;  // LONG
    tiff[at + 4] = 1;  // count
    put_le32(tiff, at + 8, 30000);
  }
  const std::vector<std::pair<std::string, std::vector<std::uint8_t>>> bombs{
      {"bomb.jpg", jpeg},
      {"bomb.bmp", bmp},
      {"bomb.webp", webp},
      {"bomb.tif", tiff},
      {"bomb.ppm", bytes_of("P6\n# big\n40000 40000\n255\n")}};
  for (const auto& [name, b] : bombs) {
    SCOPED_TRACE(name);
    EXPECT_HAS(testing::error_of([&] { decode_image(b, name); }), "over the limit");
  }
}

TEST(DecompressionBomb, LoadImageRefusesTheFileToo) {
  TempDir d;
  const auto b = png_header(20000, 20000);  // 400 Mpixels: 1.2 GB of RGB if allocated
  testing::write_text(d / "bomb.png", std::string(b.begin(), b.end()));
  std::vector<float> row(32 * 32 * 3);
  const std::string e = testing::error_of(
      [&] { load_image(d / "bomb.png", {.height = 32, .width = 32}, row.data()); });
  EXPECT_HAS(e, "bomb.png");
  EXPECT_HAS(e, "over the limit");
}

TEST(DecompressionBomb, ImagesUnderTheLimitStillDecode) {
  std::vector<std::uint8_t> png;
  cv::imencode(".png", cv::Mat(3, 2, CV_8UC3, cv::Scalar(1, 2, 3)), png);
  const cv::Mat m = decode_image(png, "ok.png");
  EXPECT_EQ(m.rows, 3);
  EXPECT_EQ(m.cols, 2);
}

// ---- unusual but valid images ----------------------------------------------------------------

// 2x2, 8-bit palette (PLTE: red, blue), rows {0, 1}, {1, 0}; written with Python's zlib.
const std::vector<std::uint8_t> kPalettePng{
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
    0x52, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 0x08, 0x03, 0x00, 0x00, 0x00, 0x45,
    0x68, 0xfd, 0x16, 0x00, 0x00, 0x00, 0x06, 0x50, 0x4c, 0x54, 0x45, 0xff, 0x00, 0x00, 0x00,
    0x00, 0xff, 0x6c, 0xa1, 0xfd, 0x8e, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78,
    0x9c, 0x63, 0x60, 0x60, 0x04, 0x42, 0x00, 0x00, 0x0c, 0x00, 0x03, 0x2b, 0x63, 0xcb, 0x50,
    0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};
// 8x1, 1-bit gray, pixels 1 0 1 0 0 0 0 0.
const std::vector<std::uint8_t> kOneBitPng{
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
    0x44, 0x52, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00,
    0x00, 0xcb, 0x7b, 0xd2, 0xee, 0x00, 0x00, 0x00, 0x0a, 0x49, 0x44, 0x41, 0x54, 0x78,
    0x9c, 0x63, 0x58, 0x00, 0x00, 0x00, 0xa2, 0x00, 0xa1, 0xdc, 0x8d, 0xb1, 0xcc, 0x00,
    0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};

TEST(UnusualImages, PaletteOneBitSixteenBitAndOnePixel) {
  const cv::Mat pal = decode_image(kPalettePng, "palette.png");
  ASSERT_EQ(pal.type(), CV_8UC3);
  EXPECT_EQ(pal.at<cv::Vec3b>(0, 0), cv::Vec3b(255, 0, 0));  // RGB: red
  EXPECT_EQ(pal.at<cv::Vec3b>(0, 1), cv::Vec3b(0, 0, 255));  // blue

  const cv::Mat bits = decode_image(kOneBitPng, "1bit.png");
  ASSERT_EQ(bits.cols, 8);
  EXPECT_EQ(bits.at<cv::Vec3b>(0, 0), cv::Vec3b(255, 255, 255));
  EXPECT_EQ(bits.at<cv::Vec3b>(0, 1), cv::Vec3b(0, 0, 0));

  std::vector<std::uint8_t> png16;
  cv::imencode(".png", cv::Mat(2, 2, CV_16UC3, cv::Scalar(0x1234, 0xABCD, 0xFFFF)), png16);
  const cv::Mat deep = decode_image(png16, "16bit.png");
  EXPECT_EQ(deep.at<cv::Vec3b>(1, 1), cv::Vec3b(0xFF, 0xAB, 0x12));  // BGR in, RGB out

  std::vector<std::uint8_t> one;
  cv::imencode(".jpg", cv::Mat(1, 1, CV_8UC3, cv::Scalar(10, 20, 30)), one);
  for (ResizeMode mode :
       {ResizeMode::nearest, ResizeMode::bilinear, ResizeMode::area, ResizeMode::crop}) {
    const cv::Mat sized = resize_image(decode_image(one, "1px.jpg"), 224, 224, mode);
    EXPECT_EQ(sized.rows, 224);
    EXPECT_EQ(sized.cols, 224);
  }
}

// ---- list files --------------------------------------------------------------------------------

TEST(HostileList, CrlfBlankWhitespaceAndNonUtf8LinesAreRowsOrSkipped) {
  TempDir d;
  fs::create_directories(d / "root" / "cats");
  testing::write_text(d / "list.txt",
                      "cats/a.png\r\n\r\n   \n\t\ncats/\xff\xfe.png\r\n"
                      "dogs/\xc3\x28.png\nno-newline-at-end.png");
  const ImageList l = read_image_list(d / "list.txt", d / "root");
  ASSERT_EQ(l.entries.size(), 4u);
  EXPECT_EQ(l.entries[0].path, "cats/a.png");  // CR dropped
  EXPECT_EQ(l.entries[0].label, 0);
  EXPECT_EQ(l.entries[1].path, "cats/\xff\xfe.png");  // bytes kept as they are
  EXPECT_EQ(l.entries[2].label, -1);                  // no class folder "dogs"
  EXPECT_EQ(l.entries[3].path, "no-newline-at-end.png");
}

// A million entries with every hostile line kind mixed in: read in one pass (the whole list is
// held, about 100 bytes per entry), nothing dropped but the blank lines.
TEST(HostileList, AMillionLinesWithBlanksCrlfAndNonUtf8AreReadInOnePass) {
  TempDir d;
  fs::create_directories(d / "root" / "c0");
  {
    std::ofstream out(d / "list.txt", std::ios::binary);
    for (int i = 0; i < 1000000; ++i) {
      out << "c" << i % 3 << "/img" << i;
      if (i % 7 == 0) out << "\xff\xfe";  // not UTF-8
      out << ".png" << (i % 2 ? "\r\n" : "\n");
      if (i % 10 == 0) out << (i % 20 ? "\n" : "  \r\n");  // blank and whitespace-only lines
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  const ImageList l = read_image_list(d / "list.txt", d / "root");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(l.entries.size(), 1000000u);
  EXPECT_EQ(l.entries[0].path, "c0/img0\xff\xfe.png");
  EXPECT_EQ(l.entries[1].path, "c1/img1.png");  // CR dropped
  EXPECT_EQ(l.entries[999998].path, "c2/img999998.png");
  EXPECT_EQ(l.entries[999999].path, "c0/img999999\xff\xfe.png");
  EXPECT_EQ(l.entries[3].label, 0);   // c0 is the only class folder
  EXPECT_EQ(l.entries[4].label, -1);  // c1 is not a folder: unlabeled
  RecordProperty("seconds", std::to_string(s));
  EXPECT_LT(s, 60.0);  // 0.5 s in Release, under 2 s with ASan
}

TEST(HostileList, ATabOnlyLineAndAnEmptyClassNameAreErrorsNamingTheLine) {
  TempDir d;
  testing::write_text(d / "list.txt", "a.png\tcats\nb.png\t\n");
  EXPECT_HAS(testing::error_of([&] { read_image_list(d / "list.txt", d.path()); }), "line 2");
}

// ---- weight files with the right names and the wrong contents ----------------------------------

// A Keras-layout file holding block1_conv1 with the given kernel and bias datasets.
void write_block1(const fs::path& p, h5::DType kernel_type, const h5::Dims& kernel_dims,
                  float bias_value = 0.0f) {
  auto f = h5::File::create(p);
  f.write_attr_fixed("layer_names", std::vector<std::string>{"block1_conv1"});
  auto g = f.create_group("block1_conv1");
  g.write_attr_fixed("weight_names", std::vector<std::string>{"kernel:0", "bias:0"});
  hsize_t n = 1;
  for (auto d : kernel_dims) n *= d;
  auto k = g.create_dataset("kernel:0", kernel_type, kernel_dims);
  if (kernel_type == h5::DType::i32)
    k.write(std::vector<std::int32_t>(n, 1));
  else
    k.write(std::vector<float>(n, 0.5f));
  g.create_dataset("bias:0", h5::DType::f32, {64}).write(std::vector<float>(64, bias_value));
}

TEST(HostileWeights, WrongDtypeWrongRankAndNaNNameTheLayerAndDataset) {
  TempDir d;
  write_block1(d / "int.h5", h5::DType::i32, {3, 3, 3, 64});
  const std::string e1 =
      testing::error_of([&] { load_keras_weights(d / "int.h5", {"block1_conv1"}); });
  EXPECT_HAS(e1, "block1_conv1");
  EXPECT_HAS(e1, "int32, want float32");

  write_block1(d / "rank.h5", h5::DType::f32, {27, 64});
  const std::string e2 =
      testing::error_of([&] { load_keras_weights(d / "rank.h5", {"block1_conv1"}); });
  EXPECT_HAS(e2, "has shape (27, 64), want (3, 3, 3, 64)");

  write_block1(d / "nan.h5", h5::DType::f32, {3, 3, 3, 64}, std::nanf(""));
  EXPECT_HAS(testing::error_of([&] { load_keras_weights(d / "nan.h5", {"block1_conv1"}); }),
             "holds NaN");

  write_block1(d / "ok.h5", h5::DType::f32, {3, 3, 3, 64});
  EXPECT_EQ(load_keras_weights(d / "ok.h5", {"block1_conv1"}).convs.size(), 1u);
}

// ---- feature and model files with the right names and the wrong shapes --------------------------

FeatureMeta small_meta() {
  FeatureMeta m;
  m.layer = "block2_pool";
  m.input_height = m.input_width = 32;
  m.weights = "random:3";
  m.feature_shape = {2, 2, 3};
  m.classes = {"a", "b"};
  return m;
}

TEST(HostileFeatureFile, AttributesThatContradictTheDatasetsAreRefused) {
  TempDir d;
  FeatureWriter::create(d / "f.h5", small_meta(), true).finish();
  const auto rewrite = [&](auto&& edit) {
    fs::copy_file(d / "f.h5", d / "g.h5", fs::copy_options::overwrite_existing);
    auto f = h5::File::open(d / "g.h5", h5::Mode::read_write);
    edit(f);
  };
  rewrite([](h5::File& f) {  // rank 2 rows against rank 3 datasets
    f.write_attr("feature_shape", std::span<const std::int64_t>(std::vector<std::int64_t>{2, 6}));
  });
  EXPECT_HAS(testing::error_of([&] { FeatureReader r(d / "g.h5"); }), "/features has shape");
  rewrite([](h5::File& f) {  // a negative dimension
    f.write_attr("feature_shape",
                 std::span<const std::int64_t>(std::vector<std::int64_t>{-1, 2, 3}));
  });
  EXPECT_HAS(testing::error_of([&] { FeatureReader r(d / "g.h5"); }), "/features has shape");
  rewrite([](h5::File& f) { f.write_attr("rows_done", std::int64_t{1} << 40); });
  EXPECT_HAS(testing::error_of([&] { FeatureReader r(d / "g.h5"); }), "/features has shape");
}

TEST(HostileModelFile, HeadWeightsOfTheWrongRankAreRefused) {
  TempDir d;
  const HeadConfig hc{.kind = HeadKind::linear, .classes = 2, .input = {1, 2, 2, 3}};
  DenseHead head(hc, 3);
  save_model(d / "m.h5", {.head = hc, .classes = {"a", "b"}, .features = small_meta()}, head);
  {
    auto f = h5::File::open(d / "m.h5", h5::Mode::read_write);
    auto h = f.open_group("head");
    const std::string name = head.params().front().name;
    h.remove(name);
    h.create_dataset(name, h5::DType::f32, {24}).write(std::vector<float>(24, 0.0f));
  }
  EXPECT_HAS(testing::error_of([&] { load_model(d / "m.h5"); }), "has shape 24");
}

// ---- option parsing ----------------------------------------------------------------------------

// fuzz_options: Boost.Program_options 1.74 loops forever building the message of an error about
// an argument that contains one of its placeholders (%canonical_option%, %value%, ...).
TEST(HostileOptions, BoostPlaceholdersInArgumentsAreRefusedNotLooped) {
  for (std::vector<std::string> args :
       {std::vector<std::string>{"tl-x", "--s%canonical_option%ize", "1"},
        std::vector<std::string>{"tl-x", "--threads", "%value%"},
        std::vector<std::string>{"tl-x", "--size=%option%"}}) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    cli::Parser p({.name = "tl-x", .usage = "", .summary = "", .example = ""},
                  static_cast<int>(argv.size()), argv.data());
    cli::NetOptions net;
    p.add(net.options());
    EXPECT_HAS(testing::error_of([&] { p.parse(); }), "which cannot be used");
  }
}

// ---- hostile runs: resources, the file system, odd names, concurrent readers -------------

TEST(HostileRun, EstimateBytesIsTheActivationsStagingAndWeightsWithoutWrapping) {
  const NetConfig one{.batch = 1, .height = 224, .width = 224, .to = "block5_pool"};
  // Two buffers of block1_conv1's output, f32 staging in and out, 14,714,688 f32 weights.
  const double act = 2.0 * 224 * 224 * 64 * 4, stage = 4.0 * (224 * 224 * 3 + 7 * 7 * 512);
  EXPECT_EQ(static_cast<double>(Vgg16::estimate_bytes(one)), act + stage + 4.0 * 14714688);
  NetConfig two = one;
  two.batch = 2;
  EXPECT_EQ(Vgg16::estimate_bytes(two) - Vgg16::estimate_bytes(one),
            static_cast<std::size_t>(act + stage));
  NetConfig huge = one;
  huge.batch = INT_MAX;
  huge.height = huge.width = 1 << 15;
  EXPECT_GT(Vgg16::estimate_bytes(huge), std::size_t{1} << 62);  // saturated, not wrapped
  huge.to = "nope";
  EXPECT_HAS(testing::error_of([&] { Vgg16::estimate_bytes(huge); }), "nope");
}

TEST(HostileRun, HugeBatchIsRefusedUpFrontNamingBatchAndTheMemory) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a"}, 1);
  ExtractConfig cfg = testing::small_config(d / "imgs", d / "out.h5");
  cfg.net = {.batch = 1000000, .height = 224, .width = 224, .to = "block5_pool"};
  cfg.image = {.height = 224, .width = 224};
  const auto t0 = std::chrono::steady_clock::now();
  const std::string e = testing::error_of([&] { testing::run(cfg); });  // 26 TB if allocated
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_HAS(e, "--batch 1000000: needs at least");
  EXPECT_HAS(e, "GiB of memory is available");
  EXPECT_HAS(e, "--batch 1");  // "try --batch N or less" (or "even --batch 1 needs")
  EXPECT_LT(s, 5.0);           // refused before the weights, the list or any buffer
  EXPECT_FALSE(fs::exists(d / "out.h5"));
  EXPECT_FALSE(fs::exists(d / "out.h5.lock"));
}

TEST(HostileRun, ThreadsFarAboveTheCoresAreClampedWithANoteAndGiveTheSameRows) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a", "b"}, 5, 36, 40);
  ExtractConfig cfg = testing::small_config(d / "imgs", d / "t2.h5");
  testing::run(cfg);
  cfg.output = d / "t256.h5";
  cfg.threads = 256;
  std::ostringstream log;
  const ExtractSummary s = run_extract(cfg, log);
  EXPECT_TRUE(s.complete);
  if (std::thread::hardware_concurrency() < 256) {
    EXPECT_HAS(log.str(), "note: --threads 256 is");
  }
  const testing::Contents a = testing::read_all(d / "t2.h5"), b = testing::read_all(d / "t256.h5");
  EXPECT_EQ(b.features, a.features);
  EXPECT_EQ(b.paths, a.paths);
  EXPECT_EQ(b.labels, a.labels);
}

int exit_code_of(const std::vector<std::string>& args) {
  pid_t pid;
  if (testing::spawn_quiet(args, pid) != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::vector<std::string> extract_args(const fs::path& images, const fs::path& out) {
  return {TL_EXTRACT_BIN, "--images",  images.string(), "--output",
          out.string(),   "--weights", "random:2",      "--size",
          "32",           "--layer",   "block2_pool",   "--quiet"};
}

TEST(HostileRun, OutputInsideAFileIsAClearErrorNamingItExit1) {
  // Fails for root too: a regular file cannot hold a folder entry (ENOTDIR).
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a"}, 1);
  testing::write_text(d / "somefile.txt", "x");
  const fs::path out = d / "somefile.txt" / "out.h5";
  EXPECT_HAS(testing::error_of([&] { testing::run(testing::small_config(d / "imgs", out)); }),
             out.string());
  EXPECT_EQ(exit_code_of(extract_args(d / "imgs", out)), 1);
  EXPECT_EQ(testing::read_bytes(d / "somefile.txt"), "x");
}

TEST(HostileRun, ReadOnlyOutputFolderIsAClearErrorNamingTheOutput) {
  if (geteuid() == 0) GTEST_SKIP() << "root writes into a 0555 folder anyway";
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a"}, 1);
  fs::create_directory(d / "ro");
  chmod((d / "ro").c_str(), 0555);
  const fs::path out = d / "ro" / "out.h5";
  EXPECT_HAS(testing::error_of([&] { testing::run(testing::small_config(d / "imgs", out)); }),
             out.string());
  EXPECT_EQ(exit_code_of(extract_args(d / "imgs", out)), 1);
  chmod((d / "ro").c_str(), 0755);
}

// Full disk, as the user sees it (ExtractErrors.FullDiskKeepsCommittedRowsAndResumes in
// test_extract.cpp checks the rows and the resume): a file-size limit (RLIMIT_FSIZE, EFBIG) is
// hit mid-run; the message names the file, the cause, the space needed, the rows kept and
// what to do, and the rows it names are the ones in the file.
TEST(HostileRun, FullDiskMessageNamesTheFileTheRowsKeptAndHowToResume) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a", "b"}, 30, 40, 40);
  const fs::path out = d / "out.h5", err = d / "stderr.txt";
  auto args = extract_args(d / "imgs", out);
  args[8] = "64";  // --size 64, block1_pool: 256 KiB rows, the 12 MiB limit falls mid-run
  args[10] = "block1_pool";
  for (const char* a : {"--batch", "4", "--threads", "2"}) args.push_back(a);
  EXPECT_EQ(testing::run_with_file_limit(args, 12 << 20, err), 1);
  const std::string e = testing::read_bytes(err);
  EXPECT_HAS(e, out.string());
  EXPECT_HAS(e, "no room for the next batch (File too large;");
  EXPECT_HAS(e, "MiB more needed");
  EXPECT_HAS(e, "run the same command to resume");
  FeatureReader r(out);
  EXPECT_GT(r.rows(), 0u);
  EXPECT_HAS(e, "The " + std::to_string(r.rows()) + " rows committed so far are intact");
}

TEST(HostileRun, ImageGoneAtDecodeTimeIsSkippedAsFailedAndTheRunGoesOn) {
  // The list is read up front; a.png/gone.png is missing when the decode reaches it, as when
  // it is deleted mid-run.
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a", "b"}, 2, 36, 40);
  testing::write_text(d / "list.txt", "a/img0.png\na/gone.png\nb/img0.png\nb/img1.png\n");
  ExtractConfig cfg = testing::small_config(d / "imgs", d / "out.h5");
  cfg.list = d / "list.txt";
  const ExtractSummary s = testing::run(cfg);
  EXPECT_TRUE(s.complete);
  EXPECT_EQ(s.rows, 3);
  EXPECT_EQ(s.failed, 1);
  const testing::Contents c = testing::read_all(d / "out.h5");
  EXPECT_EQ(c.paths, (std::vector<std::string>{"a/img0.png", "b/img0.png", "b/img1.png"}));
  ASSERT_EQ(c.failed.size(), 1u);
  EXPECT_EQ(c.failed[0].first, "a/gone.png");
  EXPECT_HAS(c.failed[0].second, "cannot open");
}

// The unusual images of test_image.cpp's PillowReference tests in one run: each one a row, but
// the GIF (OpenCV 4.6 has no GIF decoder), which goes to /failed with the reason.
TEST(HostileRun, CmykGrayAlphaSixteenBitAnimatedAndOnePixelImagesAreRowsAndAGifIsSkipped) {
  TempDir d;
  fs::create_directories(d / "imgs" / "c");
  const auto put = [&](const std::string& name, const std::vector<std::uint8_t>& b) {
    testing::write_text(d / "imgs" / "c" / name, std::string(b.begin(), b.end()));
  };
  put("cmyk.jpg", testing::kCmykJpeg);
  put("la.png", testing::kGrayAlphaPng);
  put("palette.png", testing::kPaletteTrnsPng);
  put("g16.png", testing::kGray16Png);
  put("anim.png", testing::kAnimatedPng);
  put("anim.gif", testing::kAnimatedGif);
  testing::write_image(d / "imgs" / "c" / "one.png", cv::Mat(1, 1, CV_8UC3, {1, 2, 3}));
  testing::write_text(d / "list.txt",
                      "c/anim.gif\nc/anim.png\nc/cmyk.jpg\nc/g16.png\nc/la.png\nc/one.png\n"
                      "c/palette.png\n");
  ExtractConfig cfg = testing::small_config(d / "imgs", d / "out.h5");
  cfg.list = d / "list.txt";
  const ExtractSummary s = testing::run(cfg);
  EXPECT_TRUE(s.complete);
  EXPECT_EQ(s.rows, 6);
  const testing::Contents c = testing::read_all(d / "out.h5");
  EXPECT_EQ(c.paths, (std::vector<std::string>{"c/anim.png", "c/cmyk.jpg", "c/g16.png", "c/la.png",
                                               "c/one.png", "c/palette.png"}));
  for (float v : c.features) ASSERT_TRUE(std::isfinite(v));
  ASSERT_EQ(c.failed.size(), 1u);
  EXPECT_EQ(c.failed[0].first, "c/anim.gif");
  EXPECT_HAS(c.failed[0].second, "GIF is not supported");
  // A folder run does not list the GIF at all (.gif is not an image extension, as in Keras's
  // flow_from_directory).
  cfg.list.clear();
  cfg.output = d / "folder.h5";
  EXPECT_EQ(testing::run(cfg).rows, 6);
  EXPECT_TRUE(testing::read_all(d / "folder.h5").failed.empty());
}

TEST(HostileRun, NewlineAndTabInFileNamesAreKeptExactlyAndQuotedInCsv) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"c"}, 1, 36, 40);
  const std::string odd = "a\nb\tc.png";
  testing::write_image(d / "imgs" / "c" / odd, testing::make_image(36, 40, 7));
  testing::run(testing::small_config(d / "imgs", d / "out.h5"));
  const testing::Contents c = testing::read_all(d / "out.h5");
  EXPECT_EQ(c.paths, (std::vector<std::string>{"c/" + odd, "c/img0.png"}));  // byte for byte
  EXPECT_TRUE(c.failed.empty());
  // tl-predict's CSV: RFC 4180 quotes the field, so the newline cannot start a new record.
  EXPECT_EQ(csv_field("c/" + odd), "\"c/a\nb\tc.png\"");
}

TEST(HostileRun, AReaderDuringARunSeesCommittedRowsOnly) {
  TempDir d;
  testing::make_class_folders(d / "imgs", {"a", "b"}, 60, 40, 40);
  auto args = extract_args(d / "imgs", d / "out.h5");
  args[8] = "64";  // --size 64, block5_pool, batch 2: a few seconds
  args[10] = "block5_pool";
  for (const char* a : {"--batch", "2", "--threads", "2"}) args.push_back(a);
  pid_t pid;
  ASSERT_EQ(testing::spawn_quiet(args, pid), 0);
  int status = 0, reads = 0, partial_reads = 0;
  std::size_t last = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::error_code ec;
    if (!fs::exists(d / "out.h5", ec)) continue;
    try {
      FeatureReader r(d / "out.h5");
      const std::size_t rows = r.rows();
      EXPECT_EQ(r.labels().size(), rows);
      EXPECT_EQ(r.paths().size(), rows);
      EXPECT_EQ(r.read_rows(0, rows).size(), rows * 512 * 2 * 2);
      EXPECT_GE(rows, last);  // committed rows only grow
      last = rows;
      ++reads;
      if (!r.meta().complete && rows < 120) ++partial_reads;
    } catch (const Error&) {
      // The file is being created: not yet a feature file. Never a crash or a torn read.
    }
  }
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  FeatureReader fin(d / "out.h5");
  EXPECT_EQ(fin.rows(), 120u);
  EXPECT_LE(last, fin.rows());
  RecordProperty("reads", reads);
  RecordProperty("partial_reads", partial_reads);
  EXPECT_GE(partial_reads, 1);
}

}  // namespace
}  // namespace tl
