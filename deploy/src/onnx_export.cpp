#include "tl/onnx_export.hpp"

#include <array>
#include <ostream>
#include <string_view>

#include <fmt/format.h>

#include "onnx_graph.hpp"
#include "tl/error.hpp"
#include "tl/model_file.hpp"
#include "tl/output_file.hpp"
#include "tl/report.hpp"
#include "tl/version.hpp"
#include "tl/vgg16_spec.hpp"
#include "tl/weights.hpp"

namespace fs = std::filesystem;

namespace tl {
namespace {

// opset 13: what OpenCV 4.6's importer and every current ONNX Runtime read; all ops used here
// (Conv, Relu, MaxPool, Global*Pool, Transpose, Flatten, Sub, Div, Mul, Gemm, Softmax) have
// had their present meaning since then.
constexpr std::int64_t kOpset = 13;

using Dims = std::vector<std::int64_t>;

// Keras's HWIO kernel [3][3][cin][cout] -> ONNX's OIHW [cout][cin][3][3]. `reverse_input`
// reads the input channels in reverse order: block1_conv1 of a caffe model then takes RGB
// where Keras feeds BGR (the same products, the flip folded into the weights).
std::vector<float> oihw(const ConvWeights& w, bool reverse_input) {
  std::vector<float> out(w.kernel.size());
  for (int o = 0; o < w.cout; ++o)
    for (int i = 0; i < w.cin; ++i)
      for (int k = 0; k < 9; ++k) {
        const int src_i = reverse_input ? w.cin - 1 - i : i;
        out[((static_cast<size_t>(o) * w.cin + i) * 9) + k] =
            w.kernel[(static_cast<size_t>(k) * w.cin + src_i) * w.cout + o];
      }
  return out;
}

// The tensor flowing through the graph: its name, its dims and whether a 4-D one is NCHW.
struct Tensor {
  std::string name;
  Dims dims;
  bool nchw = false;
};

class Builder {
 public:
  explicit Builder(OnnxGraph& g) : g_(g) {}

  Tensor to_nchw(Tensor x) {
    if (x.dims.size() != 4 || x.nchw) return x;
    x.name = g_.node("Transpose", {x.name}, x.name + "_nchw", {{"perm", Dims{0, 3, 1, 2}}});
    x.dims = {x.dims[0], x.dims[3], x.dims[1], x.dims[2]};
    x.nchw = true;
    return x;
  }

  // conv 3x3 pad 1 + bias + ReLU, as every VGG16 conv.
  Tensor conv(const Tensor& in, const ConvWeights& w, bool reverse_input = false) {
    const Tensor x = to_nchw(in);
    if (x.dims[1] != w.cin)
      throw Error(
          fmt::format("layer {}: {} input channels, the graph has {}", w.name, w.cin, x.dims[1]));
    const std::string k =
        g_.constant(w.name + "/kernel", {w.cout, w.cin, 3, 3}, oihw(w, reverse_input));
    const std::string b = g_.constant(w.name + "/bias", {w.cout}, w.bias);
    const std::string y = g_.node(
        "Conv", {x.name, k, b}, w.name + "_conv",
        {{"kernel_shape", Dims{3, 3}}, {"pads", Dims{1, 1, 1, 1}}, {"strides", Dims{1, 1}}});
    return {g_.node("Relu", {y}, w.name), {x.dims[0], w.cout, x.dims[2], x.dims[3]}, true};
  }

  // Keras's MaxPooling2D(2): stride 2, no padding, floor.
  Tensor max_pool(const Tensor& in, const std::string& name) {
    const Tensor x = to_nchw(in);
    return {
        g_.node("MaxPool", {x.name}, name, {{"kernel_shape", Dims{2, 2}}, {"strides", Dims{2, 2}}}),
        {x.dims[0], x.dims[1], x.dims[2] / 2, x.dims[3] / 2},
        true};
  }

  // Global pooling over H and W, keeping [N, C, 1, 1] (a [N, C] tensor is already pooled).
  Tensor global_pool(const Tensor& in, Pool p, const std::string& name) {
    if (p == Pool::none || in.dims.size() == 2) return in;
    const Tensor x = to_nchw(in);
    return {g_.node(p == Pool::avg ? "GlobalAveragePool" : "GlobalMaxPool", {x.name}, name),
            {x.dims[0], x.dims[1], 1, 1},
            true};
  }

  // [N, ...] -> [N, features] in Keras's Flatten order: (h, w, c).
  Tensor flatten(const Tensor& in) {
    if (in.dims.size() == 2) return in;
    Tensor x = in;
    if (x.nchw) {
      x.name = g_.node("Transpose", {x.name}, x.name + "_nhwc", {{"perm", Dims{0, 2, 3, 1}}});
      x.dims = {x.dims[0], x.dims[2], x.dims[3], x.dims[1]};
    }
    return {g_.node("Flatten", {x.name}, "flatten", {{"axis", std::int64_t{1}}}),
            {x.dims[0], x.dims[1] * x.dims[2] * x.dims[3]}};
  }

  // VGG16's preprocessing of RGB 0..255 (NCHW, RGB order) as tlkit's image_preprocess.cpp
  // computes it, operation by operation in float32. caffe's RGB -> BGR is in block1_conv1's
  // weights (see conv's reverse_input), so its means are listed here in RGB order.
  Tensor preprocess(const Tensor& x, Preprocess p) {
    // [3, 1, 1]: broadcast over the channel axis of NCHW. OpenCV 4.6's importer fails on the
    // equivalent [1, 3, 1, 1] (an assertion in its shape code), so not that.
    const auto per_channel = [&](const std::string& name, std::array<float, 3> v) {
      return g_.constant(name, {3, 1, 1}, v);
    };
    const auto scalar = [&](const std::string& name, float v) {
      return g_.constant(name, {1}, std::array<float, 1>{v});
    };
    std::string y = x.name;
    switch (p) {
      case Preprocess::caffe:
        y = g_.node("Sub", {y, per_channel("caffe_mean_rgb", {123.68f, 116.779f, 103.939f})},
                    "preprocessed");
        break;
      case Preprocess::torch:
        y = g_.node("Div", {y, scalar("torch_255", 255.0f)}, "scaled");
        y = g_.node("Sub", {y, per_channel("torch_mean", {0.485f, 0.456f, 0.406f})}, "centred");
        y = g_.node("Div", {y, per_channel("torch_std", {0.229f, 0.224f, 0.225f})}, "preprocessed");
        break;
      case Preprocess::tf:
        y = g_.node("Div", {y, scalar("tf_127_5", 127.5f)}, "scaled");
        y = g_.node("Sub", {y, scalar("tf_one", 1.0f)}, "preprocessed");
        break;
      case Preprocess::rescale:
        y = g_.node("Mul", {y, scalar("rescale", static_cast<float>(1.0 / 255.0))}, "preprocessed");
        break;
      case Preprocess::none:
        break;
    }
    return {y, x.dims, true};
  }

  // The head: [standardize] -> Dense [-> ReLU -> Dense] -> Softmax. `x` is [N, features].
  std::string head(const Tensor& in, const DenseHead& h) {
    std::string x = in.name;
    const Standardization& s = h.standardization();
    const std::int64_t features = h.features();
    if (in.dims.size() != 2 || in.dims[1] != features)
      throw Error(fmt::format("the head reads {} features, the graph gives {}", features,
                              in.dims.size() == 2 ? in.dims[1] : -1));
    if (!s.empty()) {
      x = g_.node("Sub", {x, g_.constant("standardize_mean", {features}, s.mean)}, "centred_x");
      x = g_.node("Div", {x, g_.constant("standardize_std", {features}, s.std)}, "standardized");
    }
    const std::vector<Param>& params = h.params();
    for (size_t i = 0; i + 1 < params.size(); i += 2) {
      const Param& k = params[i];
      const Param& b = params[i + 1];
      const std::string layer = k.name.substr(0, k.name.find('/'));  // "fc1", "predictions"
      // B as [out, in] with transB = 1: OpenCV 4.6's importer refuses Gemm with transB = 0
      // (it reads the output count from B's first axis), so the kernel is stored transposed.
      const int in = k.shape[0], out = k.shape[1];
      std::vector<float> kt(k.value.size());
      for (int i = 0; i < in; ++i)
        for (int o = 0; o < out; ++o)
          kt[static_cast<size_t>(o) * in + i] = k.value[static_cast<size_t>(i) * out + o];
      x = g_.node("Gemm",
                  {x, g_.constant(k.name, {out, in}, kt), g_.constant(b.name, {out}, b.value)},
                  layer == "predictions" ? "logits" : layer, {{"transB", std::int64_t{1}}});
      if (layer != "predictions") x = g_.node("Relu", {x}, layer + "_relu");
    }
    return g_.node("Softmax", {x}, "probabilities", {{"axis", std::int64_t{1}}});
  }

 private:
  OnnxGraph& g_;
};

std::vector<std::string> convs_up_to(std::string_view layer) {
  std::vector<std::string> names;
  const auto layers = vgg16_layers();
  for (int i = 0; i <= layer_index(layer); ++i)
    if (layers[i].kind == LayerKind::conv) names.emplace_back(layers[i].name);
  return names;
}

std::string input_contract(bool network, const FeatureMeta& f, const Dims& dims) {
  std::string shape = "[N";
  for (size_t i = 1; i < dims.size(); ++i) shape += fmt::format(", {}", dims[i]);
  shape += "]";
  if (network)
    return fmt::format(
        "image: float32 {} NHWC, RGB values 0..255 of images resized to {}x{} ({} resize, as "
        "Keras's load_img + img_to_array give); {} preprocessing is inside the graph",
        shape, f.input_height, f.input_width, to_string(f.resize), to_string(f.preprocess));
  return fmt::format(
      "features: float32 {}, {} features as tl-extract stores them ({}x{} images, {} "
      "preprocessing, {} resize, pool {})",
      shape, f.layer, f.input_height, f.input_width, to_string(f.preprocess), to_string(f.resize),
      to_string(f.pool));
}

}  // namespace

OnnxExportSummary export_onnx(const OnnxExportConfig& cfg, std::ostream& log) {
  if (cfg.model.empty()) throw UsageError("--model: required (a model file from tl-train)");
  if (cfg.output.empty()) throw UsageError("--output: required (the ONNX file to write)");
  const bool network = cfg.network || !cfg.weights.empty();
  const bool weights_file = !cfg.weights.empty() && cfg.weights.rfind("random:", 0) != 0;
  check_outputs({{"--model", cfg.model}, {"--weights", weights_file ? cfg.weights : ""}},
                {{"--output", cfg.output, FileKind::onnx}}, cfg.overwrite);
  Model model = load_model(cfg.model);
  const ModelInfo& info = model.info;
  const FeatureMeta& f = info.features;
  const bool finetuned = !model.block5.empty();

  onnx::ModelProto proto;
  OnnxGraph g(proto, kOpset);
  Builder b(g);
  // The graph's input: resized pixels, or feature rows as stored ([N, H, W, C] or [N, C]).
  Dims input_dims{-1};
  if (network) {
    input_dims.insert(input_dims.end(), {f.input_height, f.input_width, 3});
  } else {
    input_dims.insert(input_dims.end(), f.feature_shape.begin(), f.feature_shape.end());
    if (input_dims.size() != 4 && input_dims.size() != 2)
      throw Error(fmt::format("'{}': feature rows of rank {} (want [H, W, C] or [C])",
                              cfg.model.string(), f.feature_shape.size()));
  }
  Tensor x{g.input(network ? "image" : "features", input_dims), input_dims};
  std::string weights_note;
  if (network) {
    const std::string spec = weights_for_model(info, cfg.weights, cfg.force);
    const Vgg16Weights w = load_weights(spec, convs_up_to(f.layer));
    weights_note = w.describe();
    x = b.preprocess(b.to_nchw(x), f.preprocess);
    const auto layers = vgg16_layers();
    for (int i = 0; i <= layer_index(f.layer); ++i) {
      const LayerSpec& l = layers[i];
      x = l.kind == LayerKind::conv
              ? b.conv(x, w.conv(l.name), i == 0 && f.preprocess == Preprocess::caffe)
              : b.max_pool(x, std::string(l.name));
    }
    x = b.global_pool(x, f.pool, f.layer + "_pool_" + std::string(to_string(f.pool)));
  }
  if (finetuned) {
    for (const ConvWeights& c : model.block5) x = b.conv(x, c);
    x = b.max_pool(x, "block5_pool");
  }
  const HeadConfig& hc = model.head.config();
  x = b.flatten(b.global_pool(x, hc.pool, "head_pool"));
  g.output(b.head(x, model.head), {-1, hc.classes});

  std::string classes = "[";
  for (size_t c = 0; c < info.classes.size(); ++c)
    classes += (c ? ", " : "") + json_string(info.classes[c]);
  classes += "]";
  OnnxExportSummary s{.graph = network ? "network" : "head",
                      .input = network ? "image" : "features",
                      .output = "probabilities",
                      .input_shape = {input_dims.begin(), input_dims.end()},
                      .nodes = g.nodes()};
  s.metadata = {
      {"tlkit.graph", s.graph},
      {"tlkit.classes", classes},
      {"tlkit.layer", f.layer},
      {"tlkit.input_height", std::to_string(f.input_height)},
      {"tlkit.input_width", std::to_string(f.input_width)},
      {"tlkit.resize", std::string(to_string(f.resize))},
      {"tlkit.preprocess", std::string(to_string(f.preprocess))},
      {"tlkit.feature_pool", std::string(to_string(f.pool))},
      {"tlkit.feature_precision", std::string(to_string(f.precision))},
      {"tlkit.head", std::string(to_string(hc.kind))},
      {"tlkit.head_pool", std::string(to_string(hc.pool))},
      {"tlkit.standardized", model.head.standardization().empty() ? "0" : "1"},
      {"tlkit.finetuned", info.finetuned},
      {"tlkit.weights", f.weights},
      {"tlkit.weights_sha256", f.weights_sha256},
      {"tlkit.input", input_contract(network, f, input_dims)},
      {"tlkit.version", kVersion},
  };
  for (const auto& [k, v] : s.metadata) {
    auto* p = proto.add_metadata_props();
    p->set_key(k);
    p->set_value(v);
  }
  proto.set_producer_name("tlkit");
  proto.set_producer_version(kVersion);
  proto.set_model_version(1);
  proto.set_doc_string(fmt::format("tlkit {} model from '{}': {}. Output: probabilities [N, {}].",
                                   s.graph, cfg.model.filename().string(),
                                   s.metadata["tlkit.input"], hc.classes));
  proto.mutable_graph()->set_name(network ? "vgg16_" + f.layer + "_head" : "head");
  check_onnx(proto, cfg.output.string());

  std::string bytes;
  if (!proto.SerializeToString(&bytes))
    throw Error(fmt::format("'{}': the ONNX graph could not be serialised", cfg.output.string()));
  write_file_atomically(cfg.output, bytes);
  s.bytes = bytes.size();
  log << fmt::format("{} graph: {} nodes, input '{}' {}, output 'probabilities' [N, {}]{}\n",
                     s.graph, s.nodes, s.input, s.metadata["tlkit.input"], hc.classes,
                     weights_note.empty() ? "" : "; VGG16 weights " + weights_note);
  if (network && f.precision != Precision::f32)
    log << fmt::format(
        "note: the model's features were computed in {}; the graph computes in float32\n",
        to_string(f.precision));
  return s;
}

}  // namespace tl
