#include "cli.hpp"

#include <omp.h>
#include <sched.h>

#include <charconv>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <thread>

#include <tbb/global_control.h>

#include <fmt/format.h>

#include "tl/error.hpp"
#include "tl/machine.hpp"
#include "tl/version.hpp"

namespace tl::cli {

Parser::Parser(ToolInfo info, int argc, char** argv)
    : info_(std::move(info)), argc_(argc), argv_(argv), all_("") {
  po::options_description general("General");
  general.add_options()("help,h", "show this help and exit")(
      "version", "print the version, the oneDNN version and the CPU ISA it will use");
  all_.add(general);
}

void Parser::add(const po::options_description& group) {
  all_.add(group);
}

void Parser::positional(const char* name, int max_count) {
  pos_.add(name, max_count);
}

bool Parser::parse() {
  // Boost.Program_options 1.74 builds its messages by replacing %option%, %value%, ... with
  // what was typed, until none is left: an argument that holds such a token makes the message
  // of any error about it loop forever (found by fuzz_options). Refused here instead.
  for (int i = 1; i < argc_; ++i)
    for (const char* token :
         {"%canonical_option%", "%option%", "%value%", "%prefix%", "%original_token%"})
      if (std::string_view(argv_[i]).find(token) != std::string_view::npos)
        throw UsageError(fmt::format("argument {} ('{}') contains '{}', which cannot be used", i,
                                     argv_[i], token));
  try {
    po::store(po::command_line_parser(argc_, argv_).options(all_).positional(pos_).run(), vm_);
    if (vm_.count("help")) {
      std::cout << info_.summary << "\n\nUsage: " << info_.usage << "\n\n"
                << all_ << "\nExample:\n  " << info_.example << "\n";
      return false;
    }
    if (vm_.count("version")) {
      std::cout << info_.name << " (tlkit) " << kVersion << "\n" << machine().describe();
      return false;
    }
    po::notify(vm_);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  // Every floating-point option of every tool, in one place: inf and nan are no values
  // (issue 15: --lr inf trained a NaN model, --val-split nan was stored as given).
  for (const auto& [name, v] : vm_) {
    double x = 0;
    if (const auto* f = boost::any_cast<float>(&v.value()))
      x = *f;
    else if (const auto* d = boost::any_cast<double>(&v.value()))
      x = *d;
    if (!std::isfinite(x))
      throw UsageError(fmt::format("--{}: {} (must be a finite number)", name, x));
  }
  return true;
}

int run(const ToolInfo& info, int argc, char** argv, const std::function<int(Parser&)>& body) {
  try {
    Parser p(info, argc, argv);
    return body(p);
  } catch (const UsageError& e) {
    std::cerr << info.name << ": error: " << e.what() << "\n(see " << info.name << " --help)\n";
    return kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << info.name << ": error: " << e.what() << "\n";
    return kExitFailure;
  }
}

namespace {
int parse_int(std::string_view s, const char* option, const std::string& whole) {
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 1)
    throw UsageError(
        fmt::format("{}: bad size '{}' (expected N or HxW, e.g. 224 or 240x320)", option, whole));
  return v;
}
}  // namespace

std::pair<int, int> parse_size(const std::string& s, const char* option) {
  const auto x = s.find_first_of("xX");
  if (x == std::string::npos) {
    const int v = parse_int(s, option, s);
    return {v, v};
  }
  return {parse_int(std::string_view(s).substr(0, x), option, s),
          parse_int(std::string_view(s).substr(x + 1), option, s)};
}

void add_batch(po::options_description& g, int& batch, const char* help) {
  g.add_options()("batch",
                  po::value(&batch)->default_value(batch)->value_name("N")->notifier([](int b) {
                    if (b < 1) throw UsageError(fmt::format("--batch: {} (must be at least 1)", b));
                  }),
                  help);
}

void add_threads(po::options_description& g, int& threads) {
  g.add_options()("threads",
                  po::value(&threads)->default_value(threads)->value_name("N")->notifier([](int t) {
                    if (t < 0) throw UsageError(fmt::format("--threads: {} (must be >= 0)", t));
                  }),
                  "threads (0 = all cores)");
}

void add_weights(po::options_description& g, std::string& weights, const char* help) {
  g.add_options()("weights",
                  po::value(&weights)->value_name("FILE|random:SEED")->notifier([](auto& w) {
                    if (w.empty())
                      throw UsageError("--weights: empty (a Keras .h5 file or random:SEED)");
                  }),
                  help);
}

void add_seed(po::options_description& g, std::uint64_t& seed, const char* help) {
  // Read as text: Boost would take "-1" for 2^64 - 1. Below 2^63: files store seeds as int64.
  g.add_options()("seed",
                  po::value<std::string>()
                      ->default_value(std::to_string(seed))
                      ->value_name("N")
                      ->notifier([&seed](const std::string& s) {
                        constexpr std::uint64_t kMax = (std::uint64_t{1} << 63) - 1;
                        std::uint64_t v = 0;
                        const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
                        if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v > kMax)
                          throw UsageError(fmt::format(
                              "--seed: '{}' (must be an integer from 0 to {})", s, kMax));
                        seed = v;
                      }),
                  help);
}

po::options_description NetOptions::options() {
  po::options_description g("Network");
  add_weights(g, weights,
              "Keras VGG16 weights (.h5, the notop or full file); random:SEED for seeded random "
              "weights (not pretrained). Default: ~/.keras/models/vgg16_weights_tf_dim_ordering_"
              "tf_kernels_notop.h5");
  g.add_options()("layer", po::value(&layer)->default_value(layer)->value_name("NAME"),
                  "VGG16 layer whose output is used (block1_conv1 ... block5_pool)")(
      "size", po::value(&size)->default_value(size)->value_name("N|HxW"),
      "network input size (at least 32x32)")(
      "precision",
      po::value(&precision)->default_value(precision)->value_name("f32|bf16|int8|auto"),
      "compute precision; auto: the fastest this CPU runs natively (see --version)")(
      "algo", po::value(&algo)->value_name("direct|winograd|winograd-tlkit|auto"),
      "f32 convolution algorithm (default: winograd: oneDNN's where it has one, i.e. AVX-512, "
      "else tlkit's own, AVX2; winograd-tlkit: tlkit's everywhere)");
  add_threads(g, threads);
  return g;
}

NetConfig NetOptions::config(int batch) const {
  NetConfig c;
  c.batch = batch;
  std::tie(c.height, c.width) = parse_size(size);
  c.to = parse_option("--layer", layer, [](const std::string& s) {
    layer_index(s);
    return s;
  });
  if (c.to == kInputLayer) throw UsageError("--layer: 'input' is not a network layer");
  const Machine& m = machine();
  c.precision = precision == "auto" ? m.fastest_precision()
                                    : parse_option("--precision", precision,
                                                   [](auto& s) { return parse_precision(s); });
  c.algo = algo.empty() ? m.default_f32_algo()
                        : parse_option("--algo", algo, [](auto& s) { return parse_algo(s); });
  // Refused here, before any file is opened: what this CPU has no native kernel for.
  m.require_net(c.precision, c.algo);
  parse_option("--size", size, [&](const std::string&) {  // size errors up front
    return infer_shapes({batch, c.height, c.width, 3}, c.from, c.to);
  });
  return c;
}

std::string NetOptions::choice(const NetConfig& c) const {
  const Machine& m = machine();
  std::string s;
  if (precision == "auto")
    s += fmt::format("--precision auto: {} (the fastest native precision on oneDNN ISA {})\n",
                     to_string(c.precision), m.isa);
  if (c.precision == Precision::f32 && algo.empty()) {
    if (c.algo != ConvAlgo::winograd)
      s += fmt::format("f32 convolutions: direct (no f32 Winograd on ISA {})\n", m.isa);
    else if (m.f32_winograd.native)
      s += fmt::format("f32 convolutions: winograd (oneDNN {})\n", m.f32_winograd.impl);
    else
      s += fmt::format("f32 convolutions: winograd ({}; oneDNN has none on ISA {})\n",
                       m.f32_winograd_tlkit.impl, m.isa);
  }
  return s;
}

po::options_description ImageOptionsCli::options() {
  po::options_description g("Images");
  g.add_options()(
      "preprocess",
      po::value(&preprocess)->default_value(preprocess)->value_name("caffe|torch|tf|rescale|none"),
      "Keras preprocess_input mode (caffe is what VGG16's ImageNet weights expect)")(
      "resize", po::value(&resize)->default_value(resize)->value_name("nearest|bilinear|area|crop"),
      "how images are brought to --size (nearest = Keras load_img; crop = short side, then "
      "centre crop)");
  return g;
}

ImageOptions ImageOptionsCli::image(int height, int width) const {
  ImageOptions o;
  o.height = height;
  o.width = width;
  o.preprocess =
      parse_option("--preprocess", preprocess, [](auto& s) { return parse_preprocess(s); });
  o.resize = parse_option("--resize", resize, [](auto& s) { return parse_resize(s); });
  return o;
}

po::options_description AugmentOptionsCli::options() {
  po::options_description g("Augmentation (Keras ImageDataGenerator)");
  g.add_options()("augment", po::value(&copies)->default_value(copies)->value_name("K"),
                  "after each image's row, write K augmented copies of it (0 = none)");
  add_seed(g, seed, "seed of the augmented copies");
  g.add_options()("rotation", po::value(&rotation)->value_name("DEG"),
                  "rotation_range: angle ~ U(-DEG, DEG)")(
      "width-shift", po::value(&width_shift)->value_name("F"),
      "width_shift_range: shift ~ U(-F, F) x width (F < 1)")(
      "height-shift", po::value(&height_shift)->value_name("F"),
      "height_shift_range: shift ~ U(-F, F) x height (F < 1)")(
      "shear", po::value(&shear)->value_name("DEG"), "shear_range: angle ~ U(-DEG, DEG), degrees")(
      "zoom", po::value(&zoom)->value_name("F|LO,HI"),
      "zoom_range: per-axis scale ~ U(1-F, 1+F) (or U(LO, HI)); > 1 shrinks the content")(
      "horizontal-flip", po::bool_switch(&horizontal_flip),
      "horizontal_flip: mirror left-right half the time")(
      "vertical-flip", po::bool_switch(&vertical_flip),
      "vertical_flip: mirror top-bottom half the time")(
      "brightness", po::value(&brightness)->value_name("LO,HI"),
      "brightness_range: PIL brightness factor ~ U(LO, HI)")(
      "channel-shift", po::value(&channel_shift)->value_name("X"),
      "channel_shift_range: s ~ U(-X, X) added to every channel (0..255 scale)")(
      "fill", po::value(&fill)->default_value(fill)->value_name("nearest|constant|reflect|wrap"),
      "fill_mode: what comes in from outside the image")(
      "fill-value", po::value(&fill_value)->value_name("V"),
      "cval: the colour of --fill constant (0..255)")(
      "augment-at", po::value(&at)->default_value(at)->value_name("source|network"),
      "where the copies are made: source = on the decoded image at its own resolution, then "
      "resized to --size (the transforms see the whole image); network = on the image already "
      "resized to --size, as Keras's flow_from_directory does")(
      "preview", po::value(&preview)->value_name("FILE.png"),
      "write a grid of the first images and their first copies to FILE.png and exit (no "
      "extraction)");
  return g;
}

namespace {

// "LO,HI" -> {LO, HI}; with `single`, "F" -> single(F). UsageError naming the option.
std::pair<double, double> parse_range(const char* option, const std::string& s,
                                      std::pair<double, double> (*single)(double)) {
  auto number = [&](std::string_view t) {
    double v = 0;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || end != t.data() + t.size() || t.empty())
      throw UsageError(fmt::format("{}: bad value '{}' (expected {})", option, s,
                                   single ? "F or LO,HI" : "LO,HI"));
    return v;
  };
  const auto comma = s.find(',');
  if (comma == std::string::npos) {
    if (!single) throw UsageError(fmt::format("{}: bad value '{}' (expected LO,HI)", option, s));
    return single(number(s));
  }
  return {number(std::string_view(s).substr(0, comma)),
          number(std::string_view(s).substr(comma + 1))};
}

}  // namespace

AugmentOptions AugmentOptionsCli::config() const {
  AugmentOptions a;
  a.copies = copies;
  a.seed = seed;
  a.rotation = rotation;
  a.width_shift = width_shift;
  a.height_shift = height_shift;
  a.shear = shear;
  if (!zoom.empty()) {
    std::tie(a.zoom_lo, a.zoom_hi) = parse_range("--zoom", zoom, [](double f) {
      if (!(f >= 0 && f < 1))
        throw UsageError(fmt::format("--zoom: {} (F in [0, 1) gives [1-F, 1+F]; or LO,HI)", f));
      return std::pair{1 - f, 1 + f};
    });
  }
  if (!brightness.empty())
    std::tie(a.brightness_lo, a.brightness_hi) = parse_range("--brightness", brightness, nullptr);
  a.horizontal_flip = horizontal_flip;
  a.vertical_flip = vertical_flip;
  a.channel_shift = channel_shift;
  a.fill = parse_option("--fill", fill, [](auto& s) { return parse_fill_mode(s); });
  a.fill_value = fill_value;
  a.at = parse_option("--augment-at", at, [](auto& s) { return parse_augment_stage(s); });
  a.validate();
  return a;
}

namespace {
std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) {
  g_stop = true;
}
}  // namespace

const std::atomic<bool>& stop_on_signals() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  return g_stop;
}

int set_threads(int threads) {
  // The network runs on a oneTBB thread; with OpenMP thread binding its OpenMP team ends up on
  // too few cores (16-core server, tl-extract: f32 8.4x, bf16 3.7x, int8 10.9x slower;
  // bench/RESULTS.md). Say so rather than run slowly in silence.
  if (const char* bind = std::getenv("OMP_PROC_BIND");
      bind && *bind && std::string_view(bind) != "false" && std::string_view(bind) != "FALSE")
    std::cerr << fmt::format(
        "warning: OMP_PROC_BIND={} is set: with OpenMP thread binding tlkit's network runs on "
        "too few cores (measured 4-11x slower on 16 cores); unset OMP_PROC_BIND (a CPU mask, "
        "e.g. Slurm's --cpu-bind or taskset, is fine)\n",
        bind);
  // 0: the CPUs this process may use (affinity, Slurm, cgroup quota), not the whole node.
  const int n = threads > 0 ? threads : machine().cpus;
  omp_set_num_threads(n);
  // TBB's limit lives as long as this object: for the rest of the tool's run.
  static std::optional<tbb::global_control> tbb_limit;
  tbb_limit.emplace(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(n));
  return n;
}

}  // namespace tl::cli
