// What every tl-* tool shares: option groups defined once, the --help/--version layout, and
// the mapping of exceptions to exit codes (0 ok, 1 failure, 2 usage error).
//
//   int main(int argc, char** argv) {
//     return tl::cli::run("tl-forward", argc, argv, [&](tl::cli::Parser& p) {
//       tl::cli::NetOptions net;
//       p.add(net.options());
//       if (!p.parse()) return 0;   // --help or --version printed
//       ...
//       return 0;
//     });
//   }
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "tl/error.hpp"
#include "tl/image.hpp"
#include "tl/image_augment.hpp"
#include "tl/vgg16.hpp"

namespace tl::cli {

namespace po = boost::program_options;

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

struct ToolInfo {
  std::string name;     // "tl-extract"
  std::string usage;    // "tl-extract --images DIR --output FILE.h5 [options]"
  std::string summary;  // one line on what it does
  std::string example;  // a command that works
};

// Parses argv against the option groups added to it; prints grouped --help and --version.
class Parser {
 public:
  Parser(ToolInfo info, int argc, char** argv);
  void add(const po::options_description& group);
  void positional(const char* name, int max_count);
  // false when --help or --version was printed (the tool should exit 0). Throws UsageError
  // naming the option for unknown options and bad values.
  bool parse();
  const po::variables_map& vm() const { return vm_; }
  bool given(const char* name) const { return vm_.count(name) && !vm_[name].defaulted(); }

 private:
  ToolInfo info_;
  int argc_;
  char** argv_;
  po::options_description all_;
  po::positional_options_description pos_;
  po::variables_map vm_;
};

// Runs a tool body, mapping tl::UsageError to exit 2 and other exceptions to exit 1, each
// printed as "<tool>: error: <message>".
int run(const ToolInfo& info, int argc, char** argv, const std::function<int(Parser&)>& body);

// "224" -> 224x224, "240x320" -> height 240, width 320. UsageError names `option`.
std::pair<int, int> parse_size(const std::string& s, const char* option = "--size");

// Wraps a value parser so that its UsageError names the option: `--precision: unknown ...`.
template <class F>
auto parse_option(const char* option, const std::string& value, F&& parse) {
  try {
    return parse(value);
  } catch (const UsageError& e) {
    throw UsageError(std::string(option) + ": " + e.what());
  }
}

// The options several tools share, each defined here once, with its one check and message
// (run when the command line is parsed, before anything is read or written). `help` says what
// the option does in this tool; the variable's value is its default.
//   --batch N                  N >= 1         "--batch: 0 (must be at least 1)"
//   --threads N                N >= 0         "--threads: -1 (must be >= 0)"; 0 = all cores
//   --weights FILE|random:SEED not empty      "--weights: empty (a Keras .h5 file or random:SEED)"
//   --seed N                   0 .. 2^63 - 1  "--seed: '-1' (must be an integer from 0 to ...)"
void add_batch(po::options_description& g, int& batch, const char* help);
void add_threads(po::options_description& g, int& threads);
void add_weights(po::options_description& g, std::string& weights, const char* help);
void add_seed(po::options_description& g, std::uint64_t& seed, const char* help);

// Network options shared by tl-forward, tl-extract and tl-predict: weights, layer, size,
// precision, algorithm, threads.
struct NetOptions {
  std::string weights;  // "" = Keras cache
  std::string layer = "block5_pool";
  std::string size = "224";
  std::string precision = "f32";  // or auto: Machine::fastest_precision()
  std::string algo;               // "": Machine::default_f32_algo() (Winograd: about 2x direct)
  int threads = 0;                // 0 = all cores
  po::options_description options();
  // Validated config for `batch`, auto choices resolved (throws UsageError naming the option,
  // also for a precision or algorithm this CPU has no native kernel for).
  NetConfig config(int batch) const;
  // The choices made for the user in `c` (auto precision, default algorithm), one per line;
  // "" when none. The tools print it once.
  std::string choice(const NetConfig& c) const;
};

// Image options shared by tl-extract and tl-predict.
struct ImageOptionsCli {
  std::string preprocess = "caffe";
  std::string resize = "nearest";
  po::options_description options();
  ImageOptions image(int height, int width) const;
};

// tl-extract's augmentation options (Keras ImageDataGenerator's), and --preview.
struct AugmentOptionsCli {
  int copies = 0;
  std::uint64_t seed = 0;
  double rotation = 0, width_shift = 0, height_shift = 0, shear = 0, channel_shift = 0;
  std::string zoom, brightness;  // "F" or "LO,HI"; "LO,HI"
  bool horizontal_flip = false, vertical_flip = false;
  std::string fill = "nearest";
  double fill_value = 0;
  std::string at = "source";  // --augment-at source|network
  std::string preview;        // --preview FILE.png
  po::options_description options();
  // Parsed and validated (UsageError naming the option).
  AugmentOptions config() const;
};

// Exit status of a tool stopped by SIGINT or SIGTERM.
inline constexpr int kExitInterrupted = 130;

// Installs SIGINT and SIGTERM handlers that set the returned flag (the library checks it
// between batches and stops cleanly).
const std::atomic<bool>& stop_on_signals();

// Sets oneDNN's (OpenMP) and oneTBB's thread counts for this process; 0 = the CPUs this
// process may use (tl::machine().cpus).
// Returns the count in force.
int set_threads(int threads);

}  // namespace tl::cli
