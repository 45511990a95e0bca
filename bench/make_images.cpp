// bench_make_images DIR N [WxH]: N photo-like JPEGs (default 500x375, quality 90) in DIR,
// the input of the end-to-end benchmark (bench/extract_vs_forward.sh).
#include <cmath>
#include <filesystem>
#include <iostream>
#include <string>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: bench_make_images DIR N [WxH]\n";
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  const int n = std::stoi(argv[2]);
  int w = 500, h = 375;
  if (argc > 3 && std::sscanf(argv[3], "%dx%d", &w, &h) != 2) return 2;
  std::filesystem::create_directories(dir);
  cv::RNG rng(1);
  for (int i = 0; i < n; ++i) {
    // Smooth gradients, random shapes and noise: compresses like a photo, not like a flat fill.
    cv::Mat m(h, w, CV_8UC3);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        m.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uchar>(128 + 100 * std::sin(0.02 * x + i)),
                                          static_cast<uchar>(128 + 100 * std::cos(0.03 * y + i)),
                                          static_cast<uchar>((x + y + 7 * i) % 256));
    for (int k = 0; k < 12; ++k)
      cv::circle(m, {rng.uniform(0, w), rng.uniform(0, h)}, rng.uniform(5, 80),
                 cv::Scalar(rng.uniform(0, 255), rng.uniform(0, 255), rng.uniform(0, 255)), -1);
    cv::Mat noise(h, w, CV_8UC3);
    rng.fill(noise, cv::RNG::NORMAL, 0, 12);
    m += noise;
    char name[32];
    std::snprintf(name, sizeof name, "img%06d.jpg", i);
    cv::imwrite((dir / name).string(), m, {cv::IMWRITE_JPEG_QUALITY, 90});
  }
  return 0;
}
