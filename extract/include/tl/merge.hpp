// The shard folder of a Slurm array extraction, and tl-merge: one file from its shards.
//
//   tl::ShardSet set = tl::check_shard_folder("feats.shards");   // throws naming bad shards
//   tl::merge_shards({.shards = "feats.shards", .output = "feats.h5"}, std::cerr);
//
// Task K of N writes OUT.shards/shard-K-of-N.h5 (as shard-K-of-N.h5.partial until complete).
// The merged file reads as a single-machine run's: same rows in the same order, same labels,
// paths, classes and failures, attributes shard 0/1 and complete = 1. By default /features is
// an HDF5 virtual dataset over the shards' /features (no copy; the shard files must stay next
// to it); /labels, /paths, /failed and /classes are copied (small). `copy` writes everything.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tl/feature_file.hpp"
#include "tl/image_list.hpp"

namespace tl {

// OUT.h5 -> OUT.shards (any other name: NAME -> NAME.shards).
std::filesystem::path shard_folder_of(const std::filesystem::path& output);
// shard K of N -> "shard-K-of-N.h5".
std::string shard_file_name(Shard s);
// "shard-3-of-8.h5" -> {3, 8}; nullopt for any other name (and for K >= N or N < 1).
std::optional<Shard> parse_shard_file_name(std::string_view name);
// The name an unfinished shard (or merged file) has until it is complete: OUT + ".partial".
std::filesystem::path partial_path_of(const std::filesystem::path& output);

// Every shard 0..N-1 of one extraction, in shard order, checked.
struct ShardSet {
  std::vector<std::filesystem::path> files;
  std::vector<FeatureMeta> metas;
  FeatureMeta merged;  // what a single-machine run over the whole list has
};

// Checks that `folder` holds shard-K-of-N.h5 for every K in 0..N-1 and nothing else that
// looks like a shard: each complete, saying it is shard K/N, made with the same options
// (weights, layer, size, preprocessing, resize, precision, algorithm, pooling, dtype) over the
// same image list and classes. Throws Error naming every missing, unfinished (.partial only),
// foreign (other options, another list, another N, not a shard name) and duplicated file.
// Lock files and Slurm logs are ignored.
ShardSet check_shard_folder(const std::filesystem::path& folder);

struct MergeConfig {
  std::filesystem::path shards;  // the shard folder
  std::filesystem::path output;  // the merged file
  bool copy = false;             // a full physical copy instead of a virtual dataset
  bool overwrite = false;        // replace an existing output
};

struct MergeSummary {
  int shards = 0;
  std::int64_t rows = 0, failed = 0;
};

// Checks the folder (check_shard_folder), then writes OUTPUT.partial and renames it into
// place once closed and synced. UsageError for an existing output without `overwrite`.
MergeSummary merge_shards(const MergeConfig& cfg, std::ostream& log);

}  // namespace tl
