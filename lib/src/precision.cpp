// The names of the compute precisions and f32 convolution algorithms (tl/precision.hpp).
#include "tl/precision.hpp"

#include <fmt/format.h>

#include "tl/error.hpp"

namespace tl {

Precision parse_precision(std::string_view s) {
  if (s == "f32") return Precision::f32;
  if (s == "bf16") return Precision::bf16;
  if (s == "int8") return Precision::int8;
  throw UsageError(fmt::format("unknown precision '{}' (accepted: f32, bf16, int8)", s));
}

ConvAlgo parse_algo(std::string_view s) {
  if (s == "direct") return ConvAlgo::direct;
  if (s == "winograd") return ConvAlgo::winograd;
  if (s == "auto") return ConvAlgo::automatic;
  if (s == "winograd-tlkit") return ConvAlgo::winograd_tlkit;
  throw UsageError(fmt::format(
      "unknown convolution algorithm '{}' (accepted: direct, winograd, winograd-tlkit, auto)", s));
}

std::string_view to_string(Precision p) {
  switch (p) {
    case Precision::f32:
      return "f32";
    case Precision::bf16:
      return "bf16";
    case Precision::int8:
      return "int8";
  }
  return "?";
}

std::string_view to_string(ConvAlgo a) {
  switch (a) {
    case ConvAlgo::direct:
      return "direct";
    case ConvAlgo::winograd:
      return "winograd";
    case ConvAlgo::automatic:
      return "auto";
    case ConvAlgo::winograd_tlkit:
      return "winograd-tlkit";
  }
  return "?";
}

}  // namespace tl
