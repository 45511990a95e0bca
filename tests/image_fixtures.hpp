// Test helpers: image folders generated on the fly (class folders, nested, unlabeled, mixed
// types, broken files) for the listing and extraction tests.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "test_util.hpp"

namespace tl::testing {

// A small BGR image whose content depends on `seed` (smooth gradients plus a square).
inline cv::Mat make_image(int h, int w, int seed) {
  cv::Mat m(h, w, CV_8UC3);
  for (int i = 0; i < h; ++i)
    for (int j = 0; j < w; ++j)
      m.at<cv::Vec3b>(i, j) = cv::Vec3b(static_cast<uchar>((i * 7 + seed * 31) % 256),
                                        static_cast<uchar>((j * 5 + seed * 17) % 256),
                                        static_cast<uchar>((i + j + seed * 13) % 256));
  cv::rectangle(m, {w / 4, h / 4}, {w / 2, h / 2}, cv::Scalar(seed % 256, 255 - seed % 256, 90),
                -1);
  return m;
}

inline void write_image(const std::filesystem::path& p, const cv::Mat& m) {
  std::filesystem::create_directories(p.parent_path());
  if (!cv::imwrite(p.string(), m)) throw std::runtime_error("imwrite failed: " + p.string());
}

// root/<class>/img<i>.png for each class; `per_class` images of h x w.
inline void make_class_folders(const std::filesystem::path& root,
                               const std::vector<std::string>& classes, int per_class, int h = 40,
                               int w = 48) {
  int seed = 1;
  for (const auto& c : classes)
    for (int i = 0; i < per_class; ++i)
      write_image(root / c / ("img" + std::to_string(i) + ".png"), make_image(h, w, seed++));
}

}  // namespace tl::testing
