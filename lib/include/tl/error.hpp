// tlkit's exceptions. lib/ never exits the process: it throws one of these, and the tools
// map them to exit codes (tl::cli::run in tools/common/cli.hpp: Error 1, UsageError 2).
//
//   throw tl::Error("weights file 'x.h5': layer block1_conv1: kernel (3,3,4,64), want (3,3,3,64)");
//   throw tl::UsageError("--layer: unknown layer 'block6_pool' (accepted: block1_conv1, ...)");
#pragma once

#include <stdexcept>
#include <string>

namespace tl {

// Any failure of the library: a bad file, a failed library call, a shape mismatch.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A bad option value or a bad combination of options: the user can fix the command line.
class UsageError : public Error {
 public:
  using Error::Error;
};

}  // namespace tl
