#include "onnx_graph.hpp"

#include <cstring>
#include <stdexcept>

#include <fmt/format.h>
#include <onnx/checker.h>
#include <onnx/shape_inference/implementation.h>

#include "tl/error.hpp"

namespace tl {
namespace {

void set_dims(onnx::ValueInfoProto* v, const std::vector<std::int64_t>& dims) {
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto_DataType_FLOAT);
  auto* shape = t->mutable_shape();
  for (const std::int64_t d : dims) {
    if (d < 0)
      shape->add_dim()->set_dim_param("N");
    else
      shape->add_dim()->set_dim_value(d);
  }
}

}  // namespace

OnnxGraph::OnnxGraph(onnx::ModelProto& model, std::int64_t opset) : graph_(model.mutable_graph()) {
  model.set_ir_version(onnx::IR_VERSION);
  auto* op = model.add_opset_import();
  op->set_domain("");
  op->set_version(opset);
}

std::string OnnxGraph::input(const std::string& name, const std::vector<std::int64_t>& dims) {
  auto* v = graph_->add_input();
  v->set_name(name);
  set_dims(v, dims);
  return name;
}

void OnnxGraph::output(const std::string& name, const std::vector<std::int64_t>& dims) {
  auto* v = graph_->add_output();
  v->set_name(name);
  set_dims(v, dims);
}

std::string OnnxGraph::constant(const std::string& name, const std::vector<std::int64_t>& dims,
                                std::span<const float> values) {
  std::int64_t n = 1;
  for (const std::int64_t d : dims) n *= d;
  if (n != static_cast<std::int64_t>(values.size()))
    throw Error(
        fmt::format("ONNX constant '{}': {} values for {} elements", name, values.size(), n));
  auto* t = graph_->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto_DataType_FLOAT);
  for (const std::int64_t d : dims) t->add_dims(d);
  std::string raw(values.size_bytes(), '\0');  // little-endian float32, as ONNX stores raw_data
  std::memcpy(raw.data(), values.data(), values.size_bytes());
  t->set_raw_data(std::move(raw));
  return name;
}

std::string OnnxGraph::node(std::string_view op, const std::vector<std::string>& inputs,
                            const std::string& output, const std::vector<OnnxAttr>& attrs) {
  auto* n = graph_->add_node();
  n->set_op_type(std::string(op));
  n->set_name(output);
  for (const std::string& in : inputs) n->add_input(in);
  n->add_output(output);
  for (const OnnxAttr& a : attrs) {
    auto* p = n->add_attribute();
    p->set_name(a.name);
    if (const auto* i = std::get_if<std::int64_t>(&a.value)) {
      p->set_type(onnx::AttributeProto_AttributeType_INT);
      p->set_i(*i);
    } else if (const auto* f = std::get_if<float>(&a.value)) {
      p->set_type(onnx::AttributeProto_AttributeType_FLOAT);
      p->set_f(*f);
    } else {
      p->set_type(onnx::AttributeProto_AttributeType_INTS);
      for (const std::int64_t v : std::get<std::vector<std::int64_t>>(a.value)) p->add_ints(v);
    }
  }
  return output;
}

int OnnxGraph::nodes() const {
  return graph_->node_size();
}

void check_onnx(onnx::ModelProto& model, const std::string& what) {
  try {
    onnx::checker::check_model(model);
    // Strict: a node whose inferred shape conflicts with the declared output is an error.
    onnx::ModelProto inferred = model;
    onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(true, 1, false));
  } catch (const std::exception& e) {  // onnx::checker::ValidationError, InferenceError
    throw Error(fmt::format("'{}': ONNX's checker refuses the graph: {}", what, e.what()));
  }
}

}  // namespace tl
