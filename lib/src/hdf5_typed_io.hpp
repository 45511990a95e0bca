// Internal to the HDF5 wrapper: the typed reads and writes that attributes (hdf5_objects.cpp)
// and datasets (hdf5_datasets.cpp) share — the memory type of each C++ type, the checks that a
// file type can be read into it or written from it, and string buffers (variable or fixed
// length, no embedded NUL).
//
//   Datatype mt = detail::memory_type<float>();
//   detail::require_readable<float>(file_type, where);   // Error naming the object otherwise
#pragma once

#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "tl/error.hpp"
#include "tl/hdf5.hpp"

namespace tl::h5::detail {

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

inline void require_no_nul(std::string_view s, const Where& w, std::size_t index) {
  if (s.find('\0') != std::string_view::npos)
    throw Error(w.describe() + ": string " + std::to_string(index) +
                " holds a NUL byte, which HDF5 strings cannot store");
}

// Pointers for a variable-length string write.
inline std::vector<const char*> vlen_pointers(std::span<const std::string> v, const Where& w) {
  std::vector<const char*> p;
  p.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    require_no_nul(v[i], w, i);
    p.push_back(v[i].c_str());
  }
  return p;
}

// Fixed-length, null-padded bytes of `size` per string.
inline std::vector<char> fixed_buffer(std::span<const std::string> v, std::size_t size,
                                      const Where& w) {
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

inline std::string c_str(std::string_view s) {
  return std::string(s);
}

// An H5Aiterate2 / H5Literate2 callback that appends each name to a std::vector<std::string>.
inline herr_t collect_name(hid_t, const char* name, const void*, void* data) noexcept {
  try {
    static_cast<std::vector<std::string>*>(data)->emplace_back(name);
    return 0;
  } catch (...) {
    return -1;
  }
}

}  // namespace tl::h5::detail
