// Writes the seed corpora of the fuzz targets, one folder per target under the given folder:
// small valid inputs of each reader, made with the project's own writers (as the tests make
// them), plus a few near misses. Usage: tl-fuzz-seeds OUT_DIR
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>

#include "odd_images.hpp"  // tests/: CMYK JPEG, APNG, GIF, ... written by Pillow
#include "tl/dense_head.hpp"
#include "tl/feature_file.hpp"
#include "tl/hdf5.hpp"
#include "tl/model_file.hpp"
#include "tl/weights.hpp"

namespace fs = std::filesystem;

namespace {

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary) << s;
}

// Keras's legacy layout with only block1_conv1 (what fuzz_keras_weights asks for): fixed-length
// `layer_names`, the layer's `weight_names`, kernel and bias in the keras2 or keras1 spelling.
void write_keras(const fs::path& p, bool keras2) {
  const tl::Vgg16Weights w = tl::random_weights(7);
  const tl::ConvWeights& c = w.conv("block1_conv1");
  auto f = tl::h5::File::create(p);
  f.write_attr_fixed("layer_names", std::vector<std::string>{"input_1", "block1_conv1"});
  f.write_attr_fixed("backend", "tensorflow");
  f.create_group("input_1").write_attr("weight_names", std::span<const double>{});
  auto g = f.create_group("block1_conv1");
  const std::vector<std::string> names =
      keras2 ? std::vector<std::string>{"block1_conv1/kernel:0", "block1_conv1/bias:0"}
             : std::vector<std::string>{"block1_conv1_W_1:0", "block1_conv1_b_1:0"};
  g.write_attr_fixed("weight_names", names);
  g.create_dataset(names[0], tl::h5::DType::f32, {3, 3, 3, 64}).write(c.kernel);
  g.create_dataset(names[1], tl::h5::DType::f32, {64}).write(c.bias);
}

tl::FeatureMeta small_meta() {
  tl::FeatureMeta m;
  m.layer = "block2_pool";
  m.input_height = m.input_width = 32;
  m.weights = "random:3";
  m.feature_shape = {2, 2, 3};
  m.classes = {"cats", "dogs"};
  m.images_root = "/images";
  m.tool_version = "seed";
  m.created = "2026-01-01T00:00:00Z";
  return m;
}

// The feature file's layout (docs/FORMAT.md) written directly, with small chunks:
// FeatureWriter's chunks of about 1 MiB would make the seed a megabyte of zeros.
void write_features(const fs::path& p, bool complete, tl::h5::DType dtype) {
  const tl::FeatureMeta m = small_meta();
  auto f = tl::h5::File::create(p);
  f.create_rows_dataset("features", dtype, {2, 2, 3}, 4)
      .append_rows(std::vector<float>(3 * 12, 0.5f));
  f.create_rows_dataset("labels", tl::h5::DType::i32, {}, 4)
      .append_rows(std::vector<std::int32_t>{0, 1, 1});
  f.create_rows_dataset("paths", tl::h5::DType::str, {}, 4)
      .append_rows(std::vector<std::string>{"cats/a.png", "dogs/b.png", "dogs/c.png"});
  f.create_rows_dataset("failed", tl::h5::DType::str, {2}, 4)
      .append_rows(std::vector<std::string>{"cats/bad.jpg", "cannot decode"});
  f.create_dataset("classes", tl::h5::DType::str, {2}).write<std::string>(m.classes);
  f.write_attr("format", tl::kFeatureFormat);
  f.write_attr("format_version", tl::kFeatureFormatVersion);
  f.write_attr("model", "VGG16");
  for (const auto& [k, v] : {std::pair<const char*, std::string>{"layer", m.layer},
                             {"preprocess", std::string(tl::to_string(m.preprocess))},
                             {"resize", std::string(tl::to_string(m.resize))},
                             {"precision", std::string(tl::to_string(m.precision))},
                             {"algo", m.algo},
                             {"pool", std::string(tl::to_string(m.pool))},
                             {"dtype", dtype == tl::h5::DType::f16 ? "f16" : "f32"},
                             {"weights", m.weights},
                             {"weights_sha256", ""},
                             {"images_root", m.images_root},
                             {"list_fingerprint", "0123456789abcdef-4"},
                             {"tool_version", m.tool_version},
                             {"created", m.created},
                             {"updated", m.created}})
    f.write_attr(k, v);
  for (const auto& [k, v] : {std::pair<const char*, std::int64_t>{"input_height", 32},
                             {"input_width", 32},
                             {"weights_pretrained", 0},
                             {"shard_index", 0},
                             {"shard_count", 1},
                             {"entries_total", 4},
                             {"entries_done", 4},
                             {"rows_done", 3},
                             {"failed_count", 1},
                             {"complete", complete ? 1 : 0}})
    f.write_attr(k, v);
  f.write_attr("feature_shape", std::span<const std::int64_t>(m.feature_shape));
}

void write_model(const fs::path& p, tl::HeadKind kind, tl::Pool pool) {
  const tl::HeadConfig hc{.kind = kind,
                          .pool = pool,
                          .hidden = 3,
                          .dropout = 0.25f,
                          .classes = 2,
                          .input = {1, 2, 2, 3}};
  tl::DenseHead head(hc, 5);
  tl::ModelInfo info{.head = hc, .classes = {"cats", "dogs"}, .features = small_meta()};
  info.training = {{"optimizer", "adam"}, {"epochs", "3"}};
  info.created = "2026-01-01T00:00:00Z";
  tl::save_model(p, info, head);
}

// The image target's three leading bytes (height, width, modes), then the file.
void write_image(const fs::path& p, const std::string& ext, const cv::Mat& m,
                 const std::vector<int>& params = {}) {
  std::vector<std::uint8_t> buf;
  cv::imencode(ext, m, buf, params);
  std::ofstream out(p, std::ios::binary);
  out.write("\x10\x0c\x05", 3);
  out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
}

void write_image_bytes(const fs::path& p, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write("\x10\x0c\x05", 3);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

cv::Mat pattern(int h, int w, int type) {
  cv::Mat m(h, w, type);
  cv::randu(m, 0, CV_MAT_DEPTH(type) == CV_16U ? 65535 : 255);
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: tl-fuzz-seeds OUT_DIR\n";
    return 2;
  }
  const fs::path out = argv[1];
  for (const char* t :
       {"keras_weights", "feature_file", "model_file", "image_list", "options", "image"})
    fs::create_directories(out / t);
  try {
    write_keras(out / "keras_weights" / "keras2.h5", true);
    write_keras(out / "keras_weights" / "keras1.h5", false);
    write_features(out / "feature_file" / "complete.h5", true, tl::h5::DType::f32);
    write_features(out / "feature_file" / "unfinished-f16.h5", false, tl::h5::DType::f16);
    write_model(out / "model_file" / "linear.h5", tl::HeadKind::linear, tl::Pool::none);
    write_model(out / "model_file" / "mlp-avg.h5", tl::HeadKind::mlp, tl::Pool::avg);

    const fs::path l = out / "image_list";
    write_text(l / "plain.txt", "cats/a.png\ndogs/b.jpg\n/abs/c.png\nnoclass.png\n");
    write_text(l / "named.txt", "x/a.png\tcats\ny/b.png\tdogs\n");
    write_text(l / "crlf-blank.txt", "cats/a.png\r\n\r\n  \ndogs/b.png\r\n");
    write_text(l / "mixed.txt", "cats/a.png\ndogs/b.png\tdogs\n");
    write_text(l / "non-utf8.txt", "cats/\xff\xfe.png\ndogs/\xc3\x28.png\n");

    const fs::path o = out / "options";
    write_text(o / "size.txt", "240x320");
    write_text(o / "shard.txt", "2/4");
    write_text(o / "cmdline.txt",
               "--size\n64\n--layer\nblock3_pool\n--precision\nbf16\n--algo\nauto\n--threads\n2\n"
               "--preprocess\ntorch\n--resize\ncrop\n--shard\n1/3\n--batch\n8");
    write_text(o / "cmdline-weights.txt", "--weights=random:42\n--size=32x48\n0/2");
    write_text(o / "names.txt", "block5_pool");

    const fs::path im = out / "image";
    write_image(im / "rgb.png", ".png", pattern(9, 7, CV_8UC3));
    write_image(im / "rgba16.png", ".png", pattern(5, 6, CV_16UC4));
    write_image(im / "gray.png", ".png", pattern(4, 4, CV_8UC1));
    write_image(im / "one-pixel.png", ".png", pattern(1, 1, CV_8UC3));
    write_image(im / "rgb.jpg", ".jpg", pattern(16, 12, CV_8UC3), {cv::IMWRITE_JPEG_QUALITY, 60});
    write_image(im / "gray-progressive.jpg", ".jpg", pattern(8, 8, CV_8UC1),
                {cv::IMWRITE_JPEG_PROGRESSIVE, 1});
    write_image(im / "rgb.bmp", ".bmp", pattern(3, 5, CV_8UC3));
    write_image(im / "gray.pgm", ".pgm", pattern(6, 3, CV_8UC1));
    write_image(im / "rgb.ppm", ".ppm", pattern(2, 9, CV_8UC3));
    write_image(im / "rgb.tif", ".tif", pattern(4, 8, CV_8UC3));
    write_image(im / "rgb.webp", ".webp", pattern(8, 8, CV_8UC3));
    write_image(im / "rgb16.tif", ".tif", pattern(3, 4, CV_16UC3));
    write_image_bytes(im / "cmyk.jpg", tl::testing::kCmykJpeg);
    write_image_bytes(im / "gray-alpha.png", tl::testing::kGrayAlphaPng);
    write_image_bytes(im / "palette-trns.png", tl::testing::kPaletteTrnsPng);
    write_image_bytes(im / "gray16.png", tl::testing::kGray16Png);
    write_image_bytes(im / "animated.png", tl::testing::kAnimatedPng);
    write_image_bytes(im / "animated.gif", tl::testing::kAnimatedGif);
  } catch (const std::exception& e) {
    std::cerr << "tl-fuzz-seeds: " << e.what() << "\n";
    return 1;
  }
  std::cout << "tl-fuzz-seeds: wrote seeds under " << out.string() << "\n";
  return 0;
}
