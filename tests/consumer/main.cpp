// Features of one image with the installed library, checked against what the installed
// tl-extract stored for it:
//   tlkit-consumer write-image IMAGE.png          a 48x40 colour gradient (a test picture)
//   tlkit-consumer compare IMAGE.png FEATURES.h5  the file's settings, weights and row 0
#include <algorithm>
#include <cmath>
#include <iostream>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>

#include "tl/feature_file.hpp"
#include "tl/image.hpp"
#include "tl/machine.hpp"
#include "tl/vgg16.hpp"
#include "tl/weights.hpp"

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "write-image" && argc == 3) {
    cv::Mat img(40, 48, CV_8UC3);
    for (int y = 0; y < img.rows; ++y)
      for (int x = 0; x < img.cols; ++x) img.at<cv::Vec3b>(y, x) = cv::Vec3b(5 * x, 6 * y, 200);
    return cv::imwrite(argv[2], img) ? 0 : 1;
  }
  if (mode != "compare" || argc != 4) {
    std::cerr << "usage: tlkit-consumer write-image IMAGE.png | compare IMAGE.png FEATURES.h5\n";
    return 2;
  }
  try {
    const tl::FeatureReader file(argv[3]);
    const tl::FeatureMeta& m = file.meta();
    tl::NetConfig cfg{.batch = 1,
                      .height = m.input_height,
                      .width = m.input_width,
                      .to = m.layer,
                      .precision = m.precision,
                      .algo = tl::machine().default_f32_algo()};
    tl::Vgg16 net(tl::load_weights(m.weights), cfg);
    tl::ImageOptions opt{
        .height = cfg.height, .width = cfg.width, .resize = m.resize, .preprocess = m.preprocess};
    std::vector<float> image(net.input_shape().elems()), mine(net.output_shape().elems());
    tl::load_image(argv[2], opt, image.data());
    net.forward(image.data(), 1, mine.data());  // [1, 224, 224, 3] -> [1, h, w, c]
    const std::vector<float> stored = file.read_rows(0, 1);
    if (stored.size() != mine.size()) throw tl::Error("row sizes differ");
    double scale = 0, diff = 0;
    for (size_t i = 0; i < mine.size(); ++i) {
      scale = std::max(scale, std::abs(static_cast<double>(stored[i])));
      diff = std::max(diff, std::abs(static_cast<double>(mine[i]) - stored[i]));
    }
    std::cout << "features of " << argv[2] << ": " << mine.size() << " values, max |diff| " << diff
              << " against tl-extract (scale " << scale << ")\n";
    return diff <= 2e-5 * scale ? 0 : 1;  // two f32 results, each within 1e-5 of float64
  } catch (const std::exception& e) {
    std::cerr << "tlkit-consumer: " << e.what() << "\n";
    return 1;
  }
}
