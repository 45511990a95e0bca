// Building an ONNX graph node by node on the schema's protobuf classes, and the one place
// where ONNX's checker and shape inference run (their exceptions become tl::Error).
//
//   onnx::ModelProto m;
//   tl::OnnxGraph g(m, /*opset=*/13);
//   std::string x = g.input("features", {-1, 7, 7, 512});           // -1: the batch "N"
//   x = g.node("Flatten", {x}, "flat", {{"axis", 1}});
//   x = g.node("Gemm", {x, g.constant("W", {25088, 5}, w), g.constant("b", {5}, b)}, "logits");
//   g.output(g.node("Softmax", {x}, "probabilities", {{"axis", 1}}), {-1, 5});
//   tl::check_onnx(m, "model.onnx");                                // Error naming the file
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <onnx/onnx_pb.h>

namespace tl {

struct OnnxAttr {
  std::string name;
  std::variant<std::int64_t, float, std::vector<std::int64_t>> value;
};

class OnnxGraph {
 public:
  OnnxGraph(onnx::ModelProto& model, std::int64_t opset);

  // A float32 graph input / output; a dimension of -1 is the dynamic batch "N".
  std::string input(const std::string& name, const std::vector<std::int64_t>& dims);
  void output(const std::string& name, const std::vector<std::int64_t>& dims);
  // A float32 initializer (raw little-endian data); returns its name.
  std::string constant(const std::string& name, const std::vector<std::int64_t>& dims,
                       std::span<const float> values);
  // A node with one output, named `output`; returns that name.
  std::string node(std::string_view op, const std::vector<std::string>& inputs,
                   const std::string& output, const std::vector<OnnxAttr>& attrs = {});
  int nodes() const;

 private:
  onnx::GraphProto* graph_;
};

// ONNX's checker (full model check) and strict shape inference, which must give the declared
// output shapes. Error naming `what` (the file) and the checker's message.
void check_onnx(onnx::ModelProto& model, const std::string& what);

}  // namespace tl
