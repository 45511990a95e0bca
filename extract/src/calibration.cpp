#include "tl/calibration.hpp"

#include <ostream>

#include <fmt/format.h>
#include <tbb/parallel_for.h>

#include "tl/error.hpp"
#include "tl/int8_quantization.hpp"

namespace tl {

Int8Calibration calibrate_on_images(const Vgg16Weights& weights, const NetConfig& net,
                                    const ImageList& list, const ImageOptions& image, int count,
                                    std::ostream& log) {
  const size_t total = list.entries.size();
  const size_t n = std::min<size_t>(static_cast<size_t>(std::max(count, 1)), total);
  ImageOptions opt = image;
  opt.height = net.height;
  opt.width = net.width;
  const size_t row = static_cast<size_t>(net.height) * net.width * 3;
  std::vector<float> images(n * row);
  std::vector<char> ok(n, 0);
  // Entry i * total / n: spread over the whole list, the same on every run and shard.
  tbb::parallel_for(size_t{0}, n, [&](size_t i) {
    try {
      load_image(list.full_path(list.entries[i * total / n]), opt, &images[i * row]);
      ok[i] = 1;
    } catch (const std::exception&) {
    }
  });
  size_t good = 0;
  for (size_t i = 0; i < n; ++i)
    if (ok[i]) {
      if (good != i) std::copy_n(&images[i * row], row, &images[good * row]);
      ++good;
    }
  if (good == 0) throw Error("int8 calibration: none of the sampled images could be read");
  log << fmt::format("int8: calibrating activation ranges on {} images of {}\n", good, total);
  NetConfig f32 = net;
  f32.precision = Precision::f32;
  f32.calibration = nullptr;
  return calibrate_int8(weights, f32, images.data(), static_cast<int>(good));
}

}  // namespace tl
