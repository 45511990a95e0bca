// Listing an image folder the way Keras's flow_from_directory does, list files, and shards.
#include "tl/image_list.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include <fmt/format.h>

#include "tl/error.hpp"
#include "tl/image.hpp"
#include "tl/weights.hpp"

namespace fs = std::filesystem;

namespace tl {
namespace {

bool hidden(const fs::path& p) {
  const auto n = p.filename().string();
  return !n.empty() && n[0] == '.';
}

// An entry with an image extension that is not a folder becomes a row or a /failed line:
// regular files, and also dangling symlinks, pipes and devices, which the decoder refuses
// with the reason (never opened) instead of their vanishing from the listing.
bool image_entry(const fs::directory_entry& e) {
  std::error_code ec;
  return has_image_extension(e.path()) && !e.is_directory(ec);
}

// (device, inode) of a folder, to follow each real folder once.
std::pair<dev_t, ino_t> identity(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return {0, 0};
  return {st.st_dev, st.st_ino};
}

// Image files below `dir` (recursively), as (folder relative to root, file name, error)
// triples; a folder that cannot be listed is one triple (its path + "/", "", the reason).
using Found = std::tuple<std::string, std::string, std::string>;
void walk(const fs::path& root, const fs::path& dir, std::set<std::pair<dev_t, ino_t>>& seen,
          std::vector<Found>& out, std::vector<std::string>& notes) {
  if (!seen.insert(identity(dir)).second) {
    notes.push_back(fmt::format("'{}': folder already listed (symlink loop?), not followed",
                                dir.lexically_relative(root).generic_string()));
    return;
  }
  std::error_code ec;
  const std::string rel_dir = dir.lexically_relative(root).generic_string();
  fs::directory_iterator it(dir, ec), end;
  auto unlisted = [&] {  // its images would vanish: a /failed entry instead (issue 15, item 3)
    out.emplace_back(
        rel_dir + "/", "",
        fmt::format("cannot list folder ({}): its images are not in this file", ec.message()));
  };
  if (ec) return unlisted();
  std::vector<fs::path> subdirs;
  for (; it != end; it.increment(ec)) {
    if (ec) return unlisted();
    const fs::path& p = it->path();
    if (hidden(p)) continue;
    std::error_code e2;
    if (it->is_directory(e2))
      subdirs.push_back(p);
    else if (image_entry(*it))
      out.emplace_back(rel_dir, p.filename().string(), "");
  }
  for (const auto& d : subdirs) walk(root, d, seen, out, notes);
}

}  // namespace

fs::path ImageList::full_path(const ImageEntry& e) const {
  const fs::path p(e.path);
  return p.is_absolute() ? p : root / p;
}

std::string ImageList::fingerprint() const {
  // Hash a canonical text through the SHA-256 helper's file API would need a file; hash
  // in memory via a temporary string and std::hash is not stable: use FNV-1a 64 twice.
  std::uint64_t h1 = 1469598103934665603ull, h2 = 0x9e3779b97f4a7c15ull;
  auto eat = [&](std::string_view s) {
    for (unsigned char c : s) {
      h1 = (h1 ^ c) * 1099511628211ull;
      h2 = (h2 ^ c) * 0x100000001b3ull + 0x7f4a7c15;
    }
    h1 = (h1 ^ 0xff) * 1099511628211ull;
  };
  for (const auto& c : classes) eat(c);
  eat("\x01");
  for (const auto& e : entries) {
    eat(e.path);
    eat(std::to_string(e.label));
  }
  return fmt::format("{:016x}{:016x}-{}", h1, h2, entries.size());
}

ImageList list_images(const fs::path& root) {
  std::error_code ec;
  if (!fs::exists(root, ec))
    throw Error(fmt::format("image folder '{}' does not exist", root.string()));
  if (!fs::is_directory(root, ec))
    throw Error(fmt::format("'{}' is not a folder (--images takes a folder)", root.string()));
  ImageList list;
  list.root = root;
  // Class folders: the non-hidden sub-folders of the root, sorted by code point (UTF-8
  // bytes sort in code point order), as Keras sorts os.listdir's names.
  std::vector<std::string> top_files;
  fs::directory_iterator it(root, ec), end;
  if (ec)
    throw Error(fmt::format("image folder '{}': cannot list: {}", root.string(), ec.message()));
  for (; it != end; it.increment(ec)) {
    if (ec) throw Error(fmt::format("image folder '{}': {}", root.string(), ec.message()));
    if (hidden(it->path())) continue;
    std::error_code e2;
    if (it->is_directory(e2))
      list.classes.push_back(it->path().filename().string());
    else if (image_entry(*it))
      top_files.push_back(it->path().filename().string());
  }
  std::sort(list.classes.begin(), list.classes.end());
  std::sort(top_files.begin(), top_files.end());

  if (list.classes.empty()) {  // unlabeled: the images of the folder itself
    for (auto& f : top_files) list.entries.push_back({std::move(f), -1, {}});
  } else {
    if (!top_files.empty())
      list.notes.push_back(fmt::format(
          "{} image(s) at the top of '{}' ignored: with class folders, images must be inside one",
          top_files.size(), root.string()));
    std::set<std::pair<dev_t, ino_t>> seen{identity(root)};
    for (size_t c = 0; c < list.classes.size(); ++c) {
      std::vector<Found> files;
      walk(root, root / list.classes[c], seen, files, list.notes);
      // Keras: sorted(os.walk(...), key=folder), then sorted(files) in each folder.
      std::sort(files.begin(), files.end());
      for (auto& [dir, name, error] : files)
        list.entries.push_back(
            {name.empty() ? dir : dir + "/" + name, static_cast<int>(c), std::move(error)});
    }
  }
  if (list.entries.empty())
    throw Error(
        fmt::format("image folder '{}' holds no images (.jpg .jpeg .png .bmp .ppm .pgm "
                    ".tif .tiff .webp), neither in class sub-folders nor at its top",
                    root.string()));
  return list;
}

ImageList read_image_list(const fs::path& list_file, const fs::path& root) {
  std::ifstream in(list_file, std::ios::binary);
  if (!in) throw Error(fmt::format("list file '{}': cannot open", list_file.string()));
  ImageList list;
  list.root = root;
  std::vector<std::pair<std::string, std::string>> rows;  // path, class name
  std::string line;
  size_t line_no = 0;
  int with_names = -1;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const auto tab = line.find('\t');
    const int named = tab != std::string::npos;
    if (with_names < 0) with_names = named;
    if (named != with_names)
      throw Error(fmt::format("list file '{}' line {}: {} a class name, earlier lines {}",
                              list_file.string(), line_no, named ? "has" : "lacks",
                              with_names ? "have one" : "do not"));
    std::string path = named ? line.substr(0, tab) : line;
    std::string name = named ? line.substr(tab + 1) : "";
    if (path.empty() || (named && name.empty()))
      throw Error(fmt::format("list file '{}' line {}: empty path or class name",
                              list_file.string(), line_no));
    rows.emplace_back(std::move(path), std::move(name));
  }
  if (in.bad()) throw Error(fmt::format("list file '{}': read error", list_file.string()));
  if (rows.empty()) throw Error(fmt::format("list file '{}' lists no images", list_file.string()));

  std::map<std::string, int> index;
  if (with_names == 1) {
    for (auto& r : rows) index.emplace(r.second, 0);
  } else {
    std::error_code ec;
    for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec))
      if (!hidden(it->path()) && it->is_directory())
        index.emplace(it->path().filename().string(), 0);
  }
  for (auto& [name, i] : index) {
    i = static_cast<int>(list.classes.size());
    list.classes.push_back(name);
  }
  // Paths in one spelling (issue 15, item 5): "./a/x.png" is "a/x.png", and an absolute path
  // inside the root is relative to it, so that its class folder gives its label.
  std::error_code ec;
  const fs::path abs_root = fs::absolute(root, ec).lexically_normal();
  const fs::path real_root = fs::weakly_canonical(abs_root, ec);
  auto inside = [](const fs::path& p, const fs::path& base) -> std::optional<fs::path> {
    const fs::path rel = p.lexically_relative(base);
    if (rel.empty() || *rel.begin() == "..") return std::nullopt;
    return rel;
  };
  for (auto& [path, name] : rows) {
    fs::path p = fs::path(path).lexically_normal();
    if (p.is_absolute()) {
      auto rel = inside(p, abs_root);
      if (!rel && !real_root.empty()) rel = inside(fs::weakly_canonical(p, ec), real_root);
      if (rel) p = *rel;
    }
    path = p.generic_string();
  }
  for (auto& [path, name] : rows) {
    int label = -1;
    if (with_names == 1) {
      label = index.at(name);
    } else if (fs::path(path).is_relative()) {
      const auto first = path.substr(0, path.find('/'));
      if (first != path && index.count(first)) label = index.at(first);
    }
    list.entries.push_back({std::move(path), label, {}});
  }
  return list;
}

Shard parse_shard(std::string_view s) {
  const auto slash = s.find('/');
  auto num = [&](std::string_view t, int& v) {
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    return ec == std::errc() && p == t.data() + t.size() && !t.empty();
  };
  Shard sh;
  if (slash == std::string_view::npos || !num(s.substr(0, slash), sh.index) ||
      !num(s.substr(slash + 1), sh.count))
    throw UsageError(fmt::format("--shard: '{}' is not K/N (e.g. 0/4)", s));
  if (sh.count < 1) throw UsageError(fmt::format("--shard: N = {} (must be at least 1)", sh.count));
  if (sh.index < 0 || sh.index >= sh.count)
    throw UsageError(fmt::format("--shard: K = {} must be in 0..{} for N = {}", sh.index,
                                 sh.count - 1, sh.count));
  return sh;
}

Shard shard_from_env() {
  const char* id = std::getenv("SLURM_ARRAY_TASK_ID");
  const char* count = std::getenv("SLURM_ARRAY_TASK_COUNT");
  if (!id || !count) return {};
  const char* min = std::getenv("SLURM_ARRAY_TASK_MIN");
  const char* step = std::getenv("SLURM_ARRAY_TASK_STEP");
  // Only a whole array 0..N-1 says which slice this is: a resubmitted part of an array
  // (sbatch --array=3) or one that starts elsewhere would silently pick the wrong slice.
  if ((min && std::string_view(min) != "0") || (step && std::string_view(step) != "1"))
    throw UsageError(fmt::format(
        "this Slurm array is not 0..N-1 in steps of 1 (SLURM_ARRAY_TASK_MIN={}, STEP={}): pass "
        "--shard K/N explicitly, e.g. --shard $SLURM_ARRAY_TASK_ID/8",
        min ? min : "?", step ? step : "?"));
  return parse_shard(fmt::format("{}/{}", id, count));
}

std::pair<std::size_t, std::size_t> shard_range(std::size_t total, Shard s) {
  const auto at = [&](int k) {
    return static_cast<std::size_t>(static_cast<unsigned __int128>(total) * k / s.count);
  };
  return {at(s.index), at(s.index + 1)};
}

}  // namespace tl
