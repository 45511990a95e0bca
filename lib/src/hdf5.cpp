// tlkit's checked HDF5 wrapper: every HDF5 C call of the project goes through here.
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

// ---- typed reads and writes ---------------------------------------------------------------

namespace {

template <class T>
Datatype memory_type() {
  if constexpr (std::is_same_v<T, float>)
    return Datatype::copy(H5T_NATIVE_FLOAT);
  else if constexpr (std::is_same_v<T, double>)
    return Datatype::copy(H5T_NATIVE_DOUBLE);
  else if constexpr (std::is_same_v<T, Half>)
    return Datatype::float16_native();
  else if constexpr (std::is_same_v<T, std::int8_t>)
    return Datatype::copy(H5T_NATIVE_INT8);
  else if constexpr (std::is_same_v<T, std::uint8_t>)
    return Datatype::copy(H5T_NATIVE_UINT8);
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return Datatype::copy(H5T_NATIVE_INT32);
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return Datatype::copy(H5T_NATIVE_INT64);
  else
    static_assert(sizeof(T) == 0, "unsupported element type");
}

template <class T>
constexpr std::string_view type_name() {
  if constexpr (std::is_same_v<T, float>)
    return "float32";
  else if constexpr (std::is_same_v<T, double>)
    return "float64";
  else if constexpr (std::is_same_v<T, Half>)
    return "float16";
  else if constexpr (std::is_same_v<T, std::int8_t>)
    return "int8";
  else if constexpr (std::is_same_v<T, std::uint8_t>)
    return "uint8";
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return "int32";
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return "int64";
  else
    return "string";
}

// Reading T from data of class `ft` must keep its meaning: strings from strings, integers
// from integers, floating point from floating point or integers.
template <class T>
void require_readable(const Datatype& ft, const Where& w) {
  const H5T_class_t c = ft.type_class();
  bool ok;
  if constexpr (std::is_same_v<T, std::string>)
    ok = c == H5T_STRING;
  else if constexpr (std::is_integral_v<T>)
    ok = c == H5T_INTEGER;
  else
    ok = c == H5T_FLOAT || c == H5T_INTEGER;
  if (!ok)
    throw Error(w.describe() + ": holds " + ft.name() + ", cannot read it as " +
                std::string(type_name<T>()));
}

// Writing T into data of class `ft`: no silent float -> integer truncation.
template <class T>
void require_writable(const Datatype& ft, const Where& w) {
  const H5T_class_t c = ft.type_class();
  bool ok;
  if constexpr (std::is_same_v<T, std::string>)
    ok = c == H5T_STRING;
  else if constexpr (std::is_integral_v<T>)
    ok = c == H5T_INTEGER || c == H5T_FLOAT;
  else
    ok = c == H5T_FLOAT;
  if (!ok)
    throw Error(w.describe() + ": holds " + ft.name() + ", cannot write " +
                std::string(type_name<T>()) + " into it");
}

// Frees the strings HDF5 allocated for a variable-length read, whatever happens.
class VlenReclaim {
 public:
  VlenReclaim(const Datatype& mt, hsize_t n, void* buf)
      : mt_(mt), space_(Dataspace::simple({n})), buf_(buf) {}
  ~VlenReclaim() {
    quiet_errors();
    H5Dvlen_reclaim(mt_.id(), space_.id(), H5P_DEFAULT, buf_);
  }
  VlenReclaim(const VlenReclaim&) = delete;
  VlenReclaim& operator=(const VlenReclaim&) = delete;

 private:
  const Datatype& mt_;
  Dataspace space_;
  void* buf_;
};

// n strings of file type `ft` (fixed-length or variable-length), read by
// read(memory_type, buffer).
template <class ReadFn>
std::vector<std::string> read_strings(const Datatype& ft, hsize_t n, const Where& w,
                                      std::string_view op, ReadFn&& read) {
  std::vector<std::string> out;
  if (n == 0) return out;
  out.reserve(n);
  Datatype mt = Datatype::copy(ft.id());  // a copy of a vlen file type is a memory type
  if (ft.is_vlen_string()) {
    std::vector<char*> buf(n, nullptr);
    VlenReclaim reclaim(mt, n, buf.data());
    call(w, op, read, mt.id(), static_cast<void*>(buf.data()));
    for (const char* p : buf) out.emplace_back(p ? p : "");  // unwritten elements are null
  } else {
    const std::size_t size = ft.size();
    std::vector<char> buf(n * size);
    call(w, op, read, mt.id(), static_cast<void*>(buf.data()));
    const H5T_str_t pad = call(w, "H5Tget_strpad", H5Tget_strpad, ft.id());
    for (hsize_t i = 0; i < n; ++i) {
      const char* s = buf.data() + i * size;
      std::size_t len = size;
      if (pad == H5T_STR_SPACEPAD) {
        while (len > 0 && s[len - 1] == ' ') --len;
      } else {
        len = strnlen(s, size);  // null-terminated or null-padded
      }
      out.emplace_back(s, len);
    }
  }
  return out;
}

void require_no_nul(std::string_view s, const Where& w, std::size_t index) {
  if (s.find('\0') != std::string_view::npos)
    throw Error(w.describe() + ": string " + std::to_string(index) +
                " holds a NUL byte, which HDF5 strings cannot store");
}

// Pointers for a variable-length string write.
std::vector<const char*> vlen_pointers(std::span<const std::string> v, const Where& w) {
  std::vector<const char*> p;
  p.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    require_no_nul(v[i], w, i);
    p.push_back(v[i].c_str());
  }
  return p;
}

// Fixed-length, null-padded bytes of `size` per string.
std::vector<char> fixed_buffer(std::span<const std::string> v, std::size_t size, const Where& w) {
  std::vector<char> buf(v.size() * size, '\0');
  for (std::size_t i = 0; i < v.size(); ++i) {
    require_no_nul(v[i], w, i);
    if (v[i].size() > size)
      throw Error(w.describe() + ": string " + std::to_string(i) + " is " +
                  std::to_string(v[i].size()) + " bytes, the type holds " + std::to_string(size));
    std::memcpy(buf.data() + i * size, v[i].data(), v[i].size());
  }
  return buf;
}

std::string c_str(std::string_view s) {
  return std::string(s);
}

}  // namespace

// ---- objects and attributes ---------------------------------------------------------------

Where Object::child(std::string_view name) const {
  Where w{where_.file, "", ""};
  if (!name.empty() && name.front() == '/')
    w.path = name;
  else if (where_.path.empty() || where_.path == "/")
    w.path = "/" + std::string(name);
  else
    w.path = where_.path + "/" + std::string(name);
  return w;
}

bool Object::has_attr(std::string_view name) const {
  return call(where_, "H5Aexists", H5Aexists, id(), c_str(name).c_str()) > 0;
}

namespace {

herr_t collect_name(hid_t, const char* name, const void*, void* data) noexcept {
  try {
    static_cast<std::vector<std::string>*>(data)->emplace_back(name);
    return 0;
  } catch (...) {
    return -1;
  }
}

herr_t collect_attr_name(hid_t loc, const char* name, const H5A_info_t* info, void* data) noexcept {
  return collect_name(loc, name, info, data);
}

herr_t collect_link_name(hid_t loc, const char* name, const H5L_info_t* info, void* data) noexcept {
  return collect_name(loc, name, info, data);
}

}  // namespace

std::vector<std::string> Object::attr_names() const {
  std::vector<std::string> names;
  call(where_, "H5Aiterate2", H5Aiterate2, id(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
       collect_attr_name, static_cast<void*>(&names));
  return names;
}

Attribute Object::open_attr(std::string_view name) const {
  Where w = where_;
  w.attr = name;
  if (!has_attr(name)) throw Error(where_.describe() + ": no attribute '" + w.attr + "'");
  return Attribute(call(w, "H5Aopen", H5Aopen, id(), w.attr.c_str(), H5P_DEFAULT), w);
}

void Object::delete_attr(std::string_view name) {
  Where w = where_;
  w.attr = name;
  call(w, "H5Adelete", H5Adelete, id(), w.attr.c_str());
}

namespace {

// Creates (or replaces) attribute `name` of `obj` and writes `n` elements from `buf`.
void write_attr_raw(Object& obj, std::string_view name, hid_t file_type, const Dataspace& space,
                    hid_t mem_type, const void* buf, hsize_t n) {
  Where w = obj.where();
  w.attr = name;
  if (obj.has_attr(name)) obj.delete_attr(name);
  Attribute a(call(w, "H5Acreate2", H5Acreate2, obj.id(), w.attr.c_str(), file_type, space.id(),
                   H5P_DEFAULT, H5P_DEFAULT),
              w);
  if (n > 0) call(w, "H5Awrite", H5Awrite, a.id(), mem_type, buf);
  a.close(w);
}

template <class T>
void write_attr_numbers(Object& obj, std::string_view name, hid_t file_type, std::span<const T> v) {
  Datatype mt = memory_type<T>();
  write_attr_raw(obj, name, file_type, Dataspace::simple({v.size()}), mt.id(), v.data(), v.size());
}

}  // namespace

void Object::write_attr(std::string_view name, std::string_view value) {
  Where w = where_;
  w.attr = name;
  require_no_nul(value, w, 0);
  const std::string s(value);
  const char* p = s.c_str();
  Datatype t = Datatype::vlen_utf8();
  write_attr_raw(*this, name, t.id(), Dataspace::scalar(), t.id(), &p, 1);
}

void Object::write_attr(std::string_view name, const std::vector<std::string>& values) {
  Where w = where_;
  w.attr = name;
  std::vector<const char*> p = vlen_pointers(values, w);
  Datatype t = Datatype::vlen_utf8();
  write_attr_raw(*this, name, t.id(), Dataspace::simple({values.size()}), t.id(), p.data(),
                 p.size());
}

void Object::write_attr(std::string_view name, std::int64_t value) {
  Datatype mt = memory_type<std::int64_t>();
  write_attr_raw(*this, name, H5T_STD_I64LE, Dataspace::scalar(), mt.id(), &value, 1);
}

void Object::write_attr(std::string_view name, double value) {
  Datatype mt = memory_type<double>();
  write_attr_raw(*this, name, H5T_IEEE_F64LE, Dataspace::scalar(), mt.id(), &value, 1);
}

void Object::write_attr(std::string_view name, std::span<const float> values) {
  write_attr_numbers(*this, name, H5T_IEEE_F32LE, values);
}

void Object::write_attr(std::string_view name, std::span<const double> values) {
  write_attr_numbers(*this, name, H5T_IEEE_F64LE, values);
}

void Object::write_attr(std::string_view name, std::span<const std::int64_t> values) {
  write_attr_numbers(*this, name, H5T_STD_I64LE, values);
}

void Object::write_attr_fixed(std::string_view name, std::string_view value) {
  Where w = where_;
  w.attr = name;
  const std::string s(value);
  std::vector<char> buf =
      fixed_buffer(std::span<const std::string>(&s, 1), s.size() ? s.size() : 1, w);
  Datatype t = Datatype::fixed_string(s.size());
  write_attr_raw(*this, name, t.id(), Dataspace::scalar(), t.id(), buf.data(), 1);
}

void Object::write_attr_fixed(std::string_view name, const std::vector<std::string>& values) {
  Where w = where_;
  w.attr = name;
  std::size_t size = 1;
  for (const auto& v : values) size = std::max(size, v.size());
  std::vector<char> buf = fixed_buffer(values, size, w);
  Datatype t = Datatype::fixed_string(size);
  write_attr_raw(*this, name, t.id(), Dataspace::simple({values.size()}), t.id(), buf.data(),
                 values.size());
}

namespace {

template <class V>
std::vector<V> read_attr_numbers(const Attribute& a, bool empty_ok) {
  const hsize_t n = a.space().elements();
  std::vector<V> out(n);
  if (n == 0) {
    if (empty_ok) return out;
    throw Error(a.where().describe() + ": holds no value, want one");
  }
  Datatype ft = a.type();
  require_readable<V>(ft, a.where());
  Datatype mt = memory_type<V>();
  call(a.where(), "H5Aread", H5Aread, a.id(), mt.id(), static_cast<void*>(out.data()));
  return out;
}

std::vector<std::string> read_attr_strings(const Attribute& a) {
  const hsize_t n = a.space().elements();
  if (n == 0) return {};  // Keras writes an empty list as a float64 array of shape (0,)
  Datatype ft = a.type();
  require_readable<std::string>(ft, a.where());
  return read_strings(ft, n, a.where(), "H5Aread",
                      [&](hid_t mt, void* buf) { return H5Aread(a.id(), mt, buf); });
}

template <class V>
V only(std::vector<V> v, const Where& w) {
  if (v.size() != 1)
    throw Error(w.describe() + ": holds " + std::to_string(v.size()) + " values, want one");
  return std::move(v.front());
}

}  // namespace

template <class T>
T Object::read_attr(std::string_view name) const {
  Attribute a = open_attr(name);
  if constexpr (std::is_same_v<T, std::string>) {
    return only(read_attr_strings(a), a.where());
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    return read_attr_strings(a);
  } else if constexpr (std::is_arithmetic_v<T>) {
    return only(read_attr_numbers<T>(a, false), a.where());
  } else {
    return read_attr_numbers<typename T::value_type>(a, true);
  }
}

template std::string Object::read_attr<std::string>(std::string_view) const;
template std::vector<std::string> Object::read_attr<std::vector<std::string>>(
    std::string_view) const;
template std::int64_t Object::read_attr<std::int64_t>(std::string_view) const;
template double Object::read_attr<double>(std::string_view) const;
template std::vector<float> Object::read_attr<std::vector<float>>(std::string_view) const;
template std::vector<double> Object::read_attr<std::vector<double>>(std::string_view) const;
template std::vector<std::int64_t> Object::read_attr<std::vector<std::int64_t>>(
    std::string_view) const;

// ---- datasets -----------------------------------------------------------------------------

Dataspace Dataset::space() const {
  return Dataspace(call(where_, "H5Dget_space", H5Dget_space, id()));
}

Datatype Dataset::type() const {
  return Datatype(call(where_, "H5Dget_type", H5Dget_type, id()));
}

Dims Dataset::dims() const {
  return space().dims();
}

hsize_t Dataset::rows() const {
  const Dims d = dims();
  if (d.empty()) throw Error(where_.describe() + ": is a scalar, it has no rows");
  return d[0];
}

hsize_t Dataset::row_elements() const {
  const Dims d = dims();
  if (d.empty()) throw Error(where_.describe() + ": is a scalar, it has no rows");
  hsize_t n = 1;
  for (std::size_t i = 1; i < d.size(); ++i) n *= d[i];
  return n;
}

Dims Dataset::chunk_dims() const {
  PropList dcpl(call(where_, "H5Dget_create_plist", H5Dget_create_plist, id()));
  if (call(where_, "H5Pget_layout", H5Pget_layout, dcpl.id()) != H5D_CHUNKED) return {};
  Dims c(static_cast<std::size_t>(rank()));
  call(where_, "H5Pget_chunk", H5Pget_chunk, dcpl.id(), static_cast<int>(c.size()), c.data());
  return c;
}

void Dataset::set_extent(const Dims& dims) {
  if (dims.size() != static_cast<std::size_t>(rank()))
    throw Error(where_.describe() + ": set_extent with rank " + std::to_string(dims.size()) +
                ", the dataset has rank " + std::to_string(rank()));
  call(where_, "H5Dset_extent", H5Dset_extent, id(), dims.data());
}

namespace {

template <class T>
std::vector<T> read_selection(const Dataset& d, hid_t mem_space, hid_t file_space, hsize_t n) {
  Datatype ft = d.type();
  require_readable<T>(ft, d.where());
  if constexpr (std::is_same_v<T, std::string>) {
    return read_strings(ft, n, d.where(), "H5Dread", [&](hid_t mt, void* buf) {
      return H5Dread(d.id(), mt, mem_space, file_space, H5P_DEFAULT, buf);
    });
  } else {
    std::vector<T> out(n);
    if (n == 0) return out;
    Datatype mt = memory_type<T>();
    call(d.where(), "H5Dread", H5Dread, d.id(), mt.id(), mem_space, file_space, H5P_DEFAULT,
         static_cast<void*>(out.data()));
    return out;
  }
}

template <class T>
void write_selection(Dataset& d, hid_t mem_space, hid_t file_space, std::span<const T> data) {
  if (data.empty()) return;
  Datatype ft = d.type();
  require_writable<T>(ft, d.where());
  if constexpr (std::is_same_v<T, std::string>) {
    Datatype mt = Datatype::copy(ft.id());
    if (ft.is_vlen_string()) {
      std::vector<const char*> p = vlen_pointers(data, d.where());
      call(d.where(), "H5Dwrite", H5Dwrite, d.id(), mt.id(), mem_space, file_space, H5P_DEFAULT,
           static_cast<const void*>(p.data()));
    } else {
      std::vector<char> buf = fixed_buffer(data, ft.size(), d.where());
      call(d.where(), "H5Dwrite", H5Dwrite, d.id(), mt.id(), mem_space, file_space, H5P_DEFAULT,
           static_cast<const void*>(buf.data()));
    }
  } else {
    Datatype mt = memory_type<T>();
    call(d.where(), "H5Dwrite", H5Dwrite, d.id(), mt.id(), mem_space, file_space, H5P_DEFAULT,
         static_cast<const void*>(data.data()));
  }
}

// The file space of `d` with rows [start, start + count) selected, and the matching memory
// space; checks the rows lie within the dataset.
std::pair<Dataspace, Dataspace> select_rows(const Dataset& d, hsize_t start, hsize_t count,
                                            std::string_view what) {
  Dataspace fs = d.space();
  Dims dims = fs.dims();
  if (dims.empty()) throw Error(d.where().describe() + ": is a scalar, it has no rows");
  if (start > dims[0] || count > dims[0] - start)
    throw Error(d.where().describe() + ": " + std::string(what) + " rows [" +
                std::to_string(start) + ", " + std::to_string(start + count) +
                ") out of range: the dataset has " + std::to_string(dims[0]) + " rows");
  Dims offset(dims.size(), 0);
  offset[0] = start;
  dims[0] = count;
  call(d.where(), "H5Sselect_hyperslab", H5Sselect_hyperslab, fs.id(), H5S_SELECT_SET,
       offset.data(), nullptr, dims.data(), nullptr);
  return {std::move(fs), Dataspace::simple(dims)};
}

hsize_t whole_rows(const Dataset& d, std::size_t values) {
  const hsize_t per_row = d.row_elements();
  if (per_row == 0 || values % per_row != 0)
    throw Error(d.where().describe() + ": " + std::to_string(values) +
                " values are not a whole number of rows of " + std::to_string(per_row));
  return values / per_row;
}

}  // namespace

template <class T>
std::vector<T> Dataset::read() const {
  return read_selection<T>(*this, H5S_ALL, H5S_ALL, space().elements());
}

template <class T>
std::vector<T> Dataset::read_rows(hsize_t start, hsize_t count) const {
  auto [fs, ms] = select_rows(*this, start, count, "read of");
  if (count == 0) return {};
  return read_selection<T>(*this, ms.id(), fs.id(), count * row_elements());
}

template <class T>
void Dataset::read_rows_into(hsize_t start, hsize_t count, std::span<T> out) const {
  static_assert(!std::is_same_v<T, std::string>, "read_rows_into is for numbers");
  auto [fs, ms] = select_rows(*this, start, count, "read of");
  const hsize_t n = count * row_elements();
  if (out.size() != n)
    throw Error(where_.describe() + ": read of " + std::to_string(n) + " values into a buffer of " +
                std::to_string(out.size()));
  if (n == 0) return;
  Datatype ft = type();
  require_readable<T>(ft, where_);
  Datatype mt = memory_type<T>();
  call(where_, "H5Dread", H5Dread, id(), mt.id(), ms.id(), fs.id(), H5P_DEFAULT,
       static_cast<void*>(out.data()));
}

template <class T>
void Dataset::write(std::span<const T> data) {
  const hsize_t n = space().elements();
  if (data.size() != n)
    throw Error(where_.describe() + ": write of " + std::to_string(data.size()) +
                " values into a dataset of " + std::to_string(n));
  write_selection<T>(*this, H5S_ALL, H5S_ALL, data);
}

template <class T>
void Dataset::write_rows(hsize_t start, std::span<const T> data) {
  if (data.empty()) return;
  const hsize_t count = whole_rows(*this, data.size());
  auto [fs, ms] = select_rows(*this, start, count, "write of");
  write_selection<T>(*this, ms.id(), fs.id(), data);
}

template <class T>
hsize_t Dataset::append_rows(std::span<const T> data) {
  Dataspace s = space();
  Dims dims = s.dims();
  if (dims.empty()) throw Error(where_.describe() + ": is a scalar, it has no rows");
  const hsize_t count = data.empty() ? 0 : whole_rows(*this, data.size());
  if (count == 0) return dims[0];
  const hsize_t max_rows = s.max_dims()[0];
  if (max_rows != unlimited && dims[0] + count > max_rows)
    throw Error(where_.describe() + ": cannot grow to " + std::to_string(dims[0] + count) +
                " rows, its maximum is " + std::to_string(max_rows) +
                " (create it with an unlimited first dimension)");
  if constexpr (std::is_same_v<T, std::string>) {
    for (std::size_t i = 0; i < data.size(); ++i) require_no_nul(data[i], where_, i);
  }
  const Dims old = dims;
  dims[0] += count;
  set_extent(dims);
  try {
    write_rows<T>(old[0], data);
  } catch (...) {
    try {
      set_extent(old);  // leave no half-written rows behind
    } catch (...) {
    }
    throw;
  }
  return dims[0];
}

#define TL_H5_DATASET_IO(T)                                              \
  template std::vector<T> Dataset::read<T>() const;                      \
  template std::vector<T> Dataset::read_rows<T>(hsize_t, hsize_t) const; \
  template void Dataset::write<T>(std::span<const T>);                   \
  template void Dataset::write_rows<T>(hsize_t, std::span<const T>);     \
  template hsize_t Dataset::append_rows<T>(std::span<const T>);
TL_H5_DATASET_IO(float)
TL_H5_DATASET_IO(double)
TL_H5_DATASET_IO(Half)
TL_H5_DATASET_IO(std::int8_t)
TL_H5_DATASET_IO(std::uint8_t)
TL_H5_DATASET_IO(std::int32_t)
TL_H5_DATASET_IO(std::int64_t)
TL_H5_DATASET_IO(std::string)
#undef TL_H5_DATASET_IO

template void Dataset::read_rows_into<float>(hsize_t, hsize_t, std::span<float>) const;
template void Dataset::read_rows_into<double>(hsize_t, hsize_t, std::span<double>) const;
template void Dataset::read_rows_into<Half>(hsize_t, hsize_t, std::span<Half>) const;
template void Dataset::read_rows_into<std::int8_t>(hsize_t, hsize_t, std::span<std::int8_t>) const;
template void Dataset::read_rows_into<std::uint8_t>(hsize_t, hsize_t,
                                                    std::span<std::uint8_t>) const;
template void Dataset::read_rows_into<std::int32_t>(hsize_t, hsize_t,
                                                    std::span<std::int32_t>) const;
template void Dataset::read_rows_into<std::int64_t>(hsize_t, hsize_t,
                                                    std::span<std::int64_t>) const;

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
