// tlkit's checked HDF5 wrapper, its base: errors, type names and the handles every HDF5 C
// call of the project goes through (objects, datasets and files in hdf5_*.cpp).
#include "tl/hdf5.hpp"

#include <algorithm>
#include <cstring>
#include <system_error>

#include "tl/error.hpp"

namespace tl::h5 {

namespace fs = std::filesystem;

// ---- errors -------------------------------------------------------------------------------

void quiet_errors() {
  // No atexit cleanup: after a failed write (a full disk) HDF5 1.10.8 crashes in its exit
  // handler closing the damaged file. tlkit closes every file it opens through RAII and
  // flushes what it commits, so the handler has nothing left to do. Must precede init.
  static const bool no_atexit = (H5dont_atexit(), true);
  (void)no_atexit;
  // HDF5 keeps this setting per thread in thread-safe builds (Debian's is one).
  thread_local bool quiet = false;
  if (!quiet) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    quiet = true;
  }
}

namespace {

herr_t collect_error(unsigned, const H5E_error2_t* e, void* data) noexcept {
  try {
    auto* out = static_cast<std::vector<std::string>*>(data);
    out->emplace_back(e->desc && *e->desc ? e->desc : (e->func_name ? e->func_name : "?"));
    return 0;
  } catch (...) {
    return -1;
  }
}

}  // namespace

std::string error_stack_message() {
  std::vector<std::string> msgs;  // innermost first
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect_error, &msgs);
  H5Eclear2(H5E_DEFAULT);
  if (msgs.empty()) return "failed (HDF5 gave no message)";
  std::string m = msgs.front();
  if (msgs.size() > 1 && msgs.back() != m) m = msgs.back() + " (" + m + ")";
  if (m.find("unable to lock file") != std::string::npos)
    m += "; on a file system without locking, set HDF5_USE_FILE_LOCKING=FALSE";
  return m;
}

std::string Where::describe() const {
  std::string s = file.empty() ? "HDF5" : "HDF5 file '" + file + "'";
  if (!path.empty() && path != "/") s += ", object '" + path + "'";
  if (!attr.empty()) s += ", attribute '" + attr + "'";
  return s;
}

void fail(const Where& where, std::string_view op) {
  std::string msg = error_stack_message();
  throw Error(where.describe() + ": " + std::string(op) + ": " + msg);
}

std::string_view to_string(DType t) {
  switch (t) {
    case DType::f16:
      return "float16";
    case DType::f32:
      return "float32";
    case DType::f64:
      return "float64";
    case DType::i8:
      return "int8";
    case DType::u8:
      return "uint8";
    case DType::i32:
      return "int32";
    case DType::i64:
      return "int64";
    case DType::str:
      return "string";
    case DType::other:
      break;
  }
  return "other";
}

// ---- handles ------------------------------------------------------------------------------

Handle::Handle(Handle&& o) noexcept
    : id_(std::exchange(o.id_, H5I_INVALID_HID)), closer_(o.closer_) {}

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    Handle old(std::move(*this));  // closes the previous id
    id_ = std::exchange(o.id_, H5I_INVALID_HID);
    closer_ = o.closer_;
  }
  return *this;
}

Handle::~Handle() {
  if (valid() && closer_) {
    quiet_errors();
    closer_(id_);  // a failure here cannot be reported: close() reports it
  }
}

void Handle::close(const Where& where) {
  if (!valid()) return;
  hid_t id = std::exchange(id_, H5I_INVALID_HID);
  call(where, "close", closer_, id);
}

Dataspace Dataspace::scalar() {
  return Dataspace(call({}, "H5Screate", H5Screate, H5S_SCALAR));
}

Dataspace Dataspace::simple(const Dims& dims, const Dims& max_dims) {
  if (dims.empty()) return scalar();
  if (!max_dims.empty() && max_dims.size() != dims.size())
    throw Error("HDF5: max dims have rank " + std::to_string(max_dims.size()) + ", dims " +
                std::to_string(dims.size()));
  return Dataspace(call({}, "H5Screate_simple", H5Screate_simple, static_cast<int>(dims.size()),
                        dims.data(), max_dims.empty() ? nullptr : max_dims.data()));
}

int Dataspace::rank() const {
  return call({}, "H5Sget_simple_extent_ndims", H5Sget_simple_extent_ndims, id());
}

Dims Dataspace::dims() const {
  Dims d(static_cast<std::size_t>(rank()));
  if (!d.empty())
    call({}, "H5Sget_simple_extent_dims", H5Sget_simple_extent_dims, id(), d.data(), nullptr);
  return d;
}

Dims Dataspace::max_dims() const {
  Dims d(static_cast<std::size_t>(rank()));
  if (!d.empty())
    call({}, "H5Sget_simple_extent_dims", H5Sget_simple_extent_dims, id(), nullptr, d.data());
  return d;
}

hsize_t Dataspace::elements() const {
  return static_cast<hsize_t>(
      call({}, "H5Sget_simple_extent_npoints", H5Sget_simple_extent_npoints, id()));
}

Datatype Datatype::copy(hid_t type) {
  return Datatype(call({}, "H5Tcopy", H5Tcopy, type));
}

namespace {

// numpy's float16 as h5py defines it: sign bit 15, exponent bits 10..14 (bias 15),
// mantissa bits 0..9.
Datatype make_float16(hid_t float32_base) {
  Datatype t = Datatype::copy(float32_base);
  call({}, "H5Tset_fields", H5Tset_fields, t.id(), 15, 10, 5, 0, 10);
  call({}, "H5Tset_size", H5Tset_size, t.id(), 2);
  call({}, "H5Tset_ebias", H5Tset_ebias, t.id(), 15);
  return t;
}

}  // namespace

Datatype Datatype::float16_le() {
  return make_float16(H5T_IEEE_F32LE);
}
Datatype Datatype::float16_native() {
  return make_float16(H5T_NATIVE_FLOAT);
}

Datatype Datatype::vlen_utf8() {
  Datatype t = copy(H5T_C_S1);
  call({}, "H5Tset_size", H5Tset_size, t.id(), H5T_VARIABLE);
  call({}, "H5Tset_cset", H5Tset_cset, t.id(), H5T_CSET_UTF8);
  return t;
}

Datatype Datatype::fixed_string(std::size_t bytes) {
  Datatype t = copy(H5T_C_S1);
  call({}, "H5Tset_size", H5Tset_size, t.id(), std::max<std::size_t>(bytes, 1));
  call({}, "H5Tset_strpad", H5Tset_strpad, t.id(), H5T_STR_NULLPAD);
  return t;
}

Datatype Datatype::file_type(DType t) {
  switch (t) {
    case DType::f16:
      return float16_le();
    case DType::f32:
      return copy(H5T_IEEE_F32LE);
    case DType::f64:
      return copy(H5T_IEEE_F64LE);
    case DType::i8:
      return copy(H5T_STD_I8LE);
    case DType::u8:
      return copy(H5T_STD_U8LE);
    case DType::i32:
      return copy(H5T_STD_I32LE);
    case DType::i64:
      return copy(H5T_STD_I64LE);
    case DType::str:
      return vlen_utf8();
    case DType::other:
      break;
  }
  throw Error("HDF5: no file type for DType::other");
}

H5T_class_t Datatype::type_class() const {
  return call({}, "H5Tget_class", H5Tget_class, id());
}

std::size_t Datatype::size() const {
  quiet_errors();
  std::size_t s = H5Tget_size(id());
  if (s == 0) fail({}, "H5Tget_size");
  return s;
}

bool Datatype::is_vlen_string() const {
  return call({}, "H5Tis_variable_str", H5Tis_variable_str, id()) > 0;
}

DType Datatype::dtype() const {
  const std::size_t s = size();
  switch (type_class()) {
    case H5T_FLOAT: {
      if (s == 4) return DType::f32;
      if (s == 8) return DType::f64;
      if (s != 2) return DType::other;
      std::size_t spos, epos, esize, mpos, msize;
      call({}, "H5Tget_fields", H5Tget_fields, id(), &spos, &epos, &esize, &mpos, &msize);
      const bool ieee = spos == 15 && epos == 10 && esize == 5 && mpos == 0 && msize == 10;
      return ieee ? DType::f16 : DType::other;
    }
    case H5T_INTEGER: {
      const bool sign = call({}, "H5Tget_sign", H5Tget_sign, id()) == H5T_SGN_2;
      if (s == 1) return sign ? DType::i8 : DType::u8;
      if (s == 4 && sign) return DType::i32;
      if (s == 8 && sign) return DType::i64;
      return DType::other;
    }
    case H5T_STRING:
      return DType::str;
    default:
      return DType::other;
  }
}

std::string Datatype::name() const {
  const H5T_class_t c = type_class();
  const DType d = dtype();
  if (d != DType::other && d != DType::str) return std::string(to_string(d));
  const std::string bits = std::to_string(8 * size());
  switch (c) {
    case H5T_INTEGER:
      return (call({}, "H5Tget_sign", H5Tget_sign, id()) == H5T_SGN_2 ? "int" : "uint") + bits;
    case H5T_FLOAT:
      return "float (" + std::to_string(size()) + " bytes, non-IEEE layout)";
    case H5T_STRING:
      return is_vlen_string() ? "string (variable-length)"
                              : "string (fixed, " + std::to_string(size()) + " bytes)";
    case H5T_COMPOUND:
      return "compound";
    case H5T_ENUM:
      return "enum";
    case H5T_ARRAY:
      return "array";
    case H5T_VLEN:
      return "variable-length sequence";
    case H5T_OPAQUE:
      return "opaque";
    case H5T_BITFIELD:
      return "bitfield";
    case H5T_REFERENCE:
      return "reference";
    case H5T_TIME:
      return "time";
    default:
      return "unknown type";
  }
}

PropList PropList::create(hid_t cls) {
  return PropList(call({}, "H5Pcreate", H5Pcreate, cls));
}

Dataspace Attribute::space() const {
  return Dataspace(call(where_, "H5Aget_space", H5Aget_space, id()));
}

Datatype Attribute::type() const {
  return Datatype(call(where_, "H5Aget_type", H5Aget_type, id()));
}

}  // namespace tl::h5
