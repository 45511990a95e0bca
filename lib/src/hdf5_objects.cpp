// The HDF5 wrapper's objects and their attributes.
#include "tl/hdf5.hpp"

#include <algorithm>
#include <cstring>
#include <system_error>

#include "hdf5_typed_io.hpp"
#include "tl/error.hpp"

namespace tl::h5 {

using namespace detail;

namespace fs = std::filesystem;

// ---- objects and attributes ---------------------------------------------------------------

Where Object::child(std::string_view name) const {
  Where w{where_.file, "", ""};
  if (!name.empty() && name.front() == '/')
    w.path = name;
  else {  // appended in place: GCC 12's -Wrestrict misfires on "/" + std::string (bug 105329)
    if (!where_.path.empty() && where_.path != "/") w.path = where_.path;
    w.path.append("/").append(name);
  }
  return w;
}

bool Object::has_attr(std::string_view name) const {
  return call(where_, "H5Aexists", H5Aexists, id(), c_str(name).c_str()) > 0;
}

namespace {

herr_t collect_attr_name(hid_t loc, const char* name, const H5A_info_t* info, void* data) noexcept {
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

}  // namespace tl::h5
