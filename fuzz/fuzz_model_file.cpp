// libFuzzer target: the model-file reader (load_model) on arbitrary bytes, written to a tmpfs
// file, then one prediction through the loaded head.
#include <vector>

#include "fuzz_util.hpp"
#include "tl/error.hpp"
#include "tl/model_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (tl::fuzz::hdf5_global_heap_loops(data, size)) return 0;  // HDF5's own hang, see there
  static const std::filesystem::path path = tl::fuzz::scratch_path("-model.h5");
  tl::fuzz::write_bytes(path, data, size);
  try {
    tl::Model m = tl::load_model(path);
    (void)m.info.features.difference(m.info.features);
  } catch (const tl::Error&) {
  }
  return 0;
}
