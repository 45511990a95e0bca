// Which images an extraction reads, in which order, with which labels.
//
//   tl::ImageList list = tl::list_images("data/train");          // Keras flow_from_directory
//   auto [begin, end] = tl::shard_range(list.entries.size(), tl::parse_shard("2/4"));
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tl {

struct ImageEntry {
  std::string path;  // relative to the root with '/' separators (absolute if outside it)
  int label = -1;    // index into ImageList::classes; -1 when unlabeled
  // Why this entry cannot be used, found while listing (a folder that cannot be listed:
  // path "class/sub/"); it then goes to /failed like an image that cannot be decoded.
  std::string error;
};

struct ImageList {
  std::filesystem::path root;
  std::vector<std::string> classes;  // class names in index order
  std::vector<ImageEntry> entries;   // rows in their fixed order
  std::vector<std::string> notes;    // what was skipped while listing (loops, top-level files)

  std::filesystem::path full_path(const ImageEntry& e) const;
  // SHA-256 over classes, paths and labels: two runs over the same input agree.
  std::string fingerprint() const;
};

// A folder in Keras's flow_from_directory layout: one sub-folder per class (names sorted by
// code point give the label indices), images anywhere below a class folder, ordered as Keras
// orders them (class, then folder, then file name). A folder with images and no
// sub-folders gives unlabeled rows. Image extensions in any case (see has_image_extension);
// hidden files and folders and other files are ignored; symlinked folders are followed once
// (a loop is noted, not followed). Throws Error for a missing, unreadable or empty folder.
ImageList list_images(const std::filesystem::path& root);

// A list file: one path per line (absolute, or relative to `root`), optionally
// "path<TAB>class-name". Blank lines and a trailing CR are ignored. Rows keep the file's
// order. With class names, classes are the sorted distinct names; without, labels come from
// the class folders of `root` (the first path component), -1 for paths outside them.
// Throws Error naming the file and line for an unreadable file, an empty list, or a line
// that mixes with/without names inconsistently.
ImageList read_image_list(const std::filesystem::path& list_file,
                          const std::filesystem::path& root);

// --shard K/N: the K-th of N disjoint balanced slices (0 <= K < N).
struct Shard {
  int index = 0;
  int count = 1;
  bool operator==(const Shard&) const = default;
};

// "K/N"; UsageError naming --shard for malformed input, N < 1 or K >= N.
Shard parse_shard(std::string_view s);
// From SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when both are set and the array is
// 0..N-1 in steps of 1 (UsageError otherwise: pass --shard); {0, 1} when unset.
Shard shard_from_env();
// [begin, end) of slice k of n over `total` rows: floor(k * total / n) ..
std::pair<std::size_t, std::size_t> shard_range(std::size_t total, Shard s);

}  // namespace tl
