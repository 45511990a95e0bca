// The activation ranges an int8 net is quantised with (tl/int8_quantization.hpp measures and
// applies them; feature files store them, tl/feature_file.hpp).
//
//   tl::Int8Calibration c{.from = "input", .input = 151.f, .outputs = {{"block1_conv1", 812.f}}};
#pragma once

#include <map>
#include <string>

namespace tl {

// Activation ranges for int8 (u8 activations, s8 weights with per-output-channel scales):
// the largest |value| of the net's input and the largest value of each layer's output,
// measured in f32 on sample images (calibrate_int8). Saved with the features so that a run
// can reuse them.
struct Int8Calibration {
  std::string from;                      // the layer whose output feeds the net ("input")
  float input = 0;                       // max |x| of that input
  std::map<std::string, float> outputs;  // layer name -> max of its (post-ReLU) output
  int images = 0;                        // how many images were measured
};

}  // namespace tl
