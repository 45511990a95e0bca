// VGG16 weights: Keras's legacy-HDF5 files in both spellings (and every way they can be
// wrong), seeded random weights, the Keras cache, and SHA-256.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>

#include "keras_file_writer.hpp"
#include "tl/error.hpp"
#include "tl/hdf5.hpp"
#include "tl/vgg16_spec.hpp"
#include "tl/weights.hpp"

namespace tl {
namespace {

using testing::edit_h5;
using testing::error_of;
using testing::KerasFileOptions;
using testing::Spelling;
using testing::subset;
using testing::TempDir;
using testing::write_keras_file;

// All 13 layers for seed 1, made once (14.7M values).
const Vgg16Weights& seed1() {
  static const Vgg16Weights w = random_weights(1);
  return w;
}

// block1's two convs only: small files for the error cases.
const Vgg16Weights& block1() {
  static const Vgg16Weights w = subset(seed1(), {"block1_conv1", "block1_conv2"});
  return w;
}

const std::vector<std::string> kBlock1 = {"block1_conv1", "block1_conv2"};

std::uint32_t bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Bit-for-bit equality of two weight sets' conv layers.
void expect_same_convs(const Vgg16Weights& got, const Vgg16Weights& want) {
  ASSERT_EQ(got.convs.size(), want.convs.size());
  for (std::size_t i = 0; i < got.convs.size(); ++i) {
    const ConvWeights& a = got.convs[i];
    const ConvWeights& b = want.convs[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.cin, b.cin);
    EXPECT_EQ(a.cout, b.cout);
    ASSERT_EQ(a.kernel.size(), b.kernel.size()) << a.name;
    EXPECT_EQ(std::memcmp(a.kernel.data(), b.kernel.data(), a.kernel.size() * sizeof(float)), 0)
        << a.name;
    EXPECT_EQ(a.bias, b.bias) << a.name;
  }
}

// Sets an environment variable for the scope, restoring the old value after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_)
      setenv(name_, old_->c_str(), 1);
    else
      unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// ---- loading good files -------------------------------------------------------------------

TEST(KerasWeights, LoadsAllThirteenLayersBitExactInBothSpellings) {
  TempDir dir;
  for (Spelling s : {Spelling::keras1, Spelling::keras2}) {
    const auto path = dir / (s == Spelling::keras1 ? "k1.h5" : "k2.h5");
    write_keras_file(path, seed1(), {.spelling = s});
    const Vgg16Weights w = load_keras_weights(path);
    expect_same_convs(w, seed1());
    EXPECT_EQ(w.source, path.string());
    EXPECT_TRUE(w.pretrained);
    EXPECT_EQ(w.sha256, sha256_file(path));
    EXPECT_EQ(w.sha256.size(), 64u);
    EXPECT_EQ(w.describe(), path.string() + " (sha256 " + w.sha256.substr(0, 8) + "...)");
  }
}

TEST(KerasWeights, TheKeras2FileReallyNestsGroups) {
  TempDir dir;
  const auto path = dir / "k2.h5";
  write_keras_file(path, block1(), {.spelling = Spelling::keras2});
  auto f = h5::File::open(path);
  EXPECT_EQ(f.kind("block1_conv1/block1_conv1"), h5::Kind::group);
  EXPECT_EQ(f.kind("block1_conv1/block1_conv1/kernel:0"), h5::Kind::dataset);
  EXPECT_FALSE(f.open_attr("layer_names").type().is_vlen_string());  // fixed-length bytes
  EXPECT_EQ(f.open_group("block1_pool").open_attr("weight_names").type().dtype(),
            h5::DType::f64);  // Keras's empty list
}

TEST(KerasWeights, FullModelFileIgnoresTheTopLayers) {
  TempDir dir;
  for (Spelling s : {Spelling::keras1, Spelling::keras2}) {
    const auto path = dir / "full.h5";
    write_keras_file(path, block1(), {.spelling = s, .full_model = true});
    expect_same_convs(load_keras_weights(path, kBlock1), block1());
  }
}

TEST(KerasWeights, ModelSaveFileWithModelWeightsGroup) {
  TempDir dir;
  const auto path = dir / "model.h5";
  write_keras_file(path, block1(),
                   {.spelling = Spelling::keras2, .full_model = true, .model_weights = true});
  ASSERT_FALSE(h5::File::open(path).has_attr("layer_names"));
  expect_same_convs(load_keras_weights(path, kBlock1), block1());
}

TEST(KerasWeights, SplitLayerNamesAreConcatenated) {
  TempDir dir;
  const auto path = dir / "split.h5";
  write_keras_file(path, block1(), {.split_layer_names = 2});  // layer_names0, 1, 2, ...
  ASSERT_TRUE(h5::File::open(path).has_attr("layer_names3"));
  expect_same_convs(load_keras_weights(path, kBlock1), block1());
}

TEST(KerasWeights, LayersArgumentPicksASubsetInNetworkOrder) {
  TempDir dir;
  const auto path = dir / "w.h5";
  write_keras_file(path, block1());
  const Vgg16Weights w = load_keras_weights(path, {"block1_conv2", "block1_conv1", "block1_conv2"});
  expect_same_convs(w, block1());
  const Vgg16Weights one = load_keras_weights(path, {"block1_conv2"});
  ASSERT_EQ(one.convs.size(), 1u);
  EXPECT_EQ(one.convs[0].name, "block1_conv2");
  EXPECT_TRUE(one.has("block1_conv2"));
  EXPECT_FALSE(one.has("block1_conv1"));
  const std::string m = error_of([&] { one.conv("block1_conv1"); });
  EXPECT_HAS(m, path.string());
  EXPECT_HAS(m, "no layer 'block1_conv1'");
  EXPECT_HAS(m, "loaded: block1_conv2");
  // A pool or an unknown name is the caller's mistake.
  EXPECT_THROW(load_keras_weights(path, {"block1_pool"}), UsageError);
  EXPECT_HAS(error_of([&] { load_keras_weights(path, {"block6_conv1"}); }),
             "'block6_conv1' is not a VGG16 conv layer");
}

TEST(KerasWeights, Float64KernelsAreConvertedByHdf5) {
  TempDir dir;
  const auto path = dir / "f64.h5";
  write_keras_file(path, block1());
  edit_h5(path, [](h5::File& f) {
    const ConvWeights& c = block1().conv("block1_conv1");
    f.remove("block1_conv1/block1_conv1_W_1:0");
    f.create_dataset("block1_conv1/block1_conv1_W_1:0", h5::DType::f64, {3, 3, 3, 64})
        .write(std::vector<double>(c.kernel.begin(), c.kernel.end()));
  });
  expect_same_convs(load_keras_weights(path, kBlock1), block1());  // float -> double -> float
}

// ---- every way a file can be wrong ----------------------------------------------------------

// Loads a block1 file broken by `edit`; returns the error message.
std::string load_broken(const TempDir& dir, const std::function<void(h5::File&)>& edit,
                        Spelling s = Spelling::keras1) {
  const auto path = dir / "broken.h5";
  write_keras_file(path, block1(), {.spelling = s});
  edit_h5(path, edit);
  return error_of([&] { load_keras_weights(path, kBlock1); });
}

TEST(KerasWeightErrors, FileProblemsNameTheFile) {
  TempDir dir;
  const auto missing = dir / "missing.h5";
  const auto empty = dir / "empty.h5";
  const auto text = dir / "weights.txt";
  const auto truncated = dir / "truncated.h5";
  testing::write_text(empty, "");
  testing::write_text(text, "<html>404 Not Found</html>\n");
  write_keras_file(truncated, block1());
  std::filesystem::resize_file(truncated, std::filesystem::file_size(truncated) / 2);
  const auto plain = dir / "plain.h5";
  h5::File::create(plain).create_dataset("x", h5::DType::f32, {1});

  EXPECT_EQ(error_of([&] { load_keras_weights(missing); }),
            "weights file '" + missing.string() + "': no such file");
  EXPECT_EQ(error_of([&] { load_keras_weights(empty); }),
            "weights file '" + empty.string() + "': not an HDF5 file (the file is empty)");
  EXPECT_EQ(error_of([&] { load_keras_weights(text); }),
            "weights file '" + text.string() + "': not an HDF5 file (27 bytes, no HDF5 signature)");
  std::string m = error_of([&] { load_keras_weights(truncated); });
  EXPECT_EQ(m.find("weights file '" + truncated.string() + "': "), 0u) << m;
  EXPECT_HAS(m, "truncated file");
  m = error_of([&] { load_keras_weights(plain); });
  EXPECT_HAS(m, plain.string());
  EXPECT_HAS(m, "no attribute 'layer_names'");
  EXPECT_HAS(m, "not a Keras weights file");
  // The Keras file's own name gets a hint where to find it.
  const auto keras = dir / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5";
  EXPECT_HAS(error_of([&] { load_keras_weights(keras); }), "storage.googleapis.com");
}

TEST(KerasWeightErrors, MissingLayerListsWhatTheFileHas) {
  TempDir dir;
  const auto path = dir / "w.h5";
  write_keras_file(path, block1());
  EXPECT_EQ(error_of([&] { load_keras_weights(path, {"block5_conv1"}); }),
            "weights file '" + path.string() +
                "': no layer 'block5_conv1' (the file has: input_1, block1_conv1, block1_conv2, "
                "block1_pool, block2_pool, block3_pool, block4_pool, block5_pool)");
  // All 13 by default: the first one missing is named.
  EXPECT_HAS(error_of([&] { load_keras_weights(path); }), "no layer 'block2_conv1'");
}

TEST(KerasWeightErrors, ListedLayerWithoutGroup) {
  TempDir dir;
  const std::string m = load_broken(dir, [](h5::File& f) { f.remove("block1_conv2"); });
  EXPECT_HAS(m, (dir / "broken.h5").string());
  EXPECT_HAS(m, "layer 'block1_conv2'");
  EXPECT_HAS(m, "no group '/block1_conv2'");
}

TEST(KerasWeightErrors, WrongKernelShape) {
  for (Spelling s : {Spelling::keras1, Spelling::keras2}) {
    TempDir dir;
    const auto wn = testing::keras_weight_names("block1_conv2", s);
    const std::string m = load_broken(
        dir,
        [&](h5::File& f) {
          f.remove("block1_conv2/" + wn[0]);
          f.create_dataset("block1_conv2/" + wn[0], h5::DType::f32, {3, 3, 32, 64});
        },
        s);
    EXPECT_EQ(m, "weights file '" + (dir / "broken.h5").string() +
                     "': layer 'block1_conv2': kernel '" + wn[0] +
                     "' has shape (3, 3, 32, 64), want (3, 3, 64, 64)");
  }
}

TEST(KerasWeightErrors, WrongBiasShape) {
  TempDir dir;
  const std::string m = load_broken(dir, [](h5::File& f) {
    f.remove("block1_conv1/block1_conv1_b_1:0");
    f.create_dataset("block1_conv1/block1_conv1_b_1:0", h5::DType::f32, {1, 64});
  });
  EXPECT_EQ(m, "weights file '" + (dir / "broken.h5").string() +
                   "': layer 'block1_conv1': bias 'block1_conv1_b_1:0' has shape (1, 64), want "
                   "(64,)");
}

TEST(KerasWeightErrors, WrongDtype) {
  TempDir dir;
  const std::string m = load_broken(dir, [](h5::File& f) {
    f.remove("block1_conv1/block1_conv1_W_1:0");
    f.create_dataset("block1_conv1/block1_conv1_W_1:0", h5::DType::i32, {3, 3, 3, 64});
  });
  EXPECT_EQ(m, "weights file '" + (dir / "broken.h5").string() +
                   "': layer 'block1_conv1': kernel 'block1_conv1_W_1:0' is int32, want float32");
}

TEST(KerasWeightErrors, NonFiniteValues) {
  TempDir dir;
  std::string m = load_broken(dir, [](h5::File& f) {
    auto d = f.open_dataset("block1_conv2/block1_conv2_W_1:0");
    std::vector<float> k = d.read<float>();
    k[1000] = std::nanf("");
    d.write(k);
  });
  EXPECT_HAS(m, (dir / "broken.h5").string());
  EXPECT_HAS(m, "layer 'block1_conv2'");
  EXPECT_HAS(m, "kernel 'block1_conv2_W_1:0' holds NaN at flat index 1000 of 36864");
  m = load_broken(dir, [](h5::File& f) {
    f.open_dataset("block1_conv1/block1_conv1_b_1:0").write_rows(5, std::vector<float>{-INFINITY});
  });
  EXPECT_HAS(m, "layer 'block1_conv1': bias 'block1_conv1_b_1:0' holds -Inf at flat index 5");
  // float64 beyond float32's range becomes Inf in HDF5's conversion: also refused.
  m = load_broken(dir, [](h5::File& f) {
    f.remove("block1_conv1/block1_conv1_b_1:0");
    std::vector<double> b(64, 0.0);
    b[3] = 1e300;
    f.create_dataset("block1_conv1/block1_conv1_b_1:0", h5::DType::f64, {64}).write(b);
  });
  EXPECT_HAS(m, "holds +Inf at flat index 3 of 64 (after conversion to float32)");
}

TEST(KerasWeightErrors, NoHdf5ObjectStaysOpen) {
  {
    TempDir dir;
    load_broken(dir, [](h5::File& f) { f.open_group("block1_conv1").delete_attr("weight_names"); });
    load_broken(dir, [](h5::File& f) {
      f.remove("block1_conv1/block1_conv1_W_1:0");
      f.create_dataset("block1_conv1/block1_conv1_W_1:0", h5::DType::i32, {3, 3, 3, 64});
    });
    write_keras_file(dir / "ok.h5", block1(), {.model_weights = true});
    load_keras_weights(dir / "ok.h5", kBlock1);
  }
  EXPECT_EQ(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
}

TEST(KerasWeightErrors, WeightNamesProblems) {
  TempDir dir;
  const std::string file = (dir / "broken.h5").string();
  std::string m = load_broken(
      dir, [](h5::File& f) { f.open_group("block1_conv1").delete_attr("weight_names"); });
  EXPECT_EQ(m,
            "weights file '" + file +
                "': layer 'block1_conv1': group '/block1_conv1' has no attribute 'weight_names'");
  m = load_broken(dir, [](h5::File& f) {
    f.open_group("block1_conv2")
        .write_attr_fixed("weight_names", std::vector<std::string>{"block1_conv2_W_1:0"});
  });
  EXPECT_EQ(m, "weights file '" + file +
                   "': layer 'block1_conv2': weight_names lists 1 weights (block1_conv2_W_1:0), "
                   "want 2: kernel, bias");
  m = load_broken(dir, [](h5::File& f) {
    f.open_group("block1_conv1").write_attr("weight_names", std::span<const double>{});
  });
  EXPECT_HAS(m, "layer 'block1_conv1': weight_names lists 0 weights (none)");
  m = load_broken(dir, [](h5::File& f) {
    f.open_group("block1_conv1")
        .write_attr_fixed("weight_names", std::vector<std::string>{"nope:0", "block1_conv1_b_1:0"});
  });
  EXPECT_EQ(m, "weights file '" + file +
                   "': layer 'block1_conv1': kernel 'nope:0' (listed in weight_names) is not a "
                   "dataset in group '/block1_conv1'");
  // weight_names as variable-length strings (h5py 3 writing str) load too.
  const auto path = dir / "vlen.h5";
  write_keras_file(path, block1(), {.spelling = Spelling::keras2});
  edit_h5(path, [](h5::File& f) {
    f.open_group("block1_conv1")
        .write_attr("weight_names",
                    std::vector<std::string>{"block1_conv1/kernel:0", "block1_conv1/bias:0"});
    f.write_attr("layer_names", std::vector<std::string>{"block1_conv1", "block1_conv2"});
  });
  expect_same_convs(load_keras_weights(path, kBlock1), block1());
}

// ---- random weights -----------------------------------------------------------------------

TEST(RandomWeights, DeterministicShapedAndLabelled) {
  const Vgg16Weights& a = seed1();
  expect_same_convs(random_weights(1), a);
  EXPECT_EQ(a.source, "random:1");
  EXPECT_FALSE(a.pretrained);
  EXPECT_EQ(a.sha256, "");
  EXPECT_EQ(a.describe(), "random:1 (NOT pretrained)");
  ASSERT_EQ(a.convs.size(), 13u);
  std::size_t n = 0;
  for (const LayerSpec& l : vgg16_layers()) {
    if (l.kind != LayerKind::conv) continue;
    const ConvWeights& c = a.convs[n++];
    EXPECT_EQ(c.name, l.name);
    EXPECT_EQ(c.kernel.size(), 9u * l.cin * l.cout);
    EXPECT_EQ(c.bias, std::vector<float>(l.cout, 0.0f));
  }
  const Vgg16Weights b = random_weights(2);
  EXPECT_NE(a.convs[0].kernel, b.convs[0].kernel);
  EXPECT_NE(a.convs[12].kernel, b.convs[12].kernel);
}

TEST(RandomWeights, PinnedValuesCatchAPlatformChange) {
  const auto& k = seed1().convs[0].kernel;
  EXPECT_EQ(bits_of(k[0]), 0x3eb6f1b8u) << k[0];                     // 0.357312918
  EXPECT_EQ(bits_of(k[1]), 0x3ed33ec9u) << k[1];                     // 0.412588388
  EXPECT_EQ(bits_of(k[2]), 0x3eae4525u) << k[2];                     // 0.340371281
  EXPECT_EQ(bits_of(seed1().convs[12].kernel.back()), 0x3c6847b0u);  // 0.0141772479
  // Every bit of all 14.7M values: FNV-1a over the 32-bit words of the kernels in order.
  std::uint64_t h = 1469598103934665603ull;
  for (const ConvWeights& c : seed1().convs)
    for (float v : c.kernel) h = (h ^ bits_of(v)) * 1099511628211ull;
  EXPECT_EQ(h, 0x211d54a970b94f71ull);
}

TEST(RandomWeights, MatchBoxMullerWithTheStandardLibrary) {
  // The same stream with std::log / std::cos / std::sin: the portable functions agree to
  // within one float rounding step.
  std::mt19937_64 gen(1);
  const Vgg16Weights& w = seed1();
  int differ = 0;
  for (std::size_t layer = 0; layer < 2; ++layer) {
    const ConvWeights& c = w.convs[layer];
    const double stddev = std::sqrt(2.0 / (9.0 * c.cin));
    for (std::size_t i = 0; i < c.kernel.size(); i += 2) {
      const double u1 = static_cast<double>((gen() >> 11) + 1) * 0x1p-53;
      const double u2 = static_cast<double>(gen() >> 11) * 0x1p-53;
      const double r = std::sqrt(-2.0 * std::log(u1));
      const double t = 2.0 * 3.14159265358979323846 * u2;
      const float z0 = static_cast<float>(r * std::cos(t) * stddev);
      const float z1 = static_cast<float>(r * std::sin(t) * stddev);
      ASSERT_LE(std::abs(c.kernel[i] - z0), 1e-6f * std::max(1.0f, std::abs(z0))) << i;
      ASSERT_LE(std::abs(c.kernel[i + 1] - z1), 1e-6f * std::max(1.0f, std::abs(z1))) << i;
      differ += (c.kernel[i] != z0) + (c.kernel[i + 1] != z1);
    }
  }
  EXPECT_LT(differ, 200);  // of 38592: rounding differences only
}

TEST(RandomWeights, HeNormalStatistics) {
  for (const ConvWeights& c : seed1().convs) {
    const double want = std::sqrt(2.0 / (9.0 * c.cin));
    const double n = static_cast<double>(c.kernel.size());
    double sum = 0, sq = 0, within1 = 0;
    for (float v : c.kernel) {
      sum += v;
      sq += static_cast<double>(v) * v;
      within1 += std::abs(v) < want;
    }
    const double mean = sum / n;
    const double sd = std::sqrt(sq / n - mean * mean);
    // 5-sigma bounds for the sample mean, standard deviation and the 1-sigma fraction.
    EXPECT_LT(std::abs(mean), 5 * want / std::sqrt(n)) << c.name;
    EXPECT_LT(std::abs(sd / want - 1), 5 / std::sqrt(2 * n)) << c.name;
    EXPECT_LT(std::abs(within1 / n - 0.682689492), 5 * 0.4654 / std::sqrt(n)) << c.name;
  }
}

// ---- load_weights and the Keras cache -----------------------------------------------------

TEST(LoadWeights, RandomSpec) {
  expect_same_convs(load_weights("random:1"), seed1());
  const Vgg16Weights one = load_weights("random:1", {"block5_conv3"});
  ASSERT_EQ(one.convs.size(), 1u);
  EXPECT_EQ(one.convs[0].kernel, seed1().conv("block5_conv3").kernel);  // same stream
  EXPECT_EQ(load_weights("random:18446744073709551615").source, "random:18446744073709551615");
  for (const char* bad : {"random:", "random:abc", "random:-1", "random:+1", "random:1x",
                          "random: 1", "random:18446744073709551616", "random"}) {
    EXPECT_THROW(load_weights(bad), UsageError) << bad;
  }
  EXPECT_HAS(error_of([] { load_weights("random:abc"); }), "random:42");
  EXPECT_THROW(load_weights("random:1", {"block1_pool"}), UsageError);
}

TEST(LoadWeights, PathSpec) {
  TempDir dir;
  const auto path = dir / "w.h5";
  write_keras_file(path, block1());
  expect_same_convs(load_weights(path.string(), kBlock1), block1());
  EXPECT_HAS(error_of([&] { load_weights((dir / "nope.h5").string()); }), "no such file");
}

TEST(LoadWeights, EmptySpecUsesTheKerasCacheOrSaysWhereToGetIt) {
  TempDir home, keras_home;
  ScopedEnv h("HOME", home.path().string());
  ScopedEnv k("KERAS_HOME", keras_home.path().string());
  EXPECT_EQ(find_keras_cache(), std::nullopt);
  const std::string m = error_of([] { load_weights(""); });
  EXPECT_HAS(m, "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5");
  EXPECT_HAS(m, "~/.keras/models/");
  EXPECT_HAS(m, (home.path() / ".keras" / "models").string());
  EXPECT_HAS(m, (keras_home.path() / "models").string());
  EXPECT_HAS(m,
             "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
             "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5");
  EXPECT_HAS(m, "--weights FILE");
  EXPECT_HAS(m, "random:SEED");

  // In ~/.keras/models/: found and loaded.
  const auto in_home = home / ".keras/models/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5";
  std::filesystem::create_directories(in_home.parent_path());
  write_keras_file(in_home, block1());
  EXPECT_EQ(find_keras_cache(), in_home);
  const Vgg16Weights w = load_weights("", kBlock1);
  expect_same_convs(w, block1());
  EXPECT_EQ(w.source, in_home.string());

  // $KERAS_HOME/models/ comes first.
  const auto in_keras_home =
      keras_home / "models/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5";
  std::filesystem::create_directories(in_keras_home.parent_path());
  std::filesystem::copy_file(in_home, in_keras_home);
  EXPECT_EQ(find_keras_cache(), in_keras_home);
}

// ---- SHA-256 ------------------------------------------------------------------------------

TEST(Sha256, KnownVectors) {
  TempDir dir;
  testing::write_text(dir / "abc", "abc");
  testing::write_text(dir / "empty", "");
  EXPECT_EQ(sha256_file(dir / "abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_file(dir / "empty"),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  // Over several 1 MiB chunks: 3 MiB + 3 bytes of 'a'.
  testing::write_text(dir / "big", std::string((3u << 20) + 3, 'a'));
  EXPECT_EQ(sha256_file(dir / "big"),
            "ad6afb2015a4e3b6b07017345cd324e32f83619416757a4c9dd7fc8d1a9f8b71");
  const std::string m = error_of([&] { sha256_file(dir / "missing"); });
  EXPECT_HAS(m, (dir / "missing").string());
  EXPECT_HAS(m, "No such file");
  EXPECT_HAS(error_of([&] { sha256_file(dir.path()); }), dir.path().string());
}

}  // namespace
}  // namespace tl
