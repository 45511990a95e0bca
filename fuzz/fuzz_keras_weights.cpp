// libFuzzer target: the Keras weight loader (load_keras_weights) on arbitrary bytes. It takes
// a path, so the bytes go to a tmpfs file. The seed is a Keras-layout file holding only
// block1_conv1 (7 KiB), which is what the target asks for: the fuzzer then mutates a file
// that gets all the way to the dataset reads.
#include "fuzz_util.hpp"
#include "tl/error.hpp"
#include "tl/weights.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (tl::fuzz::hdf5_global_heap_loops(data, size)) return 0;  // HDF5's own hang, see there
  static const std::filesystem::path path = tl::fuzz::scratch_path("-weights.h5");
  tl::fuzz::write_bytes(path, data, size);
  try {
    const tl::Vgg16Weights w = tl::load_keras_weights(path, {"block1_conv1"});
    if (w.convs.size() != 1 || w.convs[0].kernel.size() != 3 * 3 * 3 * 64) __builtin_trap();
  } catch (const tl::Error&) {
  }
  return 0;
}
