// tl-demo-data: writes a seeded, balanced subset of Fashion-MNIST (Debian's
// dataset-fashion-mnist package) as class folders of PNG files, the layout users have:
//   OUT/train/<class>/<index>.png and OUT/test/<class>/<index>.png
// Usage: tl-demo-data [--source DIR] [--output DIR] [--train-per-class N]
//                     [--test-per-class N] [--seed N]
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>

namespace fs = std::filesystem;

namespace {

// Fashion-MNIST's labels 0..9; folder names sort differently, which is fine: tl-extract
// indexes classes by sorted folder name, as Keras does.
const char* const kClasses[10] = {"tshirt_top", "trouser", "pullover", "dress", "coat",
                                  "sandal",     "shirt",   "sneaker",  "bag",   "ankle_boot"};

std::vector<unsigned char> read_gz(const fs::path& p) {
  gzFile f = gzopen(p.c_str(), "rb");
  if (!f)
    throw std::runtime_error("cannot open " + p.string() +
                             " (install Debian's dataset-fashion-mnist package)");
  std::vector<unsigned char> out;
  unsigned char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.insert(out.end(), buf, buf + n);
  const bool bad = n < 0;
  gzclose(f);
  if (bad) throw std::runtime_error("corrupt gzip file " + p.string());
  return out;
}

std::uint32_t be32(const std::vector<unsigned char>& b, size_t at) {
  return (std::uint32_t{b.at(at)} << 24) | (b.at(at + 1) << 16) | (b.at(at + 2) << 8) |
         b.at(at + 3);
}

// IDX files: images (magic 2051, n, 28, 28, bytes) and labels (magic 2049, n, bytes).
struct Split {
  std::vector<unsigned char> images, labels;
  std::uint32_t n = 0, rows = 0, cols = 0;
};

Split load(const fs::path& dir, const std::string& prefix) {
  Split s;
  s.images = read_gz(dir / (prefix + "-images-idx3-ubyte.gz"));
  s.labels = read_gz(dir / (prefix + "-labels-idx1-ubyte.gz"));
  if (be32(s.images, 0) != 2051 || be32(s.labels, 0) != 2049)
    throw std::runtime_error("not IDX files in " + dir.string());
  s.n = be32(s.images, 4);
  s.rows = be32(s.images, 8);
  s.cols = be32(s.images, 12);
  if (be32(s.labels, 4) != s.n || s.images.size() != 16 + size_t{s.n} * s.rows * s.cols)
    throw std::runtime_error("inconsistent IDX files in " + dir.string());
  return s;
}

// `per_class` images of each class, chosen by a seeded shuffle (the same on every machine:
// mt19937_64 is fully specified and the shuffle below is ours, not std::shuffle).
void write_split(const Split& s, const fs::path& out, int per_class, std::uint64_t seed) {
  std::vector<std::uint32_t> order(s.n);
  for (std::uint32_t i = 0; i < s.n; ++i) order[i] = i;
  std::mt19937_64 rng(seed);
  for (std::uint32_t i = s.n - 1; i > 0; --i) std::swap(order[i], order[rng() % (i + 1)]);
  int taken[10] = {};
  for (std::uint32_t i : order) {
    const int label = s.labels[8 + i];
    if (label < 0 || label > 9 || taken[label] >= per_class) continue;
    ++taken[label];
    const fs::path dir = out / kClasses[label];
    fs::create_directories(dir);
    const cv::Mat img(static_cast<int>(s.rows), static_cast<int>(s.cols), CV_8UC1,
                      const_cast<unsigned char*>(&s.images[16 + size_t{i} * s.rows * s.cols]));
    char name[32];
    std::snprintf(name, sizeof name, "%05u.png", i);
    if (!cv::imwrite((dir / name).string(), img))
      throw std::runtime_error("cannot write " + (dir / name).string());
  }
  for (int c = 0; c < 10; ++c)
    if (taken[c] < per_class)
      throw std::runtime_error("not enough images of " + std::string(kClasses[c]));
}

}  // namespace

int main(int argc, char** argv) {
  fs::path source = "/usr/share/datasets/fashion-mnist", output = "demo-data";
  int train = 400, test = 100;
  std::uint64_t seed = 1;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        std::cout << "usage: tl-demo-data [--source DIR] [--output DIR] [--train-per-class N] "
                     "[--test-per-class N] [--seed N]\n"
                     "Writes a seeded balanced Fashion-MNIST subset (Debian's dataset-fashion-"
                     "mnist) as OUT/train/<class>/*.png and OUT/test/<class>/*.png.\n"
                     "Defaults: --source /usr/share/datasets/fashion-mnist --output demo-data "
                     "--train-per-class 400 --test-per-class 100 --seed 1\n";
        return 0;
      }
      if (i + 1 >= argc) throw std::runtime_error("missing value after " + a);
      const std::string v = argv[++i];
      if (a == "--source")
        source = v;
      else if (a == "--output")
        output = v;
      else if (a == "--train-per-class")
        train = std::stoi(v);
      else if (a == "--test-per-class")
        test = std::stoi(v);
      else if (a == "--seed")
        seed = std::stoull(v);
      else
        throw std::runtime_error("unknown option " + a);
    }
    write_split(load(source, "train"), output / "train", train, seed);
    write_split(load(source, "t10k"), output / "test", test, seed + 1);
    std::cout << "wrote " << 10 * train << " training and " << 10 * test
              << " held-out Fashion-MNIST images (28x28 PNG, 10 class folders) under "
              << output.string() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "tl-demo-data: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
