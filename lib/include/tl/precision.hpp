// The compute precisions and f32 convolution algorithms of the network, and their names.
//
//   tl::Precision p = tl::parse_precision("bf16");   // UsageError for an unknown name
//   std::cout << tl::to_string(p);                    // "bf16"
#pragma once

#include <string_view>

namespace tl {

enum class Precision { f32, bf16, int8 };
// direct: oneDNN's direct convolution; winograd: f32 Winograd, oneDNN's where it has one
// (AVX-512), else tlkit's own (tl/winograd.hpp, AVX2 and up); auto: let oneDNN choose
// (convolution_auto); winograd_tlkit ("winograd-tlkit"): tlkit's Winograd even where oneDNN has
// one (for comparisons and tests). Precisions other than f32 always run direct.
enum class ConvAlgo { direct, winograd, automatic, winograd_tlkit };

Precision parse_precision(std::string_view s);  // UsageError naming the accepted values
ConvAlgo parse_algo(std::string_view s);
std::string_view to_string(Precision p);
std::string_view to_string(ConvAlgo a);

}  // namespace tl
