// The feature cache file: create, resume, commit batch by batch, read back.
#include "tl/feature_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <optional>
#include <tuple>

#include <fmt/format.h>

#include "tl/error.hpp"
#include "tl/output_file.hpp"
#include "tl/timestamp.hpp"

namespace fs = std::filesystem;

namespace tl {
namespace {

// Rows per chunk: about 1 MiB of features, at least 1 row.
hsize_t chunk_rows(std::int64_t row_elements, StorageType dtype) {
  const std::int64_t bytes = row_elements * (dtype == StorageType::f16 ? 2 : 4);
  return static_cast<hsize_t>(
      std::max<std::int64_t>(1, (1 << 20) / std::max<std::int64_t>(bytes, 1)));
}

// The augmentation settings (docs/FORMAT.md, "Augmented rows"); written only with --augment.
void write_augment(h5::Object& f, const AugmentOptions& a) {
  const std::array<double, 2> zoom{a.zoom_lo, a.zoom_hi};
  const std::array<double, 2> brightness{a.brightness_lo, a.brightness_hi};
  f.write_attr("augment_rule", kAugmentRule);
  f.write_attr("augment_copies", a.copies);
  f.write_attr("augment_seed", static_cast<std::int64_t>(a.seed));
  f.write_attr("augment_rotation", a.rotation);
  f.write_attr("augment_width_shift", a.width_shift);
  f.write_attr("augment_height_shift", a.height_shift);
  f.write_attr("augment_shear", a.shear);
  f.write_attr("augment_zoom", std::span<const double>(zoom));
  f.write_attr("augment_horizontal_flip", static_cast<std::int64_t>(a.horizontal_flip));
  f.write_attr("augment_vertical_flip", static_cast<std::int64_t>(a.vertical_flip));
  f.write_attr("augment_brightness", std::span<const double>(brightness));
  f.write_attr("augment_channel_shift", a.channel_shift);
  f.write_attr("augment_fill", to_string(a.fill));
  f.write_attr("augment_fill_value", a.fill_value);
  f.write_attr("augment_at", to_string(a.at));
}

AugmentOptions read_augment(const h5::Object& f) {
  AugmentOptions a;
  if (!f.has_attr("augment_copies")) return a;
  if (const auto rule = f.read_attr<std::string>("augment_rule"); rule != kAugmentRule)
    throw Error(fmt::format("'{}': augmentation rule '{}' is not one this tlkit knows ({})",
                            f.file_name(), rule, kAugmentRule));
  auto d = [&](const char* n) { return f.read_attr<double>(n); };
  auto pair = [&](const char* n) {
    const auto v = f.read_attr<std::vector<double>>(n);
    if (v.size() != 2)
      throw Error(
          fmt::format("'{}': attribute {} has {} values, want 2", f.file_name(), n, v.size()));
    return std::pair{v[0], v[1]};
  };
  a.copies = static_cast<int>(f.read_attr<std::int64_t>("augment_copies"));
  a.seed = static_cast<std::uint64_t>(f.read_attr<std::int64_t>("augment_seed"));
  a.rotation = d("augment_rotation");
  a.width_shift = d("augment_width_shift");
  a.height_shift = d("augment_height_shift");
  a.shear = d("augment_shear");
  std::tie(a.zoom_lo, a.zoom_hi) = pair("augment_zoom");
  a.horizontal_flip = f.read_attr<std::int64_t>("augment_horizontal_flip") != 0;
  a.vertical_flip = f.read_attr<std::int64_t>("augment_vertical_flip") != 0;
  std::tie(a.brightness_lo, a.brightness_hi) = pair("augment_brightness");
  a.channel_shift = d("augment_channel_shift");
  a.fill = parse_fill_mode(f.read_attr<std::string>("augment_fill"));
  a.fill_value = d("augment_fill_value");
  // Absent in files written before --augment-at: those made their copies at the network size.
  a.at = AugmentStage::network;
  if (f.has_attr("augment_at")) {
    const auto at = f.read_attr<std::string>("augment_at");
    try {
      a.at = parse_augment_stage(at);
    } catch (const UsageError& e) {  // a file's fault, not the command line's
      throw Error(fmt::format("'{}': attribute augment_at: {}", f.file_name(), e.what()));
    }
  }
  return a;
}

void write_meta(h5::Object& f, const FeatureMeta& m) {
  f.write_attr("format", kFeatureFormat);
  f.write_attr("format_version",
               m.augment.enabled() ? kFeatureFormatVersionAugmented : kFeatureFormatVersion);
  f.write_attr("model", "VGG16");
  f.write_attr("layer", m.layer);
  f.write_attr("input_height", m.input_height);
  f.write_attr("input_width", m.input_width);
  f.write_attr("preprocess", std::string(to_string(m.preprocess)));
  f.write_attr("resize", std::string(to_string(m.resize)));
  f.write_attr("precision", std::string(to_string(m.precision)));
  f.write_attr("algo", m.algo);
  f.write_attr("pool", std::string(to_string(m.pool)));
  f.write_attr("dtype", std::string(to_string(m.dtype)));
  f.write_attr("weights", m.weights);
  f.write_attr("weights_sha256", m.weights_sha256);
  f.write_attr("weights_pretrained", static_cast<std::int64_t>(m.weights_pretrained));
  f.write_attr("feature_shape", std::span<const std::int64_t>(m.feature_shape));
  f.write_attr("images_root", m.images_root);
  f.write_attr("list_fingerprint", m.list_fingerprint);
  f.write_attr("shard_index", m.shard_index);
  f.write_attr("shard_count", m.shard_count);
  f.write_attr("entries_total", m.entries_total);
  f.write_attr("tool_version", m.tool_version);
  f.write_attr("created", m.created);
  f.write_attr("cpu_isa", m.cpu_isa);
  f.write_attr("onednn_implementations", m.implementations);
  if (m.calibration) write_calibration(f, *m.calibration);
  if (m.augment.enabled()) write_augment(f, m.augment);
}

std::optional<Int8Calibration> read_calibration_attrs(const h5::Object& f) {
  if (!f.has_attr("int8_layers")) return std::nullopt;
  Int8Calibration c;
  c.from = f.read_attr<std::string>("int8_from");
  c.input = static_cast<float>(f.read_attr<double>("int8_input"));
  c.images = static_cast<int>(f.read_attr<std::int64_t>("int8_images"));
  const auto layers = f.read_attr<std::vector<std::string>>("int8_layers");
  const auto max = f.read_attr<std::vector<float>>("int8_max");
  if (layers.size() != max.size())
    throw Error(fmt::format("'{}': int8_layers and int8_max differ in length", f.file_name()));
  for (size_t i = 0; i < layers.size(); ++i) c.outputs[layers[i]] = max[i];
  return c;
}

void write_progress(h5::Object& f, const FeatureMeta& m) {
  f.write_attr("entries_done", m.entries_done);
  f.write_attr("rows_done", m.rows_done);
  f.write_attr("failed_count", m.failed_count);
  f.write_attr("complete", static_cast<std::int64_t>(m.complete));
  f.write_attr("updated", utc_timestamp());
}

}  // namespace

StorageType parse_storage_type(std::string_view s) {
  if (s == "f32") return StorageType::f32;
  if (s == "f16") return StorageType::f16;
  throw UsageError(fmt::format("unknown storage type '{}' (accepted: f32, f16)", s));
}

std::string_view to_string(StorageType t) {
  return t == StorageType::f16 ? "f16" : "f32";
}

std::int64_t FeatureMeta::row_elements() const {
  std::int64_t n = 1;
  for (auto d : feature_shape) n *= d;
  return n;
}

std::string FeatureMeta::difference(const FeatureMeta& o) const {
  auto diff = [](const char* what, const auto& mine, const auto& theirs) -> std::string {
    if (mine == theirs) return "";
    return fmt::format("{}: the file has {}, this run asks for {}", what, mine, theirs);
  };
  for (const std::string& d : {
           diff("weights", weights_sha256.empty() ? weights : weights_sha256,
                o.weights_sha256.empty() ? o.weights : o.weights_sha256),
           diff("layer", layer, o.layer),
           diff("size", fmt::format("{}x{}", input_height, input_width),
                fmt::format("{}x{}", o.input_height, o.input_width)),
           diff("preprocess", to_string(preprocess), to_string(o.preprocess)),
           diff("resize", to_string(resize), to_string(o.resize)),
           diff("precision", to_string(precision), to_string(o.precision)),
           // Not algo: f32's algorithms, like ISAs, differ only within f32's bound of float64
           // (1e-5 of the scale); the default depends on the node (Winograd where oneDNN has
           // it), and one command must resume and merge on every node of a mixed cluster.
           // record_machine() keeps every algorithm and ISA that computed rows.
           diff("pool", to_string(pool), to_string(o.pool)),
           diff("dtype", to_string(dtype), to_string(o.dtype)),
           diff("shard", fmt::format("{}/{}", shard_index, shard_count),
                fmt::format("{}/{}", o.shard_index, o.shard_count)),
           augment.difference(o.augment),
           diff("input list", list_fingerprint, o.list_fingerprint),
           // The same file names under another folder are other images (issue 15, item 2).
           diff("images", images_root, o.images_root),
       })
    if (!d.empty()) return d;
  return "";
}

FeatureMeta read_feature_meta(const h5::File& f) {
  if (!f.has_attr("format") || f.read_attr<std::string>("format") != kFeatureFormat)
    throw Error(fmt::format("'{}' is not a tlkit feature file (no format=\"{}\" attribute)",
                            f.file_name(), kFeatureFormat));
  const auto version = f.read_attr<std::int64_t>("format_version");
  if (version > kFeatureFormatVersionAugmented)
    throw Error(fmt::format("'{}': feature file format {} is newer than this tlkit reads ({})",
                            f.file_name(), version, kFeatureFormatVersionAugmented));
  FeatureMeta m;
  auto s = [&](const char* n) { return f.read_attr<std::string>(n); };
  auto i = [&](const char* n) { return f.read_attr<std::int64_t>(n); };
  // A setting the file names in a way this tlkit does not know: an Error naming the file.
  auto setting = [&](const char* n, auto parse) {
    try {
      return parse(s(n));
    } catch (const UsageError& e) {
      throw Error(fmt::format("'{}': attribute {}: {}", f.file_name(), n, e.what()));
    }
  };
  m.layer = s("layer");
  m.input_height = static_cast<int>(i("input_height"));
  m.input_width = static_cast<int>(i("input_width"));
  m.preprocess = setting("preprocess", parse_preprocess);
  m.resize = setting("resize", parse_resize);
  m.precision = setting("precision", parse_precision);
  m.algo = s("algo");
  m.pool = setting("pool", parse_pool);
  m.dtype = setting("dtype", parse_storage_type);
  m.weights = s("weights");
  m.weights_sha256 = s("weights_sha256");
  m.weights_pretrained = i("weights_pretrained") != 0;
  m.feature_shape = f.read_attr<std::vector<std::int64_t>>("feature_shape");
  m.images_root = s("images_root");
  m.list_fingerprint = s("list_fingerprint");
  m.shard_index = static_cast<int>(i("shard_index"));
  m.shard_count = static_cast<int>(i("shard_count"));
  m.entries_total = i("entries_total");
  m.entries_done = i("entries_done");
  m.rows_done = i("rows_done");
  m.failed_count = i("failed_count");
  m.complete = i("complete") != 0;
  m.tool_version = s("tool_version");
  m.created = s("created");
  if (f.has_attr("cpu_isa")) m.cpu_isa = s("cpu_isa");
  if (f.has_attr("onednn_implementations")) m.implementations = s("onednn_implementations");
  m.classes = f.open_dataset("classes").read<std::string>();
  if (auto c = read_calibration_attrs(f)) m.calibration = std::make_shared<Int8Calibration>(*c);
  m.augment = read_augment(f);
  // The datasets must hold at least the committed rows, in the shape the attributes say.
  const auto feats = f.open_dataset("features");
  const auto dims = feats.dims();
  h5::Dims want{static_cast<hsize_t>(m.rows_done)};
  for (auto d : m.feature_shape) want.push_back(static_cast<hsize_t>(d));
  if (dims.size() != want.size() || dims[0] < want[0] ||
      !std::equal(dims.begin() + 1, dims.end(), want.begin() + 1))
    throw Error(fmt::format("'{}': /features has shape {} but the attributes say {} rows of {}",
                            f.file_name(), fmt::join(dims, "x"), m.rows_done,
                            fmt::join(m.feature_shape, "x")));
  for (const char* d : {"labels", "paths", "augment_index"})
    if ((d != std::string_view("augment_index") || f.exists(d)) &&
        f.open_dataset(d).rows() < static_cast<hsize_t>(m.rows_done))
      throw Error(fmt::format("'{}': /{} has fewer rows than the {} committed", f.file_name(), d,
                              m.rows_done));
  return m;
}

void write_calibration(h5::Object& f, const Int8Calibration& c) {
  std::vector<std::string> layers;
  std::vector<float> max;
  for (const auto& [l, v] : c.outputs) {
    layers.push_back(l);
    max.push_back(v);
  }
  f.write_attr("int8_from", c.from);
  f.write_attr("int8_input", static_cast<double>(c.input));
  f.write_attr("int8_images", c.images);
  f.write_attr("int8_layers", layers);
  f.write_attr("int8_max", std::span<const float>(max));
}

Int8Calibration read_calibration_attrs_of(const h5::Object& obj) {
  auto c = read_calibration_attrs(obj);
  if (!c)
    throw Error(fmt::format("{}: no int8 calibration (int8_* attributes)", obj.where().describe()));
  return *c;
}

Int8Calibration read_calibration(const fs::path& file) {
  const auto f = h5::File::open(file, h5::Mode::read_only, h5::Access::reader);
  auto c = read_calibration_attrs(f);
  if (!c)
    throw Error(
        fmt::format("'{}' holds no int8 calibration (int8_* attributes): give a feature "
                    "file made with --precision int8",
                    file.string()));
  return *c;
}

// --- writer --------------------------------------------------------------------------------

struct FeatureWriter::Impl {
  fs::path path;
  int fd = -1;  // the same file, for reserving space before HDF5 writes a batch
  ~Impl() {
    if (fd >= 0) ::close(fd);
  }

  // Allocates room for the next batch before HDF5 touches the file: on a full disk (or a
  // file-size limit) the batch is refused while the file still holds the last commit
  // intact. A write that failed inside HDF5 instead could leave it unopenable.
  void reserve(std::uint64_t bytes) {
    if (fd < 0) fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    hsize_t size = 0;
    h5::call(file.where(), "H5Fget_filesize", H5Fget_filesize, file.id(), &size);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0)
      throw Error(fmt::format("'{}': cannot reopen the output to reserve space: {}", path.string(),
                              std::strerror(errno)));
    // Past HDF5's own end of file (not st_size, which holds the last reservation: growing
    // from there would add a batch's room to the file at every commit).
    const off_t end = static_cast<off_t>(size + bytes);
    if (const int rc = ::posix_fallocate(fd, 0, end); rc != 0) {
      const std::string reason = fmt::format("{}; {} MiB more needed", std::strerror(rc),
                                             std::max<std::uint64_t>(bytes >> 20, 1));
      throw NoRoomError(
          fmt::format("'{}': no room for the next batch ({}). The {} rows committed so far are "
                      "intact: free space and run the same command to resume",
                      path.string(), reason, meta.rows_done),
          reason);
    }
  }
  FeatureMeta meta;
  h5::File file;
  h5::Dataset features, labels, paths, failed;
  h5::Dataset augment_index;  // absent in an unfinished file of an older tlkit

  void open_datasets() {
    features = file.open_dataset("features");
    labels = file.open_dataset("labels");
    paths = file.open_dataset("paths");
    failed = file.open_dataset("failed");
    if (file.exists("augment_index")) augment_index = file.open_dataset("augment_index");
  }
};

FeatureWriter::FeatureWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FeatureWriter::FeatureWriter(FeatureWriter&&) noexcept = default;
FeatureWriter& FeatureWriter::operator=(FeatureWriter&&) noexcept = default;
FeatureWriter::~FeatureWriter() = default;
const FeatureMeta& FeatureWriter::meta() const {
  return impl_->meta;
}

FeatureWriter FeatureWriter::create(const fs::path& path, FeatureMeta meta, bool overwrite) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  meta.entries_done = meta.rows_done = meta.failed_count = 0;
  meta.complete = false;
  if (meta.created.empty()) meta.created = utc_timestamp();
  // Made whole under a temporary name, then put in place: a kill or a full disk during the
  // creation never leaves a half-made file under `path` that the same command cannot resume
  // (issue 15, item 15; a SIGKILL inside H5Fcreate left a 96-byte file).
  const fs::path tmp = temporary_path_for(path);
  try {
    auto f = h5::File::create(tmp, h5::Create::exclusive, h5::Access::appender);
    h5::Dims row;
    for (auto d : meta.feature_shape) row.push_back(static_cast<hsize_t>(d));
    const hsize_t chunk = chunk_rows(meta.row_elements(), meta.dtype);
    f.create_rows_dataset(
        "features", meta.dtype == StorageType::f16 ? h5::DType::f16 : h5::DType::f32, row, chunk);
    f.create_rows_dataset("labels", h5::DType::i32, {}, 4096);
    f.create_rows_dataset("paths", h5::DType::str, {}, 1024);
    f.create_rows_dataset("augment_index", h5::DType::i32, {}, 4096);
    f.create_rows_dataset("failed", h5::DType::str, {2}, 256);
    f.create_dataset("classes", h5::DType::str, {meta.classes.size()})
        .write<std::string>(meta.classes);
    write_meta(f, meta);
    write_progress(f, meta);
    f.flush();
    f.close();
    // overwrite: replaces `path` at once; else link() fails when `path` exists (no race).
    const bool placed = overwrite ? ::rename(tmp.c_str(), path.c_str()) == 0
                                  : ::link(tmp.c_str(), path.c_str()) == 0;
    if (!placed)
      throw Error(fmt::format("cannot create '{}': {}", path.string(), std::strerror(errno)));
    if (!overwrite) ::unlink(tmp.c_str());
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  impl->file = h5::File::open(path, h5::Mode::read_write, h5::Access::appender);
  impl->meta = std::move(meta);
  impl->open_datasets();
  return FeatureWriter(std::move(impl));
}

FeatureWriter FeatureWriter::resume(const fs::path& path, const FeatureMeta& want) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->file = h5::File::open(path, h5::Mode::read_write, h5::Access::appender);
  impl->meta = read_feature_meta(impl->file);
  if (const auto d = impl->meta.difference(want); !d.empty())
    throw UsageError(
        fmt::format("'{}' was made with other options ({}); use --overwrite to start "
                    "again, or another --output",
                    path.string(), d));
  impl->open_datasets();
  // Rows past the last commit (a batch cut by a kill) are dropped.
  const auto& m = impl->meta;
  auto row_dims = impl->features.dims();
  row_dims[0] = static_cast<hsize_t>(m.rows_done);
  impl->features.set_extent(row_dims);
  impl->labels.set_extent({static_cast<hsize_t>(m.rows_done)});
  impl->paths.set_extent({static_cast<hsize_t>(m.rows_done)});
  if (impl->augment_index.valid())
    impl->augment_index.set_extent({static_cast<hsize_t>(m.rows_done)});
  if (m.augment.enabled() && !impl->augment_index.valid())
    throw Error(fmt::format("'{}': augmented rows but no /augment_index", path.string()));
  impl->failed.set_extent({static_cast<hsize_t>(m.failed_count), 2});
  return FeatureWriter(std::move(impl));
}

std::string join_distinct(const std::string& list, const std::string& item) {
  if (list.empty()) return item;
  std::string_view rest(list);
  for (;;) {
    const auto comma = rest.find(", ");
    if (rest.substr(0, comma) == item) return list;
    if (comma == std::string_view::npos) return list + ", " + item;
    rest.remove_prefix(comma + 2);
  }
}

bool FeatureWriter::record_machine(const std::string& cpu_isa, const std::string& algo,
                                   const std::string& impls) {
  auto& m = impl_->meta;
  if (m.cpu_isa.empty() && m.rows_done == 0) {
    m.implementations = impls;
  } else if (m.implementations.find(impls) == std::string::npos) {  // another machine
    m.implementations +=
        fmt::format("from row {}, on {} ({}):\n{}", m.rows_done, cpu_isa, algo, impls);
  }
  m.cpu_isa = join_distinct(m.cpu_isa, cpu_isa);
  m.algo = join_distinct(m.algo, algo);
  impl_->file.write_attr("cpu_isa", m.cpu_isa);
  impl_->file.write_attr("algo", m.algo);
  impl_->file.write_attr("onednn_implementations", m.implementations);
  return m.cpu_isa.find(',') != std::string::npos || m.algo.find(',') != std::string::npos;
}

void FeatureWriter::commit(const FeatureBatch& b) {
  auto& m = impl_->meta;
  if (m.complete) throw Error(fmt::format("'{}': commit after finish", impl_->path.string()));
  if (b.labels.size() != b.rows || b.paths.size() != b.rows ||
      (!b.augment_index.empty() && b.augment_index.size() != b.rows) ||
      b.failed_paths.size() != b.failed_reasons.size())
    throw Error("FeatureWriter::commit: batch arrays disagree in length");
  // The batch's bytes, a new chunk of each dataset, and room for HDF5's own metadata.
  std::uint64_t bytes = (4ull << 20) + b.rows * static_cast<std::uint64_t>(m.row_elements()) * 4;
  for (const auto& p : b.paths) bytes += p.size() + 32;
  for (size_t i = 0; i < b.failed_paths.size(); ++i)
    bytes += b.failed_paths[i].size() + b.failed_reasons[i].size() + 64;
  bytes += 2 * chunk_rows(m.row_elements(), m.dtype) * m.row_elements() * 4;
  impl_->reserve(bytes);
  if (b.rows > 0) {
    impl_->features.append_rows<float>(
        std::span<const float>(b.features, b.rows * static_cast<size_t>(m.row_elements())));
    impl_->labels.append_rows<std::int32_t>(b.labels);
    impl_->paths.append_rows<std::string>(b.paths);
    if (impl_->augment_index.valid()) {
      if (b.augment_index.empty())
        impl_->augment_index.append_rows(std::vector<std::int32_t>(b.rows, 0));
      else
        impl_->augment_index.append_rows<std::int32_t>(b.augment_index);
    } else if (std::any_of(b.augment_index.begin(), b.augment_index.end(),
                           [](std::int32_t i) { return i != 0; })) {
      throw Error(fmt::format("'{}': augmented rows for a file without /augment_index",
                              impl_->path.string()));
    }
  }
  if (!b.failed_paths.empty()) {
    std::vector<std::string> pairs;
    for (size_t i = 0; i < b.failed_paths.size(); ++i) {
      pairs.push_back(b.failed_paths[i]);
      pairs.push_back(b.failed_reasons[i]);
    }
    impl_->failed.append_rows<std::string>(pairs);
  }
  m.rows_done += static_cast<std::int64_t>(b.rows);
  m.failed_count += static_cast<std::int64_t>(b.failed_paths.size());
  m.entries_done += b.entries;
  write_progress(impl_->file, m);
  impl_->file.flush();
}

void FeatureWriter::finish() {
  auto& m = impl_->meta;
  m.complete = true;
  write_progress(impl_->file, m);
  impl_->file.flush();

  impl_->features = {};
  impl_->labels = {};
  impl_->paths = {};
  impl_->failed = {};
  impl_->augment_index = {};
  impl_->file.close();
  // The space reserved for the next batch (reserve()) is released: HDF5 uses nothing past
  // the end of allocation its closed file records (issue 15, item 22: a 3-row file kept
  // 6 MiB on disk).
  haddr_t eoa = 0;
  if (impl_->fd >= 0) {
    const auto f = h5::File::open(impl_->path, h5::Mode::read_only, h5::Access::reader);
    h5::call(f.where(), "H5Fget_eoa", H5Fget_eoa, f.id(), &eoa);
  }
  if (impl_->fd >= 0) {
    struct stat st {};
    if (eoa > 0 && ::fstat(impl_->fd, &st) == 0 && static_cast<haddr_t>(st.st_size) > eoa &&
        ::ftruncate(impl_->fd, static_cast<off_t>(eoa)) != 0)
      throw Error(fmt::format("'{}': cannot release the space reserved past its end: {}",
                              impl_->path.string(), std::strerror(errno)));
  }
  // Durable against power loss too, not only against a killed process.
  const int fd = ::open(impl_->path.c_str(), O_RDONLY);
  if (fd < 0 || ::fsync(fd) != 0) {
    if (fd >= 0) ::close(fd);
    throw Error(fmt::format("'{}': fsync failed", impl_->path.string()));
  }
  ::close(fd);
}

// --- reader --------------------------------------------------------------------------------

FeatureReader::FeatureReader(const fs::path& path)
    : path_(path), file_(h5::File::open(path, h5::Mode::read_only, h5::Access::reader)) {
  meta_ = read_feature_meta(file_);
  features_ = file_.open_dataset("features");
}

std::vector<std::int32_t> FeatureReader::labels() const {
  return file_.open_dataset("labels").read_rows<std::int32_t>(0, rows());
}

std::vector<std::string> FeatureReader::paths() const {
  return file_.open_dataset("paths").read_rows<std::string>(0, rows());
}

std::vector<std::int32_t> FeatureReader::augment_index() const {
  if (!file_.exists("augment_index")) return std::vector<std::int32_t>(rows(), 0);
  return file_.open_dataset("augment_index").read_rows<std::int32_t>(0, rows());
}

std::vector<std::pair<std::string, std::string>> FeatureReader::failed() const {
  const auto flat = file_.open_dataset("failed").read_rows<std::string>(
      0, static_cast<hsize_t>(meta_.failed_count));
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i + 1 < flat.size(); i += 2) out.emplace_back(flat[i], flat[i + 1]);
  return out;
}

std::vector<float> FeatureReader::read_rows(std::size_t start, std::size_t count) const {
  std::vector<float> v(count * static_cast<size_t>(meta_.row_elements()));
  read_rows(start, count, v.data());
  return v;
}

void FeatureReader::read_rows(std::size_t start, std::size_t count, float* out) const {
  if (start + count > rows())
    throw Error(fmt::format("'{}': rows {}..{} requested, the file has {}", path_.string(), start,
                            start + count, rows()));
  const auto v = features_.read_rows<float>(start, count);
  std::copy(v.begin(), v.end(), out);
}

}  // namespace tl
