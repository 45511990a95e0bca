// tl-export: a model from tl-train as ONNX, for ONNX Runtime, OpenCV dnn, OpenVINO, ...
#include <iostream>

#include <fmt/format.h>

#include "cli.hpp"
#include "tl/onnx_export.hpp"

int main(int argc, char** argv) {
  const tl::cli::ToolInfo info{
      "tl-export", "tl-export --model MODEL.h5 --output MODEL.onnx [--network | --weights FILE]",
      "Writes a model from tl-train as an ONNX graph (opset 13), checked by ONNX's checker: the "
      "head alone, reading features as tl-extract stores them, or with --network / --weights "
      "the whole network, from resized RGB pixels (0..255, NHWC) to class probabilities. "
      "Class names and the model's settings are in the file's metadata (tlkit.*).",
      "tl-export --model model.h5 --network --output model.onnx"};
  return tl::cli::run(info, argc, argv, [&](tl::cli::Parser& p) {
    namespace po = tl::cli::po;
    tl::OnnxExportConfig cfg;
    std::string model, output;
    po::options_description in("Input");
    in.add_options()("model", po::value(&model)->value_name("MODEL.h5"), "a model from tl-train")(
        "network", po::bool_switch(&cfg.network),
        "the whole network from images, with the model's VGG16 weights (its random:SEED, else "
        "the Keras cache)")("force", po::bool_switch(&cfg.force),
                            "accept VGG16 weights other than the model's");
    tl::cli::add_weights(in, cfg.weights,
                         "the whole network with these VGG16 weights (implies --network); their "
                         "SHA-256 must match the model's");
    po::options_description out("Output");
    out.add_options()("output", po::value(&output)->value_name("MODEL.onnx"), "the ONNX file")(
        "overwrite", po::bool_switch(&cfg.overwrite),
        "replace an output that holds another kind of file");
    p.add(in);
    p.add(out);
    if (!p.parse()) return 0;
    cfg.model = model;
    cfg.output = output;
    const tl::OnnxExportSummary s = tl::export_onnx(cfg, std::cerr);
    std::cerr << fmt::format("{} ({} bytes)\n", output, s.bytes);
    return 0;
  });
}
