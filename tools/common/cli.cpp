#include "cli.hpp"

#include <omp.h>
#include <sched.h>

#include <charconv>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <thread>

#include <tbb/global_control.h>

#include <fmt/format.h>

#include "tl/error.hpp"

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
      std::cout << info_.name << " (tlkit) " << TL_VERSION << "\n" << runtime_info() << "\n";
      return false;
    }
    po::notify(vm_);
  } catch (const po::error& e) {
    throw UsageError(e.what());
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

po::options_description NetOptions::options() {
  po::options_description g("Network");
  g.add_options()(
      "weights", po::value(&weights)->value_name("FILE|random:SEED"),
      "Keras VGG16 weights (.h5, the notop or full file); random:SEED for seeded random "
      "weights (not pretrained). Default: ~/.keras/models/vgg16_weights_tf_dim_ordering_tf_"
      "kernels_notop.h5")("layer", po::value(&layer)->default_value(layer)->value_name("NAME"),
                          "VGG16 layer whose output is used (block1_conv1 ... block5_pool)")(
      "size", po::value(&size)->default_value(size)->value_name("N|HxW"),
      "network input size (at least 32x32)")(
      "precision", po::value(&precision)->default_value(precision)->value_name("f32|bf16|int8"),
      "compute precision")(
      "algo", po::value(&algo)->default_value(algo)->value_name("direct|winograd|auto"),
      "f32 convolution algorithm")("threads",
                                   po::value(&threads)->default_value(threads)->value_name("N"),
                                   "threads (0 = all cores)");
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
  c.precision = parse_option("--precision", precision, [](auto& s) { return parse_precision(s); });
  c.algo = parse_option("--algo", algo, [](auto& s) { return parse_algo(s); });
  parse_option("--size", size, [&](const std::string&) {  // size errors up front
    return infer_shapes({batch, c.height, c.width, 3}, c.from, c.to);
  });
  if (threads < 0) throw UsageError(fmt::format("--threads: {} (must be >= 0)", threads));
  return c;
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

int default_threads() {
  // The CPUs this process may run on (a Slurm or taskset allocation), not the whole node.
  cpu_set_t set;
  int n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
  if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
  if (const char* slurm = std::getenv("SLURM_CPUS_PER_TASK")) {
    const int k = std::atoi(slurm);
    if (k > 0 && k < n) n = k;
  }
  return std::max(n, 1);
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
  const int n = threads > 0 ? threads : default_threads();
  omp_set_num_threads(n);
  // TBB's limit lives as long as this object: for the rest of the tool's run.
  static std::optional<tbb::global_control> tbb_limit;
  tbb_limit.emplace(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(n));
  return n;
}

}  // namespace tl::cli
