// libFuzzer target: the feature-file reader (FeatureReader: read_feature_meta, labels, paths,
// failed, the first rows) on arbitrary bytes, written to a tmpfs file.
#include <algorithm>

#include "fuzz_util.hpp"
#include "tl/error.hpp"
#include "tl/feature_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (tl::fuzz::hdf5_global_heap_loops(data, size)) return 0;  // HDF5's own hang, see there
  static const std::filesystem::path path = tl::fuzz::scratch_path("-features.h5");
  tl::fuzz::write_bytes(path, data, size);
  try {
    const tl::FeatureReader r(path);
    // Callers read in batches; a few rows is what a batch of any size exercises.
    const std::size_t rows = std::min<std::size_t>(r.rows(), 4);
    (void)r.read_rows(0, rows);
    (void)r.labels();
    (void)r.paths();
    (void)r.failed();
  } catch (const tl::Error&) {
  }
  return 0;
}
