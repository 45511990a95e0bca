// The HDF5 wrapper's groups and files: creating, opening, flushing and closing.
#include "tl/hdf5.hpp"

#include <algorithm>
#include <cstring>
#include <system_error>

#include "hdf5_typed_io.hpp"
#include "tl/error.hpp"

namespace tl::h5 {

using namespace detail;

namespace {

herr_t collect_link_name(hid_t loc, const char* name, const H5L_info_t* info, void* data) noexcept {
  return collect_name(loc, name, info, data);
}

}  // namespace

namespace fs = std::filesystem;

// ---- groups and files ---------------------------------------------------------------------

bool Location::exists(std::string_view path) const {
  if (path.empty()) return false;
  std::string prefix = path.front() == '/' ? "/" : "";
  bool any = false;
  std::size_t pos = 0;
  while (pos < path.size()) {
    std::size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view part = path.substr(pos, end - pos);
    pos = end + 1;
    if (part.empty()) continue;
    if (any) {  // the object so far must be a group to hold the next link
      Handle o(call(child(prefix), "H5Oopen", H5Oopen, id(), prefix.c_str(), H5P_DEFAULT),
               H5Oclose);
      if (H5Iget_type(o.id()) != H5I_GROUP) return false;
    }
    if (!prefix.empty() && prefix.back() != '/') prefix += '/';
    prefix += part;
    any = true;
    if (call(child(prefix), "H5Lexists", H5Lexists, id(), prefix.c_str(), H5P_DEFAULT) <= 0)
      return false;
    // A dangling soft or external link exists as a link but names no object.
    if (call(child(prefix), "H5Oexists_by_name", H5Oexists_by_name, id(), prefix.c_str(),
             H5P_DEFAULT) <= 0)
      return false;
  }
  return true;  // "/" or the full path
}

Kind Location::kind(std::string_view path) const {
  if (!exists(path)) return Kind::none;
  const std::string p(path);
  Handle o(call(child(path), "H5Oopen", H5Oopen, id(), p.c_str(), H5P_DEFAULT), H5Oclose);
  switch (H5Iget_type(o.id())) {
    case H5I_GROUP:
      return Kind::group;
    case H5I_DATASET:
      return Kind::dataset;
    default:
      return Kind::other;
  }
}

std::vector<std::string> Location::children() const {
  std::vector<std::string> names;
  call(where_, "H5Literate", H5Literate, id(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
       collect_link_name, static_cast<void*>(&names));
  return names;
}

namespace {

void require_kind(const Location& loc, std::string_view path, Kind want, const Where& w) {
  const Kind k = loc.kind(path);
  if (k == want) return;
  const std::string what = want == Kind::group ? "group" : "dataset";
  const std::string file = Where{w.file, "", ""}.describe();
  if (k == Kind::none) throw Error(file + ": no " + what + " '" + w.path + "'");
  const std::string is = k == Kind::group     ? "a group"
                         : k == Kind::dataset ? "a dataset"
                                              : "not a group or dataset";
  throw Error(file + ": '" + w.path + "' is " + is + ", not a " + what);
}

PropList link_create_with_parents(const Where& w) {
  PropList lcpl = PropList::create(H5P_LINK_CREATE);
  call(w, "H5Pset_create_intermediate_group", H5Pset_create_intermediate_group, lcpl.id(), 1u);
  return lcpl;
}

}  // namespace

Group Location::open_group(std::string_view path) const {
  Where w = child(path);
  require_kind(*this, path, Kind::group, w);
  return Group(call(w, "H5Gopen2", H5Gopen2, id(), c_str(path).c_str(), H5P_DEFAULT), w);
}

Group Location::create_group(std::string_view path) {
  Where w = child(path);
  PropList lcpl = link_create_with_parents(w);
  return Group(call(w, "H5Gcreate2", H5Gcreate2, id(), c_str(path).c_str(), lcpl.id(), H5P_DEFAULT,
                    H5P_DEFAULT),
               w);
}

Dataset Location::open_dataset(std::string_view path) const {
  Where w = child(path);
  require_kind(*this, path, Kind::dataset, w);
  return Dataset(call(w, "H5Dopen2", H5Dopen2, id(), c_str(path).c_str(), H5P_DEFAULT), w);
}

Dataset Location::create_dataset(std::string_view path, DType type, const Dims& dims,
                                 const DatasetOptions& options) {
  Where w = child(path);
  const bool grows = std::find(options.max_dims.begin(), options.max_dims.end(), unlimited) !=
                     options.max_dims.end();
  if (options.chunk.empty() && (grows || options.deflate > 0))
    throw Error(w.describe() + ": an extendable or compressed dataset needs chunk dims");
  if (!options.chunk.empty() && options.chunk.size() != dims.size())
    throw Error(w.describe() + ": chunk dims have rank " + std::to_string(options.chunk.size()) +
                ", the dataset " + std::to_string(dims.size()));
  Dataspace space = Dataspace::simple(dims, options.max_dims);
  PropList dcpl = PropList::create(H5P_DATASET_CREATE);
  if (!options.chunk.empty())
    call(w, "H5Pset_chunk", H5Pset_chunk, dcpl.id(), static_cast<int>(options.chunk.size()),
         options.chunk.data());
  if (options.deflate > 0)
    call(w, "H5Pset_deflate", H5Pset_deflate, dcpl.id(), static_cast<unsigned>(options.deflate));
  Datatype ft = Datatype::file_type(type);
  PropList lcpl = link_create_with_parents(w);
  return Dataset(call(w, "H5Dcreate2", H5Dcreate2, id(), c_str(path).c_str(), ft.id(), space.id(),
                      lcpl.id(), dcpl.id(), H5P_DEFAULT),
                 w);
}

Dataset Location::create_rows_dataset(std::string_view path, DType type, const Dims& row_shape,
                                      hsize_t chunk_rows, int deflate) {
  if (chunk_rows == 0) throw Error(child(path).describe() + ": chunk_rows must be at least 1");
  DatasetOptions o;
  Dims dims{0};
  o.max_dims = {unlimited};
  o.chunk = {chunk_rows};
  for (hsize_t d : row_shape) {
    dims.push_back(d);
    o.max_dims.push_back(d);
    o.chunk.push_back(d);
  }
  o.deflate = deflate;
  return create_dataset(path, type, dims, o);
}

void Location::remove(std::string_view path) {
  Where w = child(path);
  call(w, "H5Ldelete", H5Ldelete, id(), c_str(path).c_str(), H5P_DEFAULT);
}

namespace {

PropList file_access(Access access, const Where& w) {
  PropList fapl = PropList::create(H5P_FILE_ACCESS);
  if (access != Access::standard) {
    // A prime slot count well above the chunks that fit; w0 = 1 evicts fully written or
    // fully read chunks first.
    const double w0 = access == Access::appender ? 1.0 : 0.75;
    call(w, "H5Pset_cache", H5Pset_cache, fapl.id(), 0, std::size_t{10007}, std::size_t{32} << 20,
         w0);
    // tlkit's writer holds its own lock (OutputLock); HDF5's flock would make readers (h5py,
    // whose default takes a shared lock) fail while a file grows.
    call(w, "H5Pset_file_locking", H5Pset_file_locking, fapl.id(), hbool_t{false}, hbool_t{true});
  }
  if (access == Access::appender) {
    // The metadata cache never writes between flushes: the file on disk changes only at
    // flush(), so a SIGKILL between two flushes leaves the state of the last one.
    H5AC_cache_config_t mdc{};
    mdc.version = H5AC__CURR_CACHE_CONFIG_VERSION;
    call(w, "H5Pget_mdc_config", H5Pget_mdc_config, fapl.id(), &mdc);
    mdc.evictions_enabled = false;
    mdc.incr_mode = H5C_incr__off;
    mdc.flash_incr_mode = H5C_flash_incr__off;
    mdc.decr_mode = H5C_decr__off;
    call(w, "H5Pset_mdc_config", H5Pset_mdc_config, fapl.id(), &mdc);
  }
  return fapl;
}

}  // namespace

File File::open(const fs::path& path, Mode mode, Access access) {
  quiet_errors();
  const std::string name = path.string();
  const Where w{name, "", ""};
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (st.type() == fs::file_type::not_found) throw Error(w.describe() + ": no such file");
  if (ec) throw Error(w.describe() + ": cannot access it: " + ec.message());
  if (fs::is_directory(st)) throw Error(w.describe() + ": is a directory, not an HDF5 file");
  if (call(w, "H5Fis_hdf5", H5Fis_hdf5, name.c_str()) <= 0) {
    const auto size = fs::file_size(path, ec);
    throw Error(w.describe() + ": not an HDF5 file (" +
                (ec          ? std::string("no HDF5 signature")
                 : size == 0 ? std::string("the file is empty")
                             : std::to_string(size) + " bytes, no HDF5 signature") +
                ")");
  }
  const unsigned flags = mode == Mode::read_only ? H5F_ACC_RDONLY : H5F_ACC_RDWR;
  const PropList fapl = file_access(access, w);
  return File(call(w, "H5Fopen", H5Fopen, name.c_str(), flags, fapl.id()), Where{name, "/", ""});
}

File File::create(const fs::path& path, Create mode, Access access) {
  const std::string name = path.string();
  const Where w{name, "", ""};
  const unsigned flags = mode == Create::truncate ? H5F_ACC_TRUNC : H5F_ACC_EXCL;
  const PropList fapl = file_access(access, w);
  return File(call(w, "H5Fcreate", H5Fcreate, name.c_str(), flags, H5P_DEFAULT, fapl.id()),
              Where{name, "/", ""});
}

File File::open_image(std::span<const std::byte> image, std::string label) {
  const Where w{label, "", ""};
  if (image.empty()) throw Error(w.describe() + ": not an HDF5 file (the image is empty)");
  PropList fapl = PropList::create(H5P_FILE_ACCESS);
  call(w, "H5Pset_fapl_core", H5Pset_fapl_core, fapl.id(), std::size_t{1} << 16, hbool_t{false});
  // HDF5 copies the image into its own buffer.
  call(w, "H5Pset_file_image", H5Pset_file_image, fapl.id(),
       static_cast<void*>(const_cast<std::byte*>(image.data())), image.size());
  // The core driver refuses an image whose name exists on disk: use a name that cannot.
  const char* name = "/dev/null/tl-h5-memory-image";
  return File(call(w, "H5Fopen", H5Fopen, name, H5F_ACC_RDONLY, fapl.id()),
              Where{std::move(label), "/", ""});
}

bool File::is_hdf5(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  const std::string name = path.string();
  return call(Where{name, "", ""}, "H5Fis_hdf5", H5Fis_hdf5, name.c_str()) > 0;
}

void File::flush() {
  call(where_, "H5Fflush", H5Fflush, id(), H5F_SCOPE_GLOBAL);
}

}  // namespace tl::h5
