// Keras's legacy-HDF5 VGG16 weights, loaded the way Keras's own loader reads them
// (legacy_h5_format.py: `layer_names`, then each layer's `weight_names`), the Keras cache,
// and the "random:SEED" / path / "" dispatch of load_weights.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <optional>

#include "tl/error.hpp"
#include "tl/hdf5.hpp"
#include "tl/hdf5_guard.hpp"
#include "tl/vgg16_spec.hpp"
#include "tl/weights.hpp"

namespace tl {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kCacheName = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5";
constexpr std::string_view kCacheUrl =
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
    "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5";
constexpr std::string_view kRandomPrefix = "random:";

// A problem found in the file, phrased without the file and layer: load_keras_weights adds them.
class Problem : public Error {
 public:
  using Error::Error;
};

std::string join(const std::vector<std::string>& v) {
  if (v.empty()) return "none";
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// numpy's spelling: (3, 3, 3, 64) and (64,)
std::string shape_str(const h5::Dims& d) {
  std::string s = "(";
  for (std::size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + (d.size() == 1 ? ",)" : ")");
}

std::vector<std::string> conv_names() {
  std::vector<std::string> v;
  for (const LayerSpec& l : vgg16_layers())
    if (l.kind == LayerKind::conv) v.emplace_back(l.name);
  return v;
}

// The conv layers named in `layers` (all 13 when empty), in network order, each once.
std::vector<LayerSpec> select_convs(const std::vector<std::string>& layers) {
  const std::vector<std::string> all = conv_names();
  for (const std::string& n : layers)
    if (std::find(all.begin(), all.end(), n) == all.end())
      throw UsageError("weights: '" + n + "' is not a VGG16 conv layer (conv layers: " + join(all) +
                       ")");
  std::vector<LayerSpec> out;
  for (const LayerSpec& l : vgg16_layers())
    if (l.kind == LayerKind::conv &&
        (layers.empty() || std::find(layers.begin(), layers.end(), l.name) != layers.end()))
      out.push_back(l);
  return out;
}

// Keras's load_attributes_from_hdf5_group: attribute `name`, or `name0`, `name1`, ...
// concatenated when Keras had to split a long list; nullopt when there is none.
std::optional<std::vector<std::string>> read_split_strings(const h5::Object& obj,
                                                           const std::string& name) {
  if (obj.has_attr(name)) return obj.read_attr<std::vector<std::string>>(name);
  if (!obj.has_attr(name + "0")) return std::nullopt;
  std::vector<std::string> all;
  for (int i = 0; obj.has_attr(name + std::to_string(i)); ++i) {
    auto part = obj.read_attr<std::vector<std::string>>(name + std::to_string(i));
    all.insert(all.end(), part.begin(), part.end());
  }
  return all;
}

// Runs f(); a Problem gets "<prefix>: " in front, an HDF5 error "HDF5 file 'F'..." has that
// head replaced by the prefix, so the file is named once.
template <class F>
auto in_context(const std::string& file, const std::string& prefix, F&& f) {
  try {
    return f();
  } catch (const UsageError&) {
    throw;
  } catch (const Problem& p) {
    throw Error(prefix + ": " + p.what());
  } catch (const Error& e) {
    const std::string head = "HDF5 file '" + file + "'";
    const std::string_view what = e.what();
    if (what.starts_with(head)) throw Error(prefix + std::string(what.substr(head.size())));
    throw Error(prefix + ": " + std::string(what));
  }
}

// One parameter named in `weight_names`: a float dataset of shape `want`, all finite.
std::vector<float> read_param(const h5::Group& g, const std::string& dataset, std::string_view role,
                              const h5::Dims& want) {
  const std::string what = std::string(role) + " '" + dataset + "'";
  if (g.kind(dataset) != h5::Kind::dataset)
    throw Problem(what + " (listed in weight_names) is not a dataset in group '" + g.path() + "'");
  h5::Dataset d = g.open_dataset(dataset);
  const h5::DType t = d.dtype();
  if (t != h5::DType::f32 && t != h5::DType::f64 && t != h5::DType::f16)
    throw Problem(what + " is " + d.type().name() + ", want float32");
  if (d.dims() != want)
    throw Problem(what + " has shape " + shape_str(d.dims()) + ", want " + shape_str(want));
  std::vector<float> v = d.read<float>();  // float64 and float16 converted by HDF5
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (std::isfinite(v[i])) continue;
    const std::string value = std::isnan(v[i]) ? "NaN" : v[i] > 0 ? "+Inf" : "-Inf";
    throw Problem(what + " holds " + value + " at flat index " + std::to_string(i) + " of " +
                  std::to_string(v.size()) +
                  (t == h5::DType::f32 ? "" : " (after conversion to float32)"));
  }
  return v;
}

ConvWeights load_conv(const h5::Group& root, const LayerSpec& l) {
  const std::string name(l.name);
  h5::Group g = root.open_group(name);
  if (!g.has_attr("weight_names"))
    throw Problem("group '" + g.path() + "' has no attribute 'weight_names'");
  const auto names = g.read_attr<std::vector<std::string>>("weight_names");
  if (names.size() != 2)
    throw Problem("weight_names lists " + std::to_string(names.size()) + " weights (" +
                  join(names) + "), want 2: kernel, bias");
  ConvWeights c;
  c.name = name;
  c.cin = l.cin;
  c.cout = l.cout;
  const auto cin = static_cast<hsize_t>(l.cin), cout = static_cast<hsize_t>(l.cout);
  c.kernel = read_param(g, names[0], "kernel", {3, 3, cin, cout});
  c.bias = read_param(g, names[1], "bias", {cout});
  return c;
}

std::string missing_cache_message() {
  std::string looked;
  if (const char* k = std::getenv("KERAS_HOME"); k && *k)
    looked += "$KERAS_HOME/models/ (" + (fs::path(k) / "models").string() + "/) and ";
  looked += "~/.keras/models/";
  if (const char* h = std::getenv("HOME"); h && *h)
    looked += " (" + (fs::path(h) / ".keras" / "models").string() + "/)";
  return "no weights file given, and the Keras cache has no " + std::string(kCacheName) +
         " (looked in " + looked + "). Download it (58.9 MB) from " + std::string(kCacheUrl) +
         ", or run python3 -c 'from tensorflow.keras.applications import VGG16; "
         "VGG16(include_top=False)' once on a machine with internet; then put it in "
         "~/.keras/models/ or pass --weights FILE. To test without it, use --weights "
         "random:SEED (random He-normal weights, NOT pretrained).";
}

std::uint64_t parse_seed(std::string_view spec) {
  const std::string_view digits = spec.substr(kRandomPrefix.size());
  std::uint64_t seed = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), seed);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size())
    throw UsageError("weights '" + std::string(spec) +
                     "': SEED must be a whole number from 0 to 18446744073709551615, e.g. "
                     "random:42");
  return seed;
}

}  // namespace

const ConvWeights& Vgg16Weights::conv(std::string_view name) const {
  std::vector<std::string> have;
  for (const ConvWeights& c : convs) {
    if (c.name == name) return c;
    have.push_back(c.name);
  }
  throw Error("weights '" + source + "': no layer '" + std::string(name) +
              "' (loaded: " + join(have) + ")");
}

bool Vgg16Weights::has(std::string_view name) const {
  return std::any_of(convs.begin(), convs.end(),
                     [&](const ConvWeights& c) { return c.name == name; });
}

std::string Vgg16Weights::describe() const {
  if (!pretrained) return source + " (NOT pretrained)";
  if (sha256.empty()) return source;
  return source + " (sha256 " + sha256.substr(0, 8) + "...)";
}

namespace {

// The conv layers `layers` of an existing Keras weights file (see load_keras_weights).
Vgg16Weights read_keras_weights(const fs::path& file, const std::vector<std::string>& layers) {
  const std::vector<LayerSpec> convs = select_convs(layers);
  const std::string name = file.string();
  const std::string ctx = "weights file '" + name + "'";
  h5::File f = in_context(name, ctx, [&] { return h5::File::open(file); });

  // Keras: a model.save() file keeps the weights in group `model_weights`.
  h5::Group root;
  std::vector<std::string> layer_names;
  in_context(name, ctx, [&] {
    auto names = read_split_strings(f, "layer_names");
    if (names) {
      root = f.open_group("/");
    } else if (f.kind("model_weights") == h5::Kind::group) {
      root = f.open_group("model_weights");
      names = read_split_strings(root, "layer_names");
    }
    if (!names)
      throw Problem(
          "no attribute 'layer_names' at the root or in group 'model_weights': not a Keras "
          "weights file (Keras's save_weights or legacy .h5 model.save)");
    layer_names = std::move(*names);
  });

  Vgg16Weights w;
  w.source = name;
  w.pretrained = true;
  for (const LayerSpec& l : convs) {
    if (std::find(layer_names.begin(), layer_names.end(), l.name) == layer_names.end())
      throw Error(ctx + ": no layer '" + std::string(l.name) +
                  "' (the file has: " + join(layer_names) + ")");
    const std::string lctx = ctx + ": layer '" + std::string(l.name) + "'";
    w.convs.push_back(in_context(name, lctx, [&] { return load_conv(root, l); }));
  }
  w.sha256 = sha256_file(file);
  return w;
}

}  // namespace

Vgg16Weights load_keras_weights(const fs::path& file, const std::vector<std::string>& layers) {
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    std::string msg = "weights file '" + file.string() + "': no such file";
    if (file.filename() == kCacheName)
      msg += " (Keras's VGG16 weights: download them from " + std::string(kCacheUrl) + ")";
    throw Error(msg);
  }
  // A file that crashes HDF5 1.10.8 is refused by name (docs/HARDENING.md), never read here.
  read_in_child_first(file, [&] { read_keras_weights(file, layers); });
  return read_keras_weights(file, layers);
}

std::optional<fs::path> find_keras_cache() {
  auto look = [](const fs::path& keras_dir) -> std::optional<fs::path> {
    const fs::path p = keras_dir / "models" / kCacheName;
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p;
    return std::nullopt;
  };
  if (const char* k = std::getenv("KERAS_HOME"); k && *k)
    if (auto p = look(k)) return p;
  if (const char* h = std::getenv("HOME"); h && *h)
    if (auto p = look(fs::path(h) / ".keras")) return p;
  return std::nullopt;
}

Vgg16Weights load_weights(std::string_view spec, const std::vector<std::string>& layers) {
  if (spec.starts_with(kRandomPrefix)) {
    const std::uint64_t seed = parse_seed(spec);
    const std::vector<LayerSpec> keep = select_convs(layers);
    Vgg16Weights w = random_weights(seed);  // all 13 from one stream: a subset matches them
    std::erase_if(w.convs, [&](const ConvWeights& c) {
      return std::none_of(keep.begin(), keep.end(),
                          [&](const LayerSpec& l) { return l.name == c.name; });
    });
    return w;
  }
  if (spec == "random")
    throw UsageError(
        "weights 'random': give a seed, e.g. random:42 (random weights, NOT pretrained)");
  if (spec.empty()) {
    const std::optional<fs::path> cached = find_keras_cache();
    if (!cached) throw Error(missing_cache_message());
    return load_keras_weights(*cached, layers);
  }
  return load_keras_weights(fs::path(spec), layers);
}

}  // namespace tl
