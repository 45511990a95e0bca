// libFuzzer target: the --list parser (read_image_list) on arbitrary bytes, written to a tmpfs
// file, against a root folder with two class folders, then the fingerprint and the shards.
#include "fuzz_util.hpp"
#include "tl/error.hpp"
#include "tl/image_list.hpp"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const fs::path list = tl::fuzz::scratch_path("-list.txt");
  static const fs::path root = [] {
    const fs::path r = tl::fuzz::scratch_path("-root");
    fs::create_directories(r / "cats");
    fs::create_directories(r / "dogs");
    return r;
  }();
  tl::fuzz::write_bytes(list, data, size);
  try {
    const tl::ImageList l = tl::read_image_list(list, root);
    (void)l.fingerprint();
    for (const auto& e : l.entries) {
      if (e.label >= static_cast<int>(l.classes.size())) __builtin_trap();
      (void)l.full_path(e);
    }
    const auto [begin, end] = tl::shard_range(l.entries.size(), {1, 3});
    if (begin > end || end > l.entries.size()) __builtin_trap();
  } catch (const tl::Error&) {
  }
  return 0;
}
