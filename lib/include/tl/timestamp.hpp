// The time stamps tlkit writes into its files: UTC, ISO 8601, to the second.
//
//   file.write_attr("created", tl::utc_timestamp());   // "2026-11-26T15:04:05Z"
#pragma once

#include <string>

namespace tl {

// "2026-11-26T15:04:05Z"
std::string utc_timestamp();

}  // namespace tl
