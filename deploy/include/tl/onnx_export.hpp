// A trained model as an ONNX graph (opset 13) that any ONNX runtime can serve: the head alone
// on cached features, or the whole network from resized pixels to class probabilities.
// Written with Debian's ONNX library (the schema's protobuf classes) and validated by ONNX's
// own checker and shape inference before the file is written.
//
//   tl::OnnxExportConfig cfg{.model = "model.h5", .output = "model.onnx"};       // head only
//   tl::OnnxExportSummary s = tl::export_onnx(cfg, std::cerr);
//   cfg.network = true; cfg.weights = "vgg16_notop.h5";                           // image -> probs
//
// Graphs (docs/GUIDE.md, "Serving a model"; inputs have a dynamic batch dimension "N"):
//   head:    features [N, <the feature file's row shape>] float32, as tl-extract stores them
//            -> [block5 convs + pool, fine-tuned models] -> Flatten | GlobalPool
//            -> [(x - mean) / std] -> Dense [-> ReLU -> Dense] -> Softmax -> probabilities [N, C]
//   network: image [N, H, W, 3] float32 RGB 0..255, resized as the model's resize mode says
//            -> the model's preprocessing -> VGG16 convs up to the model's layer -> the head
// Tensors run NCHW inside the graph (the layout every runtime's Conv takes); a Transpose turns
// NHWC inputs in and back to (h, w, c) order before Flatten, which keeps Keras's order.
#pragma once

#include <cstddef>
#include <filesystem>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

namespace tl {

struct OnnxExportConfig {
  std::filesystem::path model{};   // from tl-train
  std::filesystem::path output{};  // MODEL.onnx
  // The whole network (image -> probabilities) with these VGG16 weights; with `network` and
  // no weights: the model's random:SEED, else the Keras cache. Neither: the head alone.
  std::string weights{};
  bool network = false;
  bool force = false;      // weights whose SHA-256 is not the model's
  bool overwrite = false;  // replace an output that is not an ONNX model
};

struct OnnxExportSummary {
  std::string graph{};                   // "head" or "network"
  std::string input{}, output{};         // tensor names: "features" | "image", "probabilities"
  std::vector<long long> input_shape{};  // -1 for the batch dimension
  int nodes = 0;
  std::size_t bytes = 0;
  std::map<std::string, std::string> metadata{};  // what the file's metadata_props hold
};

// The metadata keys (all strings): tlkit.graph ("head" | "network"), tlkit.classes (a JSON
// array in class-index order), tlkit.layer, tlkit.input_height, tlkit.input_width,
// tlkit.resize, tlkit.preprocess, tlkit.feature_pool, tlkit.feature_precision, tlkit.head,
// tlkit.head_pool, tlkit.standardized, tlkit.finetuned, tlkit.weights, tlkit.weights_sha256,
// tlkit.input (the input contract in words), tlkit.version.
//
// Throws UsageError for a bad config (naming the option) and Error naming the file for a model
// that cannot be read, weights that differ from the model's (unless force) or a graph ONNX's
// checker refuses; the output is then untouched (written to a temporary, renamed at the end).
OnnxExportSummary export_onnx(const OnnxExportConfig& cfg, std::ostream& log);

}  // namespace tl
