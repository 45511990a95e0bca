// tl-merge: check a shard folder, then write one file (virtual dataset or copy) from it.
#include "tl/merge.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ctime>
#include <limits>
#include <map>
#include <ostream>

#include <fmt/format.h>

#include "tl/error.hpp"
#include "tl/hdf5_guard.hpp"
#include "tl/output_file.hpp"
#include "tl/output_lock.hpp"
#include "tl/timestamp.hpp"

namespace fs = std::filesystem;

namespace tl {

fs::path shard_folder_of(const fs::path& output) {
  fs::path p = output;
  if (p.extension() == ".h5" || p.extension() == ".hdf5") p.replace_extension();
  p += ".shards";
  return p;
}

std::string shard_file_name(Shard s) {
  return fmt::format("shard-{}-of-{}.h5", s.index, s.count);
}

fs::path partial_path_of(const fs::path& output) {
  fs::path p = output;
  p += ".partial";
  return p;
}

std::optional<Shard> parse_shard_file_name(std::string_view name) {
  auto number = [&](std::string_view& s, int& v) {
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end == s.data()) return false;
    s.remove_prefix(static_cast<std::size_t>(end - s.data()));
    return true;
  };
  auto eat = [](std::string_view& s, std::string_view lit) {
    if (!s.starts_with(lit)) return false;
    s.remove_prefix(lit.size());
    return true;
  };
  Shard sh;
  std::string_view s = name;
  if (!eat(s, "shard-") || !number(s, sh.index) || !eat(s, "-of-") || !number(s, sh.count) ||
      s != ".h5" || sh.count < 1 || sh.index < 0 || sh.index >= sh.count)
    return std::nullopt;
  return sh;
}

namespace {

void fsync_path(const fs::path& p, bool directory) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
  const bool ok = fd >= 0 && ::fsync(fd) == 0;
  if (fd >= 0) ::close(fd);
  if (!ok) throw Error(fmt::format("'{}': fsync failed", p.string()));
}

// The options a shard's rows depend on, with its own place in the set left out.
std::string option_difference(const FeatureMeta& ref, FeatureMeta m) {
  m.shard_index = ref.shard_index;
  m.shard_count = ref.shard_count;
  if (const auto d = ref.difference(m); !d.empty()) return d;
  if (m.classes != ref.classes)
    return fmt::format("classes: [{}] vs [{}]", fmt::join(m.classes, ", "),
                       fmt::join(ref.classes, ", "));
  if (m.feature_shape != ref.feature_shape)
    return fmt::format("row shape: {} vs {}", fmt::join(m.feature_shape, "x"),
                       fmt::join(ref.feature_shape, "x"));
  return "";
}

// The committed extent of a complete shard must be exactly its rows.
std::string extent_problem(const fs::path& file, const FeatureMeta& m) {
  const auto f = h5::File::open(file, h5::Mode::read_only, h5::Access::reader);
  for (const char* d : {"features", "labels", "paths", "augment_index"})
    if ((d != std::string_view("augment_index") || f.exists(d)) &&
        f.open_dataset(d).rows() != static_cast<hsize_t>(m.rows_done))
      return fmt::format("/{} has {} rows, rows_done says {}", d, f.open_dataset(d).rows(),
                         m.rows_done);
  if (f.open_dataset("failed").rows() != static_cast<hsize_t>(m.failed_count))
    return fmt::format("/failed has {} rows, failed_count says {}", f.open_dataset("failed").rows(),
                       m.failed_count);
  return "";
}

}  // namespace

ShardSet check_shard_folder(const fs::path& folder) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec))
    throw Error(fmt::format("shard folder '{}': not a folder", folder.string()));
  struct Found {
    fs::path path;
    Shard name;
  };
  std::vector<Found> named;
  std::vector<fs::path> partials, others;
  for (const auto& e : fs::directory_iterator(folder)) {
    const std::string n = e.path().filename().string();
    if (n.ends_with(".lock") || n.ends_with(".log") || n.ends_with(".out") || n.starts_with("."))
      continue;  // a killed writer's stale lock, Slurm logs, hidden files
    if (n.ends_with(".partial")) {
      partials.push_back(e.path());
    } else if (const auto s = parse_shard_file_name(n)) {
      named.push_back({e.path(), *s});
    } else if (e.path().extension() == ".h5" || e.path().extension() == ".hdf5") {
      others.push_back(e.path());
    }
  }
  std::vector<std::string> problems;
  for (const auto& o : others)
    problems.push_back(fmt::format("foreign: '{}' is not named shard-K-of-N.h5", o.string()));
  if (named.empty() && problems.empty() && partials.empty())
    throw Error(
        fmt::format("shard folder '{}' holds no shard files (shard-K-of-N.h5)", folder.string()));

  // N: the count most of the files are named with (the largest on a tie).
  std::map<int, int> votes;
  for (const auto& f : named) ++votes[f.name.count];
  for (const auto& p : partials) {
    std::string n = p.filename().string();
    if (const auto s = parse_shard_file_name(n.substr(0, n.size() - 8))) ++votes[s->count];
  }
  int n = 0, best = 0;
  for (const auto& [count, v] : votes)
    if (v >= best) n = count, best = v;

  std::sort(named.begin(), named.end(),
            [](const Found& a, const Found& b) { return a.name.index < b.name.index; });
  ShardSet set;
  std::vector<std::optional<std::size_t>> slot(static_cast<std::size_t>(std::max(n, 0)));
  std::optional<FeatureMeta> ref;
  std::vector<std::pair<std::size_t, FeatureMeta>> good;  // index into named, meta
  for (std::size_t i = 0; i < named.size(); ++i) {
    const auto& f = named[i];
    if (f.name.count != n) {
      problems.push_back(fmt::format("foreign: '{}' is shard {} of {}, the others are of {}",
                                     f.path.string(), f.name.index, f.name.count, n));
      continue;
    }
    FeatureMeta m;
    try {
      auto read = [&] {
        return read_feature_meta(h5::File::open(f.path, h5::Mode::read_only, h5::Access::reader));
      };
      read_in_child_first(f.path, read);  // a shard that crashes HDF5 is reported, not read
      m = read();
    } catch (const Error& e) {
      problems.push_back(fmt::format("unreadable: '{}': {}", f.path.string(), e.what()));
      continue;
    }
    if (m.shard_count != n || m.shard_index != f.name.index) {
      problems.push_back(fmt::format("{}: '{}' holds shard {}/{}, its name says {}/{}",
                                     m.shard_count == n ? "duplicated" : "foreign", f.path.string(),
                                     m.shard_index, m.shard_count, f.name.index, f.name.count));
      continue;
    }
    if (!m.complete) {
      problems.push_back(fmt::format("unfinished: '{}' ({} of {} images done)", f.path.string(),
                                     m.entries_done, m.entries_total));
      continue;
    }
    if (const auto d = extent_problem(f.path, m); !d.empty()) {
      problems.push_back(fmt::format("damaged: '{}': {}", f.path.string(), d));
      continue;
    }
    good.emplace_back(i, std::move(m));
  }
  // The reference options: those most shards agree on (the lowest shard's on a tie), so
  // that the odd one out is named, whichever shard it is.
  std::size_t ref_at = 0, ref_votes = 0;
  for (std::size_t a = 0; a < good.size(); ++a) {
    std::size_t v = 0;
    for (const auto& g : good) v += option_difference(good[a].second, g.second).empty();
    if (v > ref_votes) ref_at = a, ref_votes = v;
  }
  if (!good.empty()) ref = good[ref_at].second;
  for (auto& [i, m] : good) {
    const auto& f = named[i];
    if (const auto d = option_difference(*ref, m); !d.empty()) {
      problems.push_back(fmt::format("foreign: '{}' was made with other options than '{}' ({})",
                                     f.path.string(), named[good[ref_at].first].path.string(), d));
      continue;
    }
    auto& s = slot[static_cast<std::size_t>(f.name.index)];
    if (s) {
      problems.push_back(fmt::format("duplicated: '{}' and '{}' are both shard {}/{}",
                                     named[*s].path.string(), f.path.string(), f.name.index, n));
      continue;
    }
    s = i;
  }
  for (int k = 0; k < n; ++k) {
    if (slot[static_cast<std::size_t>(k)]) continue;
    const bool named_k = std::any_of(named.begin(), named.end(), [&](const Found& f) {
      return f.name.index == k && f.name.count == n;
    });
    if (named_k) continue;  // already reported as unfinished, damaged or foreign
    const fs::path want = folder / shard_file_name({k, n});
    if (fs::exists(partial_path_of(want), ec))
      problems.push_back(fmt::format(
          "unfinished: '{}' is missing, only '{}' exists (the task did not finish: rerun it)",
          want.string(), partial_path_of(want).string()));
    else
      problems.push_back(fmt::format("missing: '{}'", want.string()));
  }
  if (!problems.empty())
    throw Error(fmt::format("shard folder '{}' cannot be used ({} problem{}):\n  {}",
                            folder.string(), problems.size(), problems.size() == 1 ? "" : "s",
                            fmt::join(problems, "\n  ")));

  for (int k = 0; k < n; ++k) {
    const std::size_t i = *slot[static_cast<std::size_t>(k)];
    set.files.push_back(named[i].path);
    for (const auto& [j, m] : good)
      if (j == i) set.metas.push_back(m);
  }
  FeatureMeta& m = set.merged;
  m = set.metas.front();
  m.shard_index = 0;
  m.shard_count = 1;
  m.entries_total = m.entries_done = m.rows_done = m.failed_count = 0;
  for (const auto& s : set.metas) {
    m.entries_total += s.entries_total;
    m.entries_done += s.entries_done;
    m.rows_done += s.rows_done;
    m.failed_count += s.failed_count;
    m.created = std::min(m.created, s.created);
  }
  m.complete = true;
  m.cpu_isa = m.algo = m.implementations = "";
  for (std::size_t k = 0; k < set.metas.size(); ++k) {
    const FeatureMeta& s = set.metas[k];
    m.cpu_isa = join_distinct(m.cpu_isa, s.cpu_isa.empty() ? "unrecorded" : s.cpu_isa);
    m.algo = join_distinct(m.algo, s.algo.empty() ? "unrecorded" : s.algo);
    m.implementations +=
        fmt::format("shard {}/{} on {}:\n{}", k, set.metas.size(),
                    s.cpu_isa.empty() ? "unrecorded" : s.cpu_isa, s.implementations);
  }
  return set;
}

namespace {

// /features as a virtual dataset: shard k's rows at [offset_k, offset_k + rows_k). Source
// names are relative to the merged file's folder, so the pair can move together.
void write_virtual_features(h5::File& f, const fs::path& output, const ShardSet& set) {
  const FeatureMeta& m = set.merged;
  const h5::Where where{f.file_name(), "/features", ""};
  h5::Dims dims{static_cast<hsize_t>(m.rows_done)};
  for (auto d : m.feature_shape) dims.push_back(static_cast<hsize_t>(d));
  const auto space = h5::Dataspace::simple(dims);
  const auto dcpl = h5::PropList::create(H5P_DATASET_CREATE);
  // Rows whose source file cannot be opened read as NaN (HDF5 reads the fill value there),
  // which tl-train refuses, rather than as zeros that look like features.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  h5::call(where, "H5Pset_fill_value", H5Pset_fill_value, dcpl.id(), H5T_NATIVE_FLOAT, &nan);
  const fs::path base = fs::absolute(output).parent_path();
  hsize_t offset = 0;
  for (std::size_t k = 0; k < set.files.size(); ++k) {
    const auto rows = static_cast<hsize_t>(set.metas[k].rows_done);
    if (rows == 0) continue;
    h5::Dims start(dims.size(), 0), count = dims;
    start[0] = offset;
    count[0] = rows;
    h5::call(where, "H5Sselect_hyperslab", H5Sselect_hyperslab, space.id(), H5S_SELECT_SET,
             start.data(), nullptr, count.data(), nullptr);
    const auto src = h5::Dataspace::simple(count);
    const std::string name = fs::relative(fs::absolute(set.files[k]), base).generic_string();
    h5::call(where, "H5Pset_virtual", H5Pset_virtual, dcpl.id(), space.id(), name.c_str(),
             "/features", src.id());
    offset += rows;
  }
  h5::call(where, "H5Sselect_all", H5Sselect_all, space.id());
  const auto type =
      h5::Datatype::file_type(m.dtype == StorageType::f16 ? h5::DType::f16 : h5::DType::f32);
  h5::Dataset d(h5::call(where, "H5Dcreate2", H5Dcreate2, f.id(), "features", type.id(), space.id(),
                         H5P_DEFAULT, dcpl.id(), H5P_DEFAULT),
                where);
  d.close();
}

// Appends every shard's labels, paths and failures to the (empty) datasets of `f`.
void copy_small_datasets(h5::File& f, const ShardSet& set) {
  auto labels = f.open_dataset("labels");
  auto paths = f.open_dataset("paths");
  auto augment_index = f.open_dataset("augment_index");
  auto failed = f.open_dataset("failed");
  for (const auto& file : set.files) {
    const FeatureReader r(file);
    if (r.rows() > 0) {
      labels.append_rows(r.labels());
      paths.append_rows(r.paths());
      augment_index.append_rows(r.augment_index());
    }
    std::vector<std::string> flat;
    for (auto& [p, why] : r.failed()) {
      flat.push_back(p);
      flat.push_back(why);
    }
    if (!flat.empty()) failed.append_rows(flat);
  }
}

// Every row of every shard through FeatureWriter: the same file a single machine writes.
void copy_rows(FeatureWriter& w, const ShardSet& set) {
  const std::size_t row = static_cast<std::size_t>(set.merged.row_elements());
  const std::size_t step = std::max<std::size_t>(1, (64u << 20) / (row * sizeof(float)));
  for (const auto& file : set.files) {
    const FeatureReader r(file);
    const auto labels = r.labels();
    const auto paths = r.paths();
    const auto augment_index = r.augment_index();
    for (std::size_t start = 0; start < r.rows(); start += step) {
      const std::size_t n = std::min(step, r.rows() - start);
      const auto x = r.read_rows(start, n);
      FeatureBatch b;
      b.features = x.data();
      b.rows = n;
      b.labels = std::span(labels).subspan(start, n);
      b.paths = std::span(paths).subspan(start, n);
      b.augment_index = std::span(augment_index).subspan(start, n);
      // Images, not rows: an image's copies (augment_index > 0) are not list entries.
      b.entries = std::count(b.augment_index.begin(), b.augment_index.end(), 0);
      w.commit(b);
    }
    std::vector<std::string> fp, fr;
    for (auto& [p, why] : r.failed()) {
      fp.push_back(p);
      fr.push_back(why);
    }
    if (!fp.empty()) {
      FeatureBatch b;
      b.failed_paths = fp;
      b.failed_reasons = fr;
      b.entries = static_cast<std::int64_t>(fp.size());
      w.commit(b);
    }
  }
}

}  // namespace

namespace {

// The merged file under its partial name, closed and synced.
void write_merged(const MergeConfig& cfg, const ShardSet& set, const fs::path& part) {
  const FeatureMeta& m = set.merged;
  {
    FeatureWriter w = FeatureWriter::create(part, m, /*overwrite=*/true);
    if (cfg.copy) copy_rows(w, set);
    w.finish();
  }
  {
    auto f = h5::File::open(part, h5::Mode::read_write);
    if (!cfg.copy) {
      f.remove("features");
      write_virtual_features(f, cfg.output, set);
      copy_small_datasets(f, set);
      f.write_attr("entries_done", m.entries_done);
      f.write_attr("rows_done", m.rows_done);
      f.write_attr("failed_count", m.failed_count);
      f.write_attr("complete", std::int64_t{1});
    }
    f.write_attr("created", m.created);
    f.write_attr("updated", utc_timestamp());
    std::vector<std::string> names;
    for (const auto& s : set.files)
      names.push_back(
          fs::relative(fs::absolute(s), fs::absolute(cfg.output).parent_path()).generic_string());
    f.write_attr("merged_from", names);
    f.write_attr("merge", cfg.copy ? "copy" : "virtual");
    f.flush();
    f.close();
  }
  fsync_path(part, false);
}

}  // namespace

MergeSummary merge_shards(const MergeConfig& cfg, std::ostream& log) {
  if (cfg.shards.empty()) throw UsageError("the shard folder is required");
  if (cfg.output.empty()) throw UsageError("--output: required (the merged .h5 file)");
  check_outputs({}, {{"--output", cfg.output, FileKind::features}}, /*overwrite=*/true);
  std::error_code ec;
  if (fs::exists(cfg.output, ec) && !cfg.overwrite)
    throw UsageError(
        fmt::format("--output: '{}' exists (--overwrite replaces it)", cfg.output.string()));
  const OutputLock lock(cfg.output);  // one tl-merge per output (issue 15, item 11)
  const ShardSet set = check_shard_folder(cfg.shards);
  const FeatureMeta& m = set.merged;
  if (m.cpu_isa.find(',') != std::string::npos || m.algo.find(',') != std::string::npos)
    log << fmt::format(
        "note: the shards were computed on oneDNN ISAs {} with f32 algorithms {}: their rows "
        "may differ in the last bits (within f32's bound of float64; docs/FORMAT.md)\n",
        m.cpu_isa, m.algo);
  const fs::path part = partial_path_of(cfg.output);
  fs::remove(part, ec);
  // tl-merge starts over each time: a failure removes its partial output and says so
  // (issue 15, item 17: it advised resuming and left the .partial).
  try {
    write_merged(cfg, set, part);
  } catch (const std::exception& e) {
    fs::remove(part, ec);
    const auto* no_room = dynamic_cast<const NoRoomError*>(&e);
    throw Error(fmt::format(
        "tl-merge could not write '{}' ({}). Nothing was merged: the partial output is removed "
        "and the shards are untouched; {}run tl-merge again",
        cfg.output.string(), no_room ? no_room->reason : std::string(e.what()),
        no_room ? "free space and " : ""));
  }
  fs::rename(part, cfg.output);
  fsync_path(fs::absolute(cfg.output).parent_path(), true);
  log << fmt::format("tl-merge: {} shards, {} rows, {} failed -> '{}' ({})\n", set.files.size(),
                     m.rows_done, m.failed_count, cfg.output.string(),
                     cfg.copy ? "a full copy" : "a virtual dataset over the shard files");
  return {static_cast<int>(set.files.size()), m.rows_done, m.failed_count};
}

}  // namespace tl
