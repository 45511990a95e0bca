// The compute precisions and f32 convolution algorithms of the network, and their names.
//
//   tl::Precision p = tl::parse_precision("bf16");   // UsageError for an unknown name
//   std::cout << tl::to_string(p);                    // "bf16"
#pragma once

#include <string_view>

namespace tl {

enum class Precision { f32, bf16, int8 };
// direct: oneDNN's direct convolution; winograd: oneDNN's Winograd (f32 only, where oneDNN has
// it); auto: let oneDNN choose (convolution_auto).
enum class ConvAlgo { direct, winograd, automatic };

Precision parse_precision(std::string_view s);  // UsageError naming the accepted values
ConvAlgo parse_algo(std::string_view s);
std::string_view to_string(Precision p);
std::string_view to_string(ConvAlgo a);

}  // namespace tl
