// Test helpers: Keras legacy-HDF5 weight files written with tlkit's h5
// wrapper in the layout of Keras's own files (see shared/reference/keras-vgg16.md).
//
//   tl::testing::TempDir dir;
//   tl::testing::write_keras_file(dir / "w.h5", tl::random_weights(1),
//                                 {.spelling = tl::testing::Spelling::keras2});
#pragma once

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "test_util.hpp"
#include "tl/error.hpp"
#include "tl/hdf5.hpp"
#include "tl/vgg16_spec.hpp"
#include "tl/weights.hpp"

namespace tl::testing {

// Dataset names as Keras 1 (`block1_conv1_W_1:0`) or Keras 2 (`block1_conv1/kernel:0`, a
// group inside the layer's group) writes them.
enum class Spelling { keras1, keras2 };

struct KerasFileOptions {
  Spelling spelling = Spelling::keras1;
  bool full_model = false;            // add flatten, fc1, fc2, predictions (small shapes)
  bool model_weights = false;         // all under group "model_weights", as model.save() does
  std::size_t split_layer_names = 0;  // > 0: layer_names0, layer_names1, ... of this many
};

// {kernel, bias} as the layer's `weight_names` lists them.
inline std::vector<std::string> keras_weight_names(std::string_view layer, Spelling s) {
  const std::string n(layer);
  if (s == Spelling::keras1) return {n + "_W_1:0", n + "_b_1:0"};
  return {n + "/kernel:0", n + "/bias:0"};
}

// A layer without weights: Keras stores its empty `weight_names` as numpy's empty float64
// array, shape (0,).
inline void write_weightless_layer(h5::Group& root, const std::string& name) {
  h5::Group g = root.create_group(name);
  g.write_attr("weight_names", std::span<const double>{});
}

inline void write_dense_layer(h5::Group& root, const std::string& name, hsize_t in, hsize_t out,
                              Spelling s) {
  h5::Group g = root.create_group(name);
  const auto wn = keras_weight_names(name, s);
  g.write_attr_fixed("weight_names", wn);
  g.create_dataset(wn[0], h5::DType::f32, {in, out})
      .write(std::vector<float>(static_cast<std::size_t>(in * out), 0.25f));
  g.create_dataset(wn[1], h5::DType::f32, {out})
      .write(std::vector<float>(static_cast<std::size_t>(out), -1.0f));
}

// Writes the conv layers of `w` (any subset, in network order) with every pool, plus
// `input_1`, as Keras's weight files hold them; `layer_names` is an array of fixed-length
// byte strings.
inline void write_keras_file(const std::filesystem::path& path, const Vgg16Weights& w,
                             const KerasFileOptions& o = {}) {
  h5::File f = h5::File::create(path);
  h5::Group root = o.model_weights ? f.create_group("model_weights") : f.open_group("/");
  if (o.model_weights) f.write_attr("model_config", "{\"class_name\": \"Functional\"}");
  std::vector<std::string> names{"input_1"};
  write_weightless_layer(root, "input_1");
  for (const LayerSpec& l : vgg16_layers()) {
    const std::string name(l.name);
    if (l.kind == LayerKind::pool) {
      names.push_back(name);
      write_weightless_layer(root, name);
      continue;
    }
    if (!w.has(name)) continue;
    names.push_back(name);
    const ConvWeights& c = w.conv(name);
    h5::Group g = root.create_group(name);
    const auto wn = keras_weight_names(name, o.spelling);
    g.write_attr_fixed("weight_names", wn);
    const auto cin = static_cast<hsize_t>(c.cin), cout = static_cast<hsize_t>(c.cout);
    g.create_dataset(wn[0], h5::DType::f32, {3, 3, cin, cout}).write(c.kernel);
    g.create_dataset(wn[1], h5::DType::f32, {cout}).write(c.bias);
  }
  if (o.full_model) {
    names.push_back("flatten");
    write_weightless_layer(root, "flatten");
    struct Dense {
      const char* name;
      hsize_t in, out;
    };
    for (const Dense& d : {Dense{"fc1", 8, 6}, Dense{"fc2", 6, 6}, Dense{"predictions", 6, 5}}) {
      names.emplace_back(d.name);
      write_dense_layer(root, d.name, d.in, d.out, o.spelling);
    }
  }
  if (o.split_layer_names == 0) {
    root.write_attr_fixed("layer_names", names);
  } else {
    for (std::size_t i = 0, part = 0; i < names.size(); i += o.split_layer_names, ++part) {
      const auto end = names.begin() +
                       static_cast<std::ptrdiff_t>(std::min(names.size(), i + o.split_layer_names));
      root.write_attr_fixed(
          "layer_names" + std::to_string(part),
          std::vector<std::string>(names.begin() + static_cast<std::ptrdiff_t>(i), end));
    }
  }
  root.write_attr_fixed("backend", "tensorflow");
  root.write_attr_fixed("keras_version", "2.1.5");
}

// Reopens `path` read-write and lets `edit` break it.
inline void edit_h5(const std::filesystem::path& path, const std::function<void(h5::File&)>& edit) {
  h5::File f = h5::File::open(path, h5::Mode::read_write);
  edit(f);
}

// The conv layers of `w` named in `names`, for small test files.
inline Vgg16Weights subset(const Vgg16Weights& w, const std::vector<std::string>& names) {
  Vgg16Weights s = w;
  s.convs.clear();
  for (const auto& n : names) s.convs.push_back(w.conv(n));
  return s;
}

}  // namespace tl::testing
