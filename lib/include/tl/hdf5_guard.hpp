// Containment of HDF5 1.10.8's crashes on damaged files (docs/HARDENING.md): some byte
// corruptions make the library itself crash (SIGSEGV in H5HG_read, reading variable-length
// strings from the global heap) where no API call can check first. A file is therefore read
// once in a forked child before this process touches it: a crash there becomes an Error
// naming the file, and this process never reads it.
//
//   tl::read_in_child_first(path, [&] { tl::FeatureReader r(path); r.paths(); });
//   tl::FeatureReader r(path);   // now safe to read here
#pragma once

#include <filesystem>
#include <functional>

namespace tl {

// Runs `read` in a forked child. Throws Error naming `file` when the child is killed by a
// signal (or does not finish within `timeout_s`); returns otherwise (errors the child met are
// left for this process's own read to report).
void read_in_child_first(const std::filesystem::path& file, const std::function<void()>& read,
                         int timeout_s = 300);

}  // namespace tl
