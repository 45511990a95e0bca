// libFuzzer target: the option parsers. The bytes, split at newlines, are a command line
// parsed against the shared option groups (Boost.Program_options, then NetOptions::config and
// ImageOptionsCli::image as the tools call them); the whole input also goes to each value
// parser on its own (parse_size, parse_shard, parse_precision, parse_algo, parse_preprocess,
// parse_resize, parse_head_kind, parse_pool, layer_index).
#include <string>
#include <vector>

#include "cli.hpp"
#include "fuzz_util.hpp"
#include "tl/dense_head.hpp"
#include "tl/error.hpp"
#include "tl/global_pool.hpp"
#include "tl/image_list.hpp"
#include "tl/vgg16_spec.hpp"

namespace {

template <class F>
void expect_usage_errors(F&& f) {
  try {
    f();
  } catch (const tl::Error&) {
  }
}

void parse_command_line(const std::string& text) {
  std::vector<std::string> args{"tl-fuzz"};
  for (std::size_t at = 0; at <= text.size();) {
    const std::size_t nl = std::min(text.find('\n', at), text.size());
    args.push_back(text.substr(at, nl - at));
    at = nl + 1;
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  expect_usage_errors([&] {
    tl::cli::Parser p({.name = "tl-fuzz", .usage = "", .summary = "", .example = ""},
                      static_cast<int>(args.size()), argv.data());
    tl::cli::NetOptions net;
    tl::cli::ImageOptionsCli img;
    std::string shard = "0/1";
    int batch = 4;
    tl::cli::po::options_description own("Own");
    own.add_options()("shard", tl::cli::po::value(&shard))("batch", tl::cli::po::value(&batch));
    p.add(net.options());
    p.add(img.options());
    p.add(own);
    p.positional("shard", 1);
    if (!p.parse()) return;
    const tl::NetConfig c = net.config(batch);
    (void)img.image(c.height, c.width);
    (void)tl::parse_shard(shard);
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string s(reinterpret_cast<const char*>(data), size);
  expect_usage_errors([&] { (void)tl::cli::parse_size(s); });
  expect_usage_errors([&] {
    const tl::Shard sh = tl::parse_shard(s);
    const auto [b, e] = tl::shard_range(1000, sh);
    if (b > e || e > 1000) __builtin_trap();
  });
  expect_usage_errors([&] { (void)tl::parse_precision(s); });
  expect_usage_errors([&] { (void)tl::parse_algo(s); });
  expect_usage_errors([&] { (void)tl::parse_preprocess(s); });
  expect_usage_errors([&] { (void)tl::parse_resize(s); });
  expect_usage_errors([&] { (void)tl::parse_head_kind(s); });
  expect_usage_errors([&] { (void)tl::parse_pool(s); });
  expect_usage_errors([&] { (void)tl::layer_index(s); });
  parse_command_line(s);
  return 0;
}
