// The HDF5 wrapper's datasets: creation, typed reads and writes, appending rows.
#include "tl/hdf5.hpp"

#include <algorithm>
#include <cstring>
#include <system_error>

#include "hdf5_typed_io.hpp"
#include "tl/error.hpp"

namespace tl::h5 {

using namespace detail;

namespace fs = std::filesystem;

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

}  // namespace tl::h5
