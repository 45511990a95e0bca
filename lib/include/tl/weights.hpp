// VGG16 conv weights: Keras's own HDF5 files, or a seeded random He-normal initialisation.
//
//   tl::Vgg16Weights w = tl::load_weights("random:42");          // tests and demos
//   tl::Vgg16Weights w = tl::load_weights("vgg16_..._notop.h5");  // Keras's file, as it is
//   tl::Vgg16Weights w = tl::load_weights("");                    // the Keras cache, or a clear
//   error
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tl {

// One conv layer's parameters in Keras's layout.
struct ConvWeights {
  std::string name;           // "block1_conv1"
  int cin = 0, cout = 0;      // kernel is 3x3
  std::vector<float> kernel;  // HWIO: [3][3][cin][cout], as Keras stores it
  std::vector<float> bias;    // [cout]
};

struct Vgg16Weights {
  // The conv layers that were loaded, in network order (all 13 for a full load).
  std::vector<ConvWeights> convs;
  std::string source;       // the file path as given, or "random:SEED"
  std::string sha256;       // hex SHA-256 of the file's bytes; "" for random weights
  bool pretrained = false;  // false for random weights: say so wherever they are used

  // The layer's weights; throws Error naming the layer and the source when absent.
  const ConvWeights& conv(std::string_view name) const;
  bool has(std::string_view name) const;
  // "random:42 (NOT pretrained)" or "vgg16_..._notop.h5 (sha256 1a2b3c4d...)"
  std::string describe() const;
};

// Keras's legacy-HDF5 weight file (the notop file, or the full model whose top layers are
// ignored), following `layer_names` and each layer's `weight_names` as Keras does, so both
// the `block1_conv1_W_1:0` and the `kernel:0` spellings load. Loads the conv layers listed
// in `layers` (default: all 13), checks every shape and that values are finite. Throws
// Error naming the file and the layer on a missing layer, a wrong shape or dtype, a
// truncated or non-HDF5 file.
Vgg16Weights load_keras_weights(const std::filesystem::path& file,
                                const std::vector<std::string>& layers = {});

// He-normal kernels (stddev sqrt(2 / (9 * cin))) and zero biases, from a 64-bit seed; the
// same seed gives the same weights on every machine.
Vgg16Weights random_weights(std::uint64_t seed);

// "random:SEED" -> random_weights; a path -> load_keras_weights; "" -> the Keras cache file
// (find_keras_cache), else Error saying where to get the file and where to put it.
Vgg16Weights load_weights(std::string_view spec, const std::vector<std::string>& layers = {});

// $KERAS_HOME/models/ or ~/.keras/models/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5
// when it exists.
std::optional<std::filesystem::path> find_keras_cache();

// Hex SHA-256 of a file's bytes (OpenSSL). Throws Error naming the file when unreadable.
std::string sha256_file(const std::filesystem::path& file);

}  // namespace tl
