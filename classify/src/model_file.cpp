#include "tl/model_file.hpp"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <optional>

#include <fmt/format.h>

#include "tl/error.hpp"
#include "tl/hdf5.hpp"
#include "tl/hdf5_guard.hpp"
#include "tl/output_file.hpp"
#include "tl/timestamp.hpp"
#include "tl/version.hpp"

namespace fs = std::filesystem;

namespace tl {
namespace {

void write_features_meta(h5::Group& g, const FeatureMeta& m) {
  g.write_attr("layer", m.layer);
  g.write_attr("input_height", m.input_height);
  g.write_attr("input_width", m.input_width);
  g.write_attr("preprocess", std::string(to_string(m.preprocess)));
  g.write_attr("resize", std::string(to_string(m.resize)));
  g.write_attr("precision", std::string(to_string(m.precision)));
  g.write_attr("algo", m.algo);
  g.write_attr("pool", std::string(to_string(m.pool)));
  g.write_attr("feature_shape", std::span<const std::int64_t>(m.feature_shape));
  g.write_attr("weights", m.weights);
  g.write_attr("weights_sha256", m.weights_sha256);
  g.write_attr("weights_pretrained", static_cast<std::int64_t>(m.weights_pretrained));
}

FeatureMeta read_features_meta(const h5::Group& g) {
  FeatureMeta m;
  m.layer = g.read_attr<std::string>("layer");
  m.input_height = static_cast<int>(g.read_attr<std::int64_t>("input_height"));
  m.input_width = static_cast<int>(g.read_attr<std::int64_t>("input_width"));
  m.preprocess = parse_preprocess(g.read_attr<std::string>("preprocess"));
  m.resize = parse_resize(g.read_attr<std::string>("resize"));
  m.precision = parse_precision(g.read_attr<std::string>("precision"));
  m.algo = g.read_attr<std::string>("algo");
  m.pool = parse_pool(g.read_attr<std::string>("pool"));
  m.feature_shape = g.read_attr<std::vector<std::int64_t>>("feature_shape");
  m.weights = g.read_attr<std::string>("weights");
  m.weights_sha256 = g.read_attr<std::string>("weights_sha256");
  m.weights_pretrained = g.read_attr<std::int64_t>("weights_pretrained") != 0;
  return m;
}

}  // namespace

namespace {
// The model's HDF5 file at `tmp`, closed (docs/FORMAT.md).
void write_model_file(const fs::path& tmp, const ModelInfo& info, const DenseHead& head,
                      const std::vector<ConvWeights>& block5) {
  auto f = h5::File::create(tmp, h5::Create::truncate);
  f.write_attr("format", kModelFormat);
  f.write_attr("format_version", block5.empty() ? std::int64_t{1} : kModelFormatVersion);
  if (!block5.empty()) {  // /block5/<layer>/kernel [3, 3, cin, cout] (HWIO), bias [cout]
    f.write_attr("finetuned", std::string("block5"));
    auto b = f.create_group("block5");
    for (const ConvWeights& c : block5) {
      auto l = b.create_group(c.name);
      l.create_dataset("kernel", h5::DType::f32,
                       {3, 3, static_cast<hsize_t>(c.cin), static_cast<hsize_t>(c.cout)})
          .write<float>(c.kernel);
      l.create_dataset("bias", h5::DType::f32, {static_cast<hsize_t>(c.cout)}).write<float>(c.bias);
    }
  }
  f.write_attr("created", info.created.empty() ? utc_timestamp() : info.created);
  f.write_attr("tool_version", kVersion);
  f.create_dataset("classes", h5::DType::str, {info.classes.size()})
      .write<std::string>(info.classes);

  auto h = f.create_group("head");
  const HeadConfig& c = head.config();
  h.write_attr("kind", std::string(to_string(c.kind)));
  // A head that does not pool flattens its rows: "flatten", Keras's layer (docs/FORMAT.md).
  h.write_attr("pool",
               c.pool == Pool::none ? std::string("flatten") : std::string(to_string(c.pool)));
  h.write_attr("hidden", c.hidden);
  h.write_attr("dropout", static_cast<double>(c.dropout));
  h.write_attr("classes", c.classes);
  const std::vector<std::int64_t> in{c.input.h, c.input.w, c.input.c};
  h.write_attr("input_shape", std::span<const std::int64_t>(in));
  std::vector<std::string> names;
  for (const Param& p : head.params()) {
    h5::Dims dims(p.shape.begin(), p.shape.end());
    h.create_dataset(p.name, h5::DType::f32, dims).write<float>(p.value);
    names.push_back(p.name);
  }
  h.write_attr("weight_names", names);
  if (const Standardization& z = head.standardization(); !z.empty()) {  // [features] each
    const h5::Dims dims{z.mean.size()};
    h.create_dataset("standardize_mean", h5::DType::f32, dims).write<float>(z.mean);
    h.create_dataset("standardize_std", h5::DType::f32, dims).write<float>(z.std);
  }

  auto g = f.create_group("features");
  write_features_meta(g, info.features);
  if (info.features.calibration) write_calibration(g, *info.features.calibration);
  auto t = f.create_group("training");
  for (const auto& [k, v] : info.training) t.write_attr(k, v);
  f.flush();
}

}  // namespace

void save_model(const fs::path& path, const ModelInfo& info, const DenseHead& head,
                const std::vector<ConvWeights>& block5) {
  // Issue 15, item 9: a diverged model (NaN or inf weights) is never written.
  auto finite = [](std::span<const float> v) {
    return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
  };
  for (const Param& p : head.params())
    if (!finite(p.value))
      throw Error(fmt::format(
          "training diverged: the head's {} holds NaN or inf; no model written{} (try a lower "
          "learning rate)",
          p.name, fs::exists(path) ? fmt::format(", '{}' is left as it was", path.string()) : ""));
  for (const ConvWeights& c : block5)
    if (!finite(c.kernel) || !finite(c.bias))
      throw Error(
          fmt::format("fine-tuning diverged: {} holds NaN or inf; no model written", c.name));
  // A name of this process's own (two runs never share it); the lock is the caller's.
  const fs::path tmp = temporary_path_for(path);
  struct RemoveOnFailure {
    const fs::path& p;
    bool armed = true;
    ~RemoveOnFailure() {
      std::error_code ec;
      if (armed) fs::remove(p, ec);
    }
  } cleanup{tmp};
  try {
    write_model_file(tmp, info, head, block5);
  } catch (const Error& e) {  // a full disk, a file-size limit: one message, nothing left
    std::error_code ec;
    throw Error(fmt::format(
        "cannot write the model '{}': {}. No model written{}", path.string(), e.what(),
        fs::exists(path, ec) ? fmt::format("; '{}' is left as it was", path.string()) : ""));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec)  // no half-done save left behind (RemoveOnFailure)
    throw Error(
        fmt::format("cannot move the model into place at '{}': {}", path.string(), ec.message()));
  cleanup.armed = false;
}

namespace {

Model read_model(const fs::path& path) {
  const auto f = h5::File::open(path);
  if (!f.has_attr("format") || f.read_attr<std::string>("format") != kModelFormat)
    throw Error(
        fmt::format("'{}' is not a tlkit model file (no format=\"{}\" attribute){}", path.string(),
                    kModelFormat,
                    f.has_attr("format") && f.read_attr<std::string>("format") == kFeatureFormat
                        ? ": it is a feature file (pass it with --features)"
                        : ""));
  if (f.read_attr<std::int64_t>("format_version") > kModelFormatVersion)
    throw Error(fmt::format("'{}': model format is newer than this tlkit reads", path.string()));
  ModelInfo info;
  info.created = f.read_attr<std::string>("created");
  info.tool_version = f.read_attr<std::string>("tool_version");
  info.classes = f.open_dataset("classes").read<std::string>();
  const auto h = f.open_group("head");
  HeadConfig& c = info.head;
  try {
    c.kind = parse_head_kind(h.read_attr<std::string>("kind"));
    c.pool = parse_pool(h.read_attr<std::string>("pool"));
  } catch (const UsageError& e) {
    throw Error(fmt::format("'{}': {}", path.string(), e.what()));
  }
  c.hidden = static_cast<int>(h.read_attr<std::int64_t>("hidden"));
  c.dropout = static_cast<float>(h.read_attr<double>("dropout"));
  c.classes = static_cast<int>(h.read_attr<std::int64_t>("classes"));
  const auto in = h.read_attr<std::vector<std::int64_t>>("input_shape");
  if (in.size() != 3)
    throw Error(fmt::format("'{}': head/input_shape is not [H, W, C]", path.string()));
  c.input = {1, static_cast<int>(in[0]), static_cast<int>(in[1]), static_cast<int>(in[2])};
  if (static_cast<int>(info.classes.size()) != c.classes)
    throw Error(fmt::format("'{}': {} class names for a head of {} classes", path.string(),
                            info.classes.size(), c.classes));
  try {
    validate(c);
  } catch (const UsageError& e) {
    throw Error(fmt::format("'{}': {}", path.string(), e.what()));
  }
  try {
    info.features = read_features_meta(f.open_group("features"));
  } catch (const UsageError& e) {  // a setting this tlkit does not know
    throw Error(fmt::format("'{}': features: {}", path.string(), e.what()));
  }
  if (f.open_group("features").has_attr("int8_layers"))  // the ranges int8 features used
    info.features.calibration =
        std::make_shared<Int8Calibration>(read_calibration_attrs_of(f.open_group("features")));
  info.features.classes = info.classes;
  const auto t = f.open_group("training");
  for (const auto& k : t.attr_names()) info.training[k] = t.read_attr<std::string>(k);

  DenseHead head(c, 0);
  std::vector<std::vector<float>> w;
  for (const Param& p : head.params()) {
    if (!h.exists(p.name)) throw Error(fmt::format("'{}': no head/{}", path.string(), p.name));
    const auto d = h.open_dataset(p.name);
    if (d.dims() != h5::Dims(p.shape.begin(), p.shape.end()))
      throw Error(fmt::format("'{}': head/{} has shape {}, the head needs {}", path.string(),
                              p.name, fmt::join(d.dims(), "x"), fmt::join(p.shape, "x")));
    w.push_back(d.read<float>());
    for (float v : w.back())
      if (!std::isfinite(v))
        throw Error(fmt::format("'{}': head/{} holds NaN or Inf", path.string(), p.name));
  }
  head.set_weights(w);
  // Standardisation: absent in models written before it existed, which read rows as they are.
  if (h.exists("standardize_mean") || h.exists("standardize_std")) {
    if (!h.exists("standardize_mean") || !h.exists("standardize_std"))
      throw Error(fmt::format("'{}': head/standardize_mean and head/standardize_std come together",
                              path.string()));
    Standardization z{h.open_dataset("standardize_mean").read<float>(),
                      h.open_dataset("standardize_std").read<float>()};
    try {
      head.set_standardization(std::move(z));
    } catch (const Error& e) {
      throw Error(fmt::format("'{}': {}", path.string(), e.what()));
    }
  }
  std::vector<ConvWeights> block5;
  if (f.has_attr("finetuned")) {
    info.finetuned = f.read_attr<std::string>("finetuned");
    if (info.finetuned != "block5")
      throw Error(fmt::format("'{}': fine-tuned part '{}' is not one this tlkit knows (block5)",
                              path.string(), info.finetuned));
    if (!f.exists("block5")) throw Error(fmt::format("'{}': no block5 group", path.string()));
    const auto b = f.open_group("block5");
    for (const char* name : {"block5_conv1", "block5_conv2", "block5_conv3"}) {
      const std::string k = fmt::format("{}/kernel", name), bn = fmt::format("{}/bias", name);
      if (!b.exists(k) || !b.exists(bn))
        throw Error(fmt::format("'{}': no block5/{} kernel and bias", path.string(), name));
      const auto kd = b.open_dataset(k), bd = b.open_dataset(bn);
      if (kd.dims() != h5::Dims{3, 3, 512, 512} || bd.dims() != h5::Dims{512})
        throw Error(
            fmt::format("'{}': block5/{} has kernel {} and bias {}, need 3x3x512x512 "
                        "and 512",
                        path.string(), name, fmt::join(kd.dims(), "x"), fmt::join(bd.dims(), "x")));
      ConvWeights c{name, 512, 512, kd.read<float>(), bd.read<float>()};
      for (const auto* v : {&c.kernel, &c.bias})
        for (float x : *v)
          if (!std::isfinite(x))
            throw Error(fmt::format("'{}': block5/{} holds NaN or Inf", path.string(), name));
      block5.push_back(std::move(c));
    }
  }
  return {std::move(info), std::move(head), std::move(block5)};
}

}  // namespace

Model load_model(const fs::path& path) {
  read_in_child_first(path, [&] { read_model(path); });  // a model that crashes HDF5: refused
  return read_model(path);
}

std::vector<int> model_class_indices(const std::vector<std::string>& classes,
                                     const std::vector<std::string>& model_classes,
                                     const std::string& what) {
  std::vector<int> index;
  std::vector<std::string> unknown;
  for (const auto& c : classes) {
    const auto it = std::find(model_classes.begin(), model_classes.end(), c);
    index.push_back(it == model_classes.end() ? -1 : static_cast<int>(it - model_classes.begin()));
    if (it == model_classes.end()) unknown.push_back(c);
  }
  if (!unknown.empty())
    throw Error(fmt::format("{} [{}] {} not among the model's {} classes [{}]", what,
                            fmt::join(unknown, ", "), unknown.size() == 1 ? "is" : "are",
                            model_classes.size(), fmt::join(model_classes, ", ")));
  return index;
}

void check_features_fit(const ModelInfo& model, const FeatureMeta& m, const fs::path& file,
                        bool force) {
  const FeatureMeta& want = model.features;
  auto fail = [&](const std::string& what) {
    throw Error(fmt::format("features in '{}' do not fit the model: {}", file.string(), what));
  };
  if (m.layer != want.layer) fail(fmt::format("layer {}, the model reads {}", m.layer, want.layer));
  if (m.feature_shape != want.feature_shape)
    fail(fmt::format("rows of {}, the model reads {}", fmt::join(m.feature_shape, "x"),
                     fmt::join(want.feature_shape, "x")));
  if (m.pool != want.pool)
    fail(fmt::format("pool {}, the model reads {}", to_string(m.pool), to_string(want.pool)));
  try {  // a subset of the model's classes is fine (issue 15, item 23)
    model_class_indices(m.classes, model.classes, "its classes");
  } catch (const Error& e) {
    fail(e.what());
  }
  if (m.preprocess != want.preprocess || m.input_height != want.input_height ||
      m.input_width != want.input_width)
    fail(fmt::format("made with {} at {}x{}, the model with {} at {}x{}", to_string(m.preprocess),
                     m.input_height, m.input_width, to_string(want.preprocess), want.input_height,
                     want.input_width));
  if (!force && (m.weights_sha256 != want.weights_sha256 || m.weights != want.weights))
    fail(fmt::format(
        "VGG16 weights {} (sha256 {}), the model was trained on {} (sha256 {}); "
        "--force uses them anyway",
        m.weights, m.weights_sha256.empty() ? "-" : m.weights_sha256.substr(0, 12), want.weights,
        want.weights_sha256.empty() ? "-" : want.weights_sha256.substr(0, 12)));
}

std::string weights_for_model(const ModelInfo& m, const std::string& weights, bool force) {
  const bool model_random = m.features.weights.rfind("random:", 0) == 0;
  const std::string spec = !weights.empty() ? weights : model_random ? m.features.weights : "";
  if (force) return spec;
  std::string sha = spec;
  if (spec.rfind("random:", 0) != 0) {
    const auto file = spec.empty() ? find_keras_cache() : std::optional<fs::path>(spec);
    sha = file ? sha256_file(*file) : "";
  }
  const std::string want = model_random ? m.features.weights : m.features.weights_sha256;
  if (!sha.empty() && sha != want)
    throw Error(fmt::format(
        "VGG16 weights '{}' differ from the ones the model was trained on ({}, sha256 {}); "
        "--force uses them anyway",
        spec.empty() ? "(Keras cache)" : spec, m.features.weights,
        m.features.weights_sha256.empty() ? "-" : m.features.weights_sha256));
  return spec;
}

}  // namespace tl
