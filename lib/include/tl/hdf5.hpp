// tlkit's one checked wrapper over the HDF5 C API (Debian's HDF5 1.10, serial, thread-safe
// build). Every HDF5 call of the project goes through it. Handles are RAII and move-only;
// destructors never throw; a failed call throws tl::Error naming the file, the object, the
// operation and HDF5's own messages (outermost (innermost)), e.g.
//   HDF5 file 'x.h5': H5Fopen: unable to open file (truncated file: eof = 203264, ...)
//   HDF5 file 'x.h5': no dataset '/block1_conv1/kernel:0'
//
//   auto f = tl::h5::File::create("feats.h5");
//   auto d = f.create_rows_dataset("features", tl::h5::DType::f16, {7, 7, 512}, 16);
//   d.append_rows<float>(batch);        // batch.size() = k * 7*7*512 -> k more rows
//   f.flush();                          // H5Fflush(GLOBAL): a SIGKILL now leaves a readable file
//   f.write_attr("layer", "block5_pool");
//
//   auto w = tl::h5::File::open("w.h5");                                     // read-only
//   auto names = w.read_attr<std::vector<std::string>>("layer_names");       // fixed or vlen
//   std::vector<float> k = w.open_dataset("block1_conv1/kernel:0").read<float>();
//
// Conversions are HDF5's own, element by element: float16 -> float32 is exact; float64 ->
// float32 rounds to nearest (out-of-range values become +-Inf). float32 -> float16 is NOT
// IEEE in HDF5 1.10.8 (ties round away from zero, subnormals are not rounded to nearest,
// [65520, 65536) gives 65504): for IEEE halves convert yourself and write h5::Half.
// Reads and writes refuse a class change that loses meaning (float data into an integer
// type, strings into numbers).
#pragma once

#include <hdf5.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace tl::h5 {

using Dims = std::vector<hsize_t>;
inline constexpr hsize_t unlimited = H5S_UNLIMITED;

// An IEEE binary16 value as its raw bits: the memory type for float16 data without conversion.
struct Half {
  std::uint16_t bits = 0;
  bool operator==(const Half&) const = default;
};

// The element types tlkit stores. Files' types map by class and size (any byte order);
// `other` is anything else (uint16, compound, bfloat16-like 2-byte floats, ...).
enum class DType { f16, f32, f64, i8, u8, i32, i64, str, other };
std::string_view to_string(DType t);  // "float16", "int32", "string", ...

enum class Mode { read_only, read_write };
enum class Create { truncate, exclusive };  // exclusive: fail when the file exists
enum class Kind { none, group, dataset, other };
// How a file will be used: HDF5's cache and locking settings.
enum class Access {
  standard,  // HDF5's defaults (1 MiB chunk cache per open dataset, HDF5's file locking)
  reader,    // reads row ranges: 32 MiB chunk cache; no HDF5 file lock, so a file that
             // tl-extract is still appending to can be read
  appender,  // appends batches of rows: as reader, fully written chunks evicted first, and
             // metadata written only at flush() (crash safety: see docs/FORMAT.md)
};

// Where an operation happened, for error messages.
struct Where {
  std::string file;  // the file name as given ("<memory image>" for images)
  std::string path;  // the object inside it ("/a/b"), "" for none
  std::string attr;  // the attribute, "" for none
  // "HDF5 file 'F', object '/a/b', attribute 'x'"
  std::string describe() const;
};

// Turns HDF5's automatic error printing off for the calling thread (the setting is per
// thread in thread-safe builds). Cheap; every call of this wrapper does it first.
void quiet_errors();
// This thread's HDF5 error stack in one line, outermost (innermost): "unable to open file
// (file signature not found)"; clears the stack.
std::string error_stack_message();
// Throws Error("<where>: <op>: <HDF5's message>").
[[noreturn]] void fail(const Where& where, std::string_view op);

// The one check: a negative result (or H5T_NO_CLASS) becomes an Error; returns `ret`.
template <class R>
R check(R ret, const Where& where, std::string_view op) {
  if constexpr (std::is_enum_v<R>) {
    if (static_cast<long long>(ret) < 0) fail(where, op);
  } else {
    if (ret < 0) fail(where, op);
  }
  return ret;
}

// Calls an HDF5 function checked, with error printing off: call(w, "H5Fflush", H5Fflush, id, s).
// The escape hatch for calls this header does not wrap (H5Pset_virtual, ...).
template <class F, class... A>
auto call(const Where& where, std::string_view op, F&& f, A&&... args) {
  quiet_errors();
  return check(std::forward<F>(f)(std::forward<A>(args)...), where, op);
}

// Owns one hid_t and closes it with its close function; move-only; never throws when
// destroyed (a failed close there is ignored; call close() to see it).
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() noexcept = default;
  Handle(hid_t id, Closer closer) noexcept : id_(id), closer_(closer) {}
  Handle(Handle&& o) noexcept;
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle();

  hid_t id() const noexcept { return id_; }
  bool valid() const noexcept { return id_ >= 0; }
  void close(const Where& where = {});  // checked close; the handle is empty afterwards

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

class Dataspace : public Handle {
 public:
  Dataspace() = default;
  explicit Dataspace(hid_t id) noexcept : Handle(id, H5Sclose) {}
  static Dataspace scalar();
  static Dataspace simple(const Dims& dims, const Dims& max_dims = {});  // max {} = dims
  int rank() const;   // 0 for scalar and null spaces
  Dims dims() const;  // {} for scalar and null spaces
  Dims max_dims() const;
  hsize_t elements() const;  // 1 for scalar, 0 for null
};

class Datatype : public Handle {
 public:
  Datatype() = default;
  explicit Datatype(hid_t id) noexcept : Handle(id, H5Tclose) {}
  static Datatype copy(hid_t type);  // H5Tcopy, e.g. copy(H5T_NATIVE_FLOAT)
  // The file type tlkit writes for `t` (little-endian; strings are variable-length UTF-8).
  static Datatype file_type(DType t);
  // IEEE binary16 as h5py builds it (numpy float16), little-endian or native order.
  static Datatype float16_le();
  static Datatype float16_native();
  static Datatype vlen_utf8();
  static Datatype fixed_string(std::size_t bytes);  // ASCII, null-padded (numpy 'S<bytes>')
  H5T_class_t type_class() const;
  std::size_t size() const;
  bool is_vlen_string() const;
  DType dtype() const;
  std::string name() const;  // "float32", "uint16", "string (fixed, 12 bytes)", ...
};

class PropList : public Handle {
 public:
  PropList() = default;
  explicit PropList(hid_t id) noexcept : Handle(id, H5Pclose) {}
  static PropList create(hid_t cls);  // H5Pcreate(H5P_DATASET_CREATE), ...
};

// An open attribute (use Object::read_attr / write_attr for values).
class Attribute : public Handle {
 public:
  Attribute() = default;
  Attribute(hid_t id, Where where) noexcept : Handle(id, H5Aclose), where_(std::move(where)) {}
  const Where& where() const { return where_; }
  Dataspace space() const;
  Datatype type() const;

 private:
  Where where_;
};

// A file, group or dataset: something with a name and attributes.
class Object {
 public:
  hid_t id() const noexcept { return h_.id(); }
  bool valid() const noexcept { return h_.valid(); }
  const Where& where() const { return where_; }
  const std::string& file_name() const { return where_.file; }
  const std::string& path() const { return where_.path; }
  void close() { h_.close(where_); }

  bool has_attr(std::string_view name) const;
  std::vector<std::string> attr_names() const;  // in name order
  Attribute open_attr(std::string_view name) const;
  void delete_attr(std::string_view name);

  // Writing replaces an existing attribute of that name.
  void write_attr(std::string_view name, std::string_view value);  // scalar vlen UTF-8
  void write_attr(std::string_view name, const char* value) {
    write_attr(name, std::string_view(value));
  }
  void write_attr(std::string_view name, const std::vector<std::string>& values);  // 1-D vlen UTF-8
  void write_attr(std::string_view name, std::int64_t value);
  void write_attr(std::string_view name, double value);
  void write_attr(std::string_view name, std::span<const float> values);
  void write_attr(std::string_view name, std::span<const double> values);
  void write_attr(std::string_view name, std::span<const std::int64_t> values);
  template <std::integral I>
  void write_attr(std::string_view name, I value) {
    write_attr(name, static_cast<std::int64_t>(value));
  }
  // Fixed-length byte strings, as numpy/h5py write bytes (Keras's `layer_names`): a scalar
  // of the string's length, or a 1-D array whose length is the longest (at least 1).
  void write_attr_fixed(std::string_view name, std::string_view value);
  void write_attr_fixed(std::string_view name, const std::vector<std::string>& values);

  // T: std::string (scalar or one-element, fixed or vlen), std::vector<std::string> (fixed or
  // vlen, any rank; an attribute with no elements reads as {} whatever its type, as Keras
  // writes empty `weight_names`), std::int64_t, double, std::vector<float>,
  // std::vector<double>, std::vector<std::int64_t>. Throws naming the attribute when it is
  // missing, has another class or (for scalars) not exactly one element.
  template <class T>
  T read_attr(std::string_view name) const;

 protected:
  Object() = default;
  Object(hid_t id, Handle::Closer closer, Where where) noexcept
      : h_(id, closer), where_(std::move(where)) {}
  Where child(std::string_view name) const;  // where_ for a path relative to this object

  Handle h_;
  Where where_;
};

// create_dataset(path, DType::f32, {2, 3}, {.chunk = {1, 3}, .deflate = 4})
struct DatasetOptions {
  Dims max_dims{};  // {}: fixed at dims; h5::unlimited in a dimension lets it grow
  Dims chunk{};     // {}: contiguous (needed when max_dims has an unlimited dimension)
  int deflate = 0;  // gzip level 1..9; 0: no compression
};

class Dataset : public Object {
 public:
  Dataset() = default;
  Dataset(hid_t id, Where where) noexcept : Object(id, H5Dclose, std::move(where)) {}

  Dataspace space() const;
  Datatype type() const;
  DType dtype() const { return type().dtype(); }
  Dims dims() const;
  int rank() const { return static_cast<int>(dims().size()); }
  hsize_t rows() const;          // dims()[0]; throws for a scalar
  hsize_t row_elements() const;  // product of dims()[1:] (1 for a 1-D dataset)
  Dims chunk_dims() const;       // {} when not chunked
  void set_extent(const Dims& dims);

  // T: float, double, Half, std::int8_t, std::uint8_t, std::int32_t, std::int64_t, std::string.
  // The whole dataset, row-major.
  template <class T>
  std::vector<T> read() const;
  // Rows [start, start + count) of the first dimension: count * row_elements() values.
  template <class T>
  std::vector<T> read_rows(hsize_t start, hsize_t count) const;
  // The same into caller memory (numeric T): out.size() must be count * row_elements().
  template <class T>
  void read_rows_into(hsize_t start, hsize_t count, std::span<T> out) const;
  // The whole dataset; data.size() must equal its element count.
  template <class T>
  void write(std::span<const T> data);
  // data.size() / row_elements() rows at `start` (within the current extent).
  template <class T>
  void write_rows(hsize_t start, std::span<const T> data);
  // Grows the first dimension by data.size() / row_elements() rows and writes them there;
  // returns the new row count.
  // Strings are stored as given (UTF-8 expected); one with an embedded NUL is an error.
  template <class T>
  hsize_t append_rows(std::span<const T> data);

  // The same for vectors: d.write(v), d.append_rows(v) deduce T from the vector.
  template <class T>
  void write(const std::vector<T>& data) {
    write(std::span<const T>(data));
  }
  template <class T>
  void write_rows(hsize_t start, const std::vector<T>& data) {
    write_rows(start, std::span<const T>(data));
  }
  template <class T>
  hsize_t append_rows(const std::vector<T>& data) {
    return append_rows(std::span<const T>(data));
  }
};

class Group;

// A file or a group: something that holds links to groups and datasets.
class Location : public Object {
 public:
  // Whether `path` (relative, or absolute from the root) names an object, checked link by
  // link (no error for a missing parent, a dangling link or a dataset in the middle).
  bool exists(std::string_view path) const;
  Kind kind(std::string_view path) const;
  std::vector<std::string> children() const;  // link names, in name order

  Group open_group(std::string_view path) const;
  Group create_group(std::string_view path);  // creates missing parents
  Dataset open_dataset(std::string_view path) const;
  // Creates missing parent groups. DType::str makes a variable-length UTF-8 string dataset.
  Dataset create_dataset(std::string_view path, DType type, const Dims& dims,
                         const DatasetOptions& options = {});
  // A dataset of 0 rows of shape `row_shape` that grows along its first dimension, chunked
  // by `chunk_rows` rows: dims {0, row_shape...}, max {unlimited, row_shape...}.
  Dataset create_rows_dataset(std::string_view path, DType type, const Dims& row_shape,
                              hsize_t chunk_rows, int deflate = 0);
  void remove(std::string_view path);  // unlinks it (space is not reclaimed)

 protected:
  using Object::Object;
};

class Group : public Location {
 public:
  Group() = default;
  Group(hid_t id, Where where) noexcept : Location(id, H5Gclose, std::move(where)) {}
};

class File : public Location {
 public:
  File() = default;
  // Throws with a clear message for a missing file, a directory, a file that is not HDF5
  // (empty, text, ...) and a truncated or damaged one.
  static File open(const std::filesystem::path& path, Mode mode = Mode::read_only,
                   Access access = Access::standard);
  static File create(const std::filesystem::path& path, Create mode = Create::truncate,
                     Access access = Access::standard);
  // Opens a read-only copy of an HDF5 file image held in memory (core driver, no disk I/O);
  // `label` names it in errors.
  static File open_image(std::span<const std::byte> image, std::string label = "<memory image>");
  // Whether the file starts with an HDF5 signature (false for a missing file).
  static bool is_hdf5(const std::filesystem::path& path);

  void flush();  // H5Fflush(H5F_SCOPE_GLOBAL): everything written reaches the OS

 private:
  File(hid_t id, Where where) noexcept : Location(id, H5Fclose, std::move(where)) {}
};

}  // namespace tl::h5
