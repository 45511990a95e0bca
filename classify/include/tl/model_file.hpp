// A trained model as an HDF5 file: the head's weights plus everything needed to use it later
// (classes, the feature layer and shape, how the features were made, the weights file's
// SHA-256, the training options). Layout in docs/FORMAT.md.
//
//   tl::save_model("model.h5", info, head);        // written to model.h5.tmp, then renamed
//   tl::Model m = tl::load_model("model.h5");      // m.head.predict(...)
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "tl/dense_head.hpp"
#include "tl/feature_file.hpp"
#include "tl/weights.hpp"

namespace tl {

inline constexpr const char* kModelFormat = "tlkit-model";
// Version 1: a head. Version 2: a head with fine-tuned block5 weights (only such files are
// written as version 2, so an older tlkit refuses them instead of ignoring block5).
inline constexpr std::int64_t kModelFormatVersion = 2;

struct ModelInfo {
  HeadConfig head{};
  std::vector<std::string> classes{};
  // How the features the head reads were made (layer, size, preprocessing, resize,
  // precision, extraction pooling, row shape, weights name and SHA-256).
  FeatureMeta features{};
  // Training options and results, as text ("optimizer" -> "adam", "best_epoch" -> "7").
  std::map<std::string, std::string> training{};
  std::string created{}, tool_version{};
  // "block5" when the model fine-tuned block5 (then `features` are block4_pool features and
  // Model::block5 holds the trained convs); "" for a head alone.
  std::string finetuned{};
};

struct Model {
  ModelInfo info;
  DenseHead head;
  std::vector<ConvWeights> block5{};  // block5_conv1..3 when info.finetuned == "block5"
};

// Writes atomically (a temporary file renamed into place): an interrupted save never leaves
// a half-written model under `path`.
// `block5`: the fine-tuned block5_conv1..3 (stored under /block5, info.finetuned = "block5").
void save_model(const std::filesystem::path& path, const ModelInfo& info, const DenseHead& head,
                const std::vector<ConvWeights>& block5 = {});

// Throws Error naming the file when it is not a tlkit model or its weights do not fit.
Model load_model(const std::filesystem::path& path);

// For each class name of a feature file or image folder, its index among the model's
// classes: a subset, in any order, is fine. Error naming `what` and every unknown class.
std::vector<int> model_class_indices(const std::vector<std::string>& classes,
                                     const std::vector<std::string>& model_classes,
                                     const std::string& what);

// Error naming `features_file` and the difference when features made as `m` cannot be fed
// to the model (layer, row shape, extraction pooling, or classes the model does not know).
// A different weights file is refused unless `force` (the message says so).
void check_features_fit(const ModelInfo& model, const FeatureMeta& m,
                        const std::filesystem::path& features_file, bool force);

// The VGG16 weights that reproduce the model's features: `weights` when given, else the
// model's random:SEED, else "" (the Keras cache, see load_weights). Unless `force`, Error when
// their SHA-256 (or seed) is not the model's, before anything is computed.
std::string weights_for_model(const ModelInfo& m, const std::string& weights, bool force);

}  // namespace tl
