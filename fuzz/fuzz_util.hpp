// Shared by the fuzz targets: the bytes as a file on tmpfs for readers that take a path, and
// the rule every target follows — tl::Error (and UsageError) is the expected way to refuse
// input; anything else escaping, a crash, a hang or a sanitizer report is a finding.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>

namespace tl::fuzz {

// A scratch file for this process: in $TL_FUZZ_SCRATCH (scripts/fuzz-smoke.sh makes one on
// tmpfs), else /dev/shm when present, else the temporary folder.
inline std::filesystem::path scratch_path(std::string_view suffix) {
  std::filesystem::path dir = "/dev/shm";
  std::error_code ec;
  if (const char* s = std::getenv("TL_FUZZ_SCRATCH"); s && *s)
    dir = s;
  else if (!std::filesystem::is_directory(dir, ec))
    dir = std::filesystem::temp_directory_path();
  return dir / ("tl-fuzz-" + std::to_string(::getpid()) + std::string(suffix));
}

// Writes the bytes to `path` (truncating) and returns it.
inline const std::filesystem::path& write_bytes(const std::filesystem::path& path,
                                                const std::uint8_t* data, std::size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

// True when the bytes hold an HDF5 global heap collection ("GCOL") whose object walk would not
// advance: HDF5 1.10.8 (Debian 12) loops forever reading such a heap (H5HG__cache_heap_deserialize
// steps by the object's size, and a free-space object of size 0 steps by 0). The HDF5 targets
// skip these inputs so that they keep finding our bugs instead of this known one of HDF5's,
// reported in docs/HARDENING.md. Assumes 8-byte lengths (what HDF5 and h5py write).
inline bool hdf5_global_heap_loops(const std::uint8_t* data, std::size_t size) {
  auto u64 = [&](std::size_t at) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | data[at + static_cast<std::size_t>(i)];
    return v;
  };
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  for (std::size_t o = bytes.find("GCOL"); o != std::string_view::npos;
       o = bytes.find("GCOL", o + 1)) {
    if (o + 16 > size) break;
    const std::uint64_t heap = u64(o + 8);  // the collection's size, header included
    std::uint64_t at = 16;                  // the first object, after the header
    for (int steps = 0; at < heap && steps < 65536; ++steps) {
      if (heap - at < 16) break;  // too small for an object header: free space, the end
      if (o + at + 16 > size) break;
      const unsigned idx = data[o + at] | (data[o + at + 1] << 8);
      const std::uint64_t obj = u64(o + at + 8);
      const std::uint64_t need = idx > 0 ? 16 + ((obj + 7) & ~std::uint64_t{7}) : obj;
      if (need == 0 || need >= (std::uint64_t{1} << 62)) return true;
      at += need;
    }
  }
  return false;
}

}  // namespace tl::fuzz
