// tl-export (issue 18): each kind of model, as the head alone and as the whole network, run in
// OpenCV's dnn module gives tl-predict's probabilities within 1e-4 and the same top class, on
// Fashion-MNIST images. The same graphs, inputs and expectations are left in TL_ONNX_CASES_DIR
// for ONNX Runtime (tests/onnx/check_ort.mjs, CTest onnx_runtime_node). Also: the metadata, the
// checker, and every error path of export_onnx.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <onnx/onnx_pb.h>
#include <opencv2/dnn.hpp>

#include "extract_fixtures.hpp"
#include "test_util.hpp"
#include "tl/feature_file.hpp"
#include "tl/image.hpp"
#include "tl/model_file.hpp"
#include "tl/onnx_export.hpp"
#include "tl/predict_run.hpp"
#include "tl/train_run.hpp"

namespace fs = std::filesystem;

namespace tl {
namespace {

constexpr double kTolerance = 1e-4;  // issue 18: each runtime within 1e-4 of tl-predict
constexpr int kSide = 64;            // block5_pool [2, 2, 512]: the Flatten order matters

fs::path extract(const fs::path& images, const fs::path& out, const std::string& layer,
                 Preprocess p = Preprocess::caffe, Pool pool = Pool::none,
                 ResizeMode resize = ResizeMode::nearest) {
  ExtractConfig c;
  c.images = images;
  c.output = out;
  c.weights = "random:1";
  c.net = {.batch = 16, .height = kSide, .width = kSide, .to = layer};
  c.image = {.height = kSide, .width = kSide, .resize = resize, .preprocess = p};
  c.pool = pool;
  c.quiet = true;
  c.threads = 2;
  testing::run(c);
  return out;
}

TrainRunConfig train_config(const fs::path& train, const fs::path& out, HeadKind kind,
                            Pool pool = Pool::none) {
  TrainRunConfig c;
  c.train = {train};
  c.output = out;
  c.head.kind = kind;
  c.head.pool = pool;
  c.head.hidden = 64;
  c.options.epochs = 6;
  c.options.batch = 16;
  c.options.seed = 7;
  c.options.optimizer.learning_rate = 0.01f;
  c.quiet = true;
  return c;
}

fs::path train(const TrainRunConfig& c) {
  std::ostringstream log;
  run_training(c, log);
  return c.output;
}

// tl-predict's probabilities [rows, C] (its CSV with --top-k C: every class, 6 decimals) and
// the path of each row.
struct Predicted {
  std::vector<float> probs;
  std::vector<std::string> paths;
};

Predicted predict(const fs::path& model, const fs::path& features, const fs::path& images,
                  const fs::path& csv) {
  const std::vector<std::string> classes = load_model(model).info.classes;
  const int C = static_cast<int>(classes.size());
  PredictRunConfig cfg;
  cfg.model = model;
  cfg.features = features;
  cfg.images = images;
  cfg.output = csv;
  cfg.top_k = C;
  cfg.quiet = true;
  cfg.threads = 2;
  std::ostringstream log;
  run_prediction(cfg, log);
  Predicted p;
  std::ifstream in(csv);
  std::string line;
  std::getline(in, line);  // path,label,predicted,probability,top2,top2_probability,...
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) f.push_back(cell);
    EXPECT_EQ(f.size(), 2u + 2u * C) << line;
    if (f.size() != 2u + 2u * C) break;
    p.paths.push_back(f[0]);
    std::vector<float> row(C, -1.0f);
    for (int k = 0; k < C; ++k) {
      const auto it = std::find(classes.begin(), classes.end(), f[2 + 2 * k]);
      row[it - classes.begin()] = std::stof(f[3 + 2 * k]);
    }
    p.probs.insert(p.probs.end(), row.begin(), row.end());
  }
  return p;
}

// What a serving side feeds the network graph: each image decoded and resized as the model
// says, RGB 0..255 as float32, NHWC.
std::vector<float> pixels(const fs::path& root, const std::vector<std::string>& paths,
                          ResizeMode resize) {
  std::vector<float> x;
  for (const std::string& p : paths) {
    const cv::Mat rgb = resize_image(decode_image(root / p), kSide, kSide, resize);
    for (int i = 0; i < kSide; ++i)
      for (int j = 0; j < kSide; ++j)
        for (int c = 0; c < 3; ++c) x.push_back(rgb.at<cv::Vec3b>(i, j)[c]);
  }
  return x;
}

void write_f32(const fs::path& p, const std::vector<float>& v) {
  std::ofstream(p, std::ios::binary)
      .write(reinterpret_cast<const char*>(v.data()),
             static_cast<std::streamsize>(v.size() * sizeof(float)));
}

// OpenCV dnn's probabilities for `input` of `dims`.
std::vector<float> run_opencv(const fs::path& onnx, const std::vector<float>& input,
                              const std::vector<int>& dims) {
  cv::dnn::Net net = cv::dnn::readNetFromONNX(onnx.string());
  cv::Mat blob(static_cast<int>(dims.size()), dims.data(), CV_32F,
               const_cast<float*>(input.data()));
  net.setInput(blob);
  const cv::Mat out = net.forward();
  return std::vector<float>(out.ptr<float>(), out.ptr<float>() + out.total());
}

int argmax(const float* p, int C) {
  return static_cast<int>(std::max_element(p, p + C) - p);
}

struct Case {
  std::string name;
  fs::path model, features, images;  // features for the head graph, images for the network
  ResizeMode resize = ResizeMode::nearest;
};

class OnnxCases : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fs::remove_all(cases_);
    fs::create_directories(cases_);
    const auto r =
        testing::run_program({TL_DEMO_DATA_BIN, "--output", (cases_ / "data").string(),
                              "--train-per-class", "8", "--test-per-class", "2", "--seed", "1"});
    ASSERT_EQ(r.code, 0) << r.out;
  }
  static inline const fs::path cases_ = TL_ONNX_CASES_DIR;
  static fs::path train_images() { return cases_ / "data" / "train"; }
  static fs::path test_images() { return cases_ / "data" / "test"; }
  static fs::path file(const std::string& name) { return cases_ / "work" / name; }
};

// One case, run as the head graph (on the test features) and as the network graph (on the
// test images): OpenCV dnn against tl-predict, and the files ONNX Runtime's check reads.
void check_case(const Case& c, const fs::path& dir, std::ofstream& list) {
  const int C = static_cast<int>(load_model(c.model).info.classes.size());
  for (const bool network : {false, true}) {
    const std::string name = c.name + (network ? "_network" : "_head");
    SCOPED_TRACE(name);
    OnnxExportConfig cfg{.model = c.model, .output = dir / (name + ".onnx"), .network = network};
    std::ostringstream log;
    const OnnxExportSummary s = export_onnx(cfg, log);
    const Predicted want = network ? predict(c.model, "", c.images, dir / (name + ".csv"))
                                   : predict(c.model, c.features, "", dir / (name + ".csv"));
    const int n = static_cast<int>(want.paths.size());
    ASSERT_GT(n, 0);
    std::vector<int> dims{n};
    for (size_t i = 1; i < s.input_shape.size(); ++i)
      dims.push_back(static_cast<int>(s.input_shape[i]));
    const std::vector<float> input = network ? pixels(c.images, want.paths, c.resize)
                                             : FeatureReader(c.features).read_rows(0, n);
    const std::vector<float> got = run_opencv(cfg.output, input, dims);
    ASSERT_EQ(got.size(), want.probs.size());
    double max_diff = 0;
    int top_differs = 0;
    for (int r = 0; r < n; ++r) {
      for (int j = 0; j < C; ++j)
        max_diff = std::max(max_diff, std::abs(double(got[r * C + j]) - want.probs[r * C + j]));
      top_differs += argmax(&got[r * C], C) != argmax(&want.probs[r * C], C);
    }
    std::cout << fmt::format("OpenCV dnn {} {}: {} rows, largest probability difference {:.2e}\n",
                             CV_VERSION, name, n, max_diff);
    EXPECT_LE(max_diff, kTolerance);
    EXPECT_EQ(top_differs, 0);
    write_f32(dir / (name + ".input.f32"), input);
    write_f32(dir / (name + ".expected.f32"), want.probs);
    list << name << ' ' << C;
    for (const int d : dims) list << ' ' << d;
    list << '\n';
  }
}

// Every model kind the issue names: linear (tl-train's default, logistic regression), MLP,
// a pooled head, fine-tuned block5, plus features pooled at extraction and each preprocessing
// mode (cut at block3_pool) with another resize.
TEST_F(OnnxCases, EachModelKindInOpenCvDnnGivesTlPredictsProbabilities) {
  fs::create_directories(cases_ / "work");
  const fs::path dir = cases_ / "graphs";
  fs::create_directories(dir);
  std::ofstream list(dir / "cases.txt");

  const fs::path b5 = extract(train_images(), file("b5.h5"), "block5_pool");
  const fs::path b5_test = extract(test_images(), file("b5_test.h5"), "block5_pool");
  TrainRunConfig linear = train_config(b5, file("linear.h5"), HeadKind::linear);
  linear.logreg = true;
  std::vector<Case> cases = {
      {"linear", train(linear), b5_test, test_images()},
      {"mlp", train(train_config(b5, file("mlp.h5"), HeadKind::mlp)), b5_test, test_images()},
      {"pooled", train(train_config(b5, file("pooled.h5"), HeadKind::mlp, Pool::avg)), b5_test,
       test_images()},
  };
  const fs::path b4 = extract(train_images(), file("b4.h5"), "block4_pool");
  TrainRunConfig ft = train_config(b4, file("finetuned.h5"), HeadKind::linear);
  ft.options.epochs = 2;
  ft.finetune.enabled = true;
  ft.finetune.epochs = 2;
  ft.finetune.optimizer.learning_rate = 1e-3f;
  cases.push_back({"finetuned", train(ft),
                   extract(test_images(), file("b4_test.h5"), "block4_pool"), test_images()});
  const fs::path bmax =
      extract(train_images(), file("bmax.h5"), "block5_pool", Preprocess::caffe, Pool::max);
  cases.push_back(
      {"extract_pool_max", train(train_config(bmax, file("max.h5"), HeadKind::linear)),
       extract(test_images(), file("bmax_test.h5"), "block5_pool", Preprocess::caffe, Pool::max),
       test_images()});
  for (const Preprocess p :
       {Preprocess::torch, Preprocess::tf, Preprocess::rescale, Preprocess::none}) {
    const std::string n = fmt::format("block3_{}", to_string(p));
    const fs::path tr =
        extract(train_images(), file(n + ".h5"), "block3_pool", p, Pool::none, ResizeMode::area);
    cases.push_back({n, train(train_config(tr, file(n + "_model.h5"), HeadKind::linear)),
                     extract(test_images(), file(n + "_test.h5"), "block3_pool", p, Pool::none,
                             ResizeMode::area),
                     test_images(), ResizeMode::area});
  }
  for (const Case& c : cases) check_case(c, dir, list);
}

// A small model of its own for the tests below: 32x32 block2_pool features, linear head.
fs::path small_model(const testing::TempDir& t) {
  const fs::path images = t / "images";
  const auto r =
      testing::run_program({TL_DEMO_DATA_BIN, "--output", (t / "data").string(),
                            "--train-per-class", "2", "--test-per-class", "1", "--seed", "2"});
  EXPECT_EQ(r.code, 0) << r.out;
  testing::run(testing::small_config(t / "data" / "train", t / "f.h5"));
  TrainRunConfig c = train_config(t / "f.h5", t / "m.h5", HeadKind::linear);
  c.options.epochs = 1;
  return train(c);
}

onnx::ModelProto read_onnx(const fs::path& p) {
  onnx::ModelProto m;
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(m.ParseFromIstream(&in)) << p;
  return m;
}

TEST(OnnxExport, TheToolSaysWhatIsMissingAndExitsTwo) {
  const auto r = testing::run_program({TL_EXPORT_BIN, "--output", "x.onnx"});
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_HAS(r.out, "tl-export: error: --model");
  const auto h = testing::run_program({TL_EXPORT_BIN, "--help"});
  EXPECT_EQ(h.code, 0);
  EXPECT_HAS(h.out, "--network");
}

TEST(OnnxExport, MetadataNamesTheClassesAndSettingsAndTheGraphPassesTheChecker) {
  testing::TempDir t;
  const fs::path model = small_model(t);
  std::ostringstream log;
  const OnnxExportSummary s = export_onnx({.model = model, .output = t / "m.onnx"}, log);
  const onnx::ModelProto m = read_onnx(t / "m.onnx");
  std::map<std::string, std::string> meta;
  for (const auto& p : m.metadata_props()) meta[p.key()] = p.value();
  EXPECT_EQ(meta, s.metadata);
  EXPECT_EQ(meta["tlkit.graph"], "head");
  EXPECT_EQ(meta["tlkit.layer"], "block2_pool");
  EXPECT_EQ(meta["tlkit.input_height"], "32");
  EXPECT_EQ(meta["tlkit.preprocess"], "caffe");
  EXPECT_EQ(meta["tlkit.resize"], "nearest");
  EXPECT_EQ(meta["tlkit.weights"], "random:3");
  EXPECT_EQ(meta["tlkit.classes"].substr(0, 15), "[\"ankle_boot\", ");
  EXPECT_EQ(m.opset_import(0).version(), 13);
  EXPECT_EQ(m.graph().input(0).name(), "features");
  EXPECT_EQ(m.graph().output(0).name(), "probabilities");
  EXPECT_EQ(m.graph().input(0).type().tensor_type().shape().dim(0).dim_param(), "N");
  EXPECT_EQ(s.input_shape, (std::vector<long long>{-1, 8, 8, 128}));

  const OnnxExportSummary net =
      export_onnx({.model = model, .output = t / "net.onnx", .network = true}, log);
  EXPECT_EQ(net.input, "image");
  EXPECT_EQ(net.input_shape, (std::vector<long long>{-1, 32, 32, 3}));
  EXPECT_HAS(net.metadata.at("tlkit.input"), "RGB values 0..255");
}

TEST(OnnxExport, BadInputIsAClearErrorAndTheOutputIsUntouched) {
  testing::TempDir t;
  const fs::path model = small_model(t);
  std::ostringstream log;
  EXPECT_HAS(testing::error_of([&] { export_onnx({.output = t / "x.onnx"}, log); }), "--model");
  EXPECT_HAS(testing::error_of([&] { export_onnx({.model = model}, log); }), "--output");
  EXPECT_HAS(testing::error_of(
                 [&] { export_onnx({.model = t / "missing.h5", .output = t / "x.onnx"}, log); }),
             "missing.h5");
  EXPECT_HAS(
      testing::error_of([&] { export_onnx({.model = t / "f.h5", .output = t / "x.onnx"}, log); }),
      "f.h5");  // a feature file is not a model
  EXPECT_FALSE(fs::exists(t / "x.onnx"));

  // Other weights than the model's are refused before anything is written; --force takes them.
  const std::string other = testing::error_of(
      [&] { export_onnx({.model = model, .output = t / "x.onnx", .weights = "random:4"}, log); });
  EXPECT_HAS(other, "random:4");
  EXPECT_HAS(other, "--force");
  EXPECT_HAS(testing::error_of([&] {
               export_onnx({.model = model, .output = t / "x.onnx", .weights = t / "nope.h5"}, log);
             }),
             "nope.h5");
  EXPECT_FALSE(fs::exists(t / "x.onnx"));
  export_onnx({.model = model, .output = t / "x.onnx", .weights = "random:4", .force = true}, log);
  EXPECT_TRUE(fs::exists(t / "x.onnx"));

  // An existing file of another kind is never replaced without --overwrite; an ONNX file is.
  testing::write_text(t / "notes.onnx", "my notes\n");
  EXPECT_HAS(
      testing::error_of([&] { export_onnx({.model = model, .output = t / "notes.onnx"}, log); }),
      "not an ONNX model");
  EXPECT_EQ(testing::read_bytes(t / "notes.onnx"), "my notes\n");
  EXPECT_HAS(testing::error_of([&] { export_onnx({.model = model, .output = model}, log); }),
             "--model");
  export_onnx({.model = model, .output = t / "x.onnx"}, log);  // replaces its own kind
  export_onnx({.model = model, .output = t / "notes.onnx", .overwrite = true}, log);
  EXPECT_EQ(read_onnx(t / "notes.onnx").producer_name(), "tlkit");
}

}  // namespace
}  // namespace tl
