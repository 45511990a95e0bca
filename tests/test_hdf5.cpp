// tl::h5, the checked HDF5 wrapper: round trips of every attribute and dataset type, growing
// datasets, strings, file images, and the errors (each names the file and the object).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <thread>

#include "keras_file_writer.hpp"
#include "tl/error.hpp"
#include "tl/hdf5.hpp"

namespace tl {
namespace {

using testing::error_of;
using testing::TempDir;

std::uint32_t bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

const std::vector<std::string> kUnicode = {
    "", "ascii", "Grüße", "日本語/ファイル.jpg", "emoji 🙂", std::string(300, 'x')};

TEST(H5Attributes, RoundTripEveryType) {
  TempDir dir;
  const auto path = dir / "attrs.h5";
  const std::vector<float> floats{0.1f, -0.0f, std::numeric_limits<float>::infinity(), 1e-45f};
  const std::vector<double> doubles{0.1, -1e300, 5e-324};
  const std::vector<std::int64_t> ints{std::numeric_limits<std::int64_t>::min(), -1, 0,
                                       std::numeric_limits<std::int64_t>::max()};
  {
    auto f = h5::File::create(path);
    f.write_attr("s", "Grüße 🙂");
    f.write_attr("list", kUnicode);
    f.write_attr("i64", std::int64_t{-9007199254740993});
    f.write_attr("int", 7);  // any integral type goes to int64
    f.write_attr("d", 0.1);
    f.write_attr("floats", floats);
    f.write_attr("doubles", doubles);
    f.write_attr("ints", ints);
    f.write_attr("empty", std::vector<std::string>{});
    f.write_attr("empty_f64", std::span<const double>{});
    f.write_attr_fixed("fixed", std::vector<std::string>{"input_1", "block1_conv1", ""});
    f.write_attr_fixed("fixed_scalar", "2.1.5");
    auto g = f.create_group("a/b");  // parents are created
    g.write_attr("on_group", "yes");
    f.write_attr("s", "replaced");  // writing again replaces
  }
  auto f = h5::File::open(path);
  EXPECT_EQ(f.read_attr<std::string>("s"), "replaced");
  EXPECT_EQ(f.read_attr<std::vector<std::string>>("list"), kUnicode);
  EXPECT_EQ(f.read_attr<std::int64_t>("i64"), -9007199254740993);
  EXPECT_EQ(f.read_attr<std::int64_t>("int"), 7);
  EXPECT_EQ(f.read_attr<double>("d"), 0.1);
  EXPECT_EQ(f.read_attr<double>("int"), 7.0);  // integers read as floating point
  const auto fl = f.read_attr<std::vector<float>>("floats");
  ASSERT_EQ(fl.size(), floats.size());
  for (std::size_t i = 0; i < fl.size(); ++i) EXPECT_EQ(bits_of(fl[i]), bits_of(floats[i])) << i;
  EXPECT_EQ(f.read_attr<std::vector<double>>("doubles"), doubles);
  EXPECT_EQ(f.read_attr<std::vector<std::int64_t>>("ints"), ints);
  EXPECT_TRUE(f.read_attr<std::vector<std::string>>("empty").empty());
  EXPECT_TRUE(f.read_attr<std::vector<std::string>>("empty_f64").empty());  // Keras's []
  EXPECT_TRUE(f.read_attr<std::vector<float>>("empty_f64").empty());
  EXPECT_EQ(f.read_attr<std::vector<std::string>>("fixed"),
            (std::vector<std::string>{"input_1", "block1_conv1", ""}));
  EXPECT_EQ(f.read_attr<std::string>("fixed_scalar"), "2.1.5");
  EXPECT_EQ(f.open_group("a/b").read_attr<std::string>("on_group"), "yes");

  EXPECT_TRUE(f.has_attr("fixed"));
  EXPECT_FALSE(f.has_attr("nope"));
  const auto names = f.attr_names();
  EXPECT_EQ(names.size(), 12u);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
}

TEST(H5Attributes, FixedStringTypeIsNumpyBytes) {
  TempDir dir;
  auto f = h5::File::create(dir / "a.h5");
  f.write_attr_fixed("names", std::vector<std::string>{"ab", "block1_conv1"});
  h5::Datatype t = f.open_attr("names").type();
  EXPECT_EQ(t.type_class(), H5T_STRING);
  EXPECT_FALSE(t.is_vlen_string());
  EXPECT_EQ(t.size(), 12u);  // the longest name
  EXPECT_EQ(H5Tget_strpad(t.id()), H5T_STR_NULLPAD);
  EXPECT_EQ(f.open_attr("names").space().dims(), h5::Dims{2});
}

TEST(H5Attributes, ErrorsNameFileObjectAndAttribute) {
  TempDir dir;
  const auto path = dir / "a.h5";
  auto f = h5::File::create(path);
  auto g = f.create_group("layer");
  g.write_attr("s", "text");
  g.write_attr("v", std::vector<float>{1, 2});
  g.write_attr("f", 1.5);

  std::string m = error_of([&] { g.read_attr<std::string>("missing"); });
  EXPECT_HAS(m, path.string());
  EXPECT_HAS(m, "/layer");
  EXPECT_HAS(m, "no attribute 'missing'");

  m = error_of([&] { g.read_attr<std::int64_t>("s"); });
  EXPECT_HAS(m, "attribute 's'");
  EXPECT_HAS(m, "cannot read it as int64");
  m = error_of([&] { g.read_attr<std::int64_t>("f"); });  // no silent float -> int
  EXPECT_HAS(m, "holds float64");
  m = error_of([&] { g.read_attr<double>("v"); });
  EXPECT_HAS(m, "holds 2 values, want one");
  m = error_of([&] { g.read_attr<std::vector<std::string>>("v"); });
  EXPECT_HAS(m, "cannot read it as string");
  m = error_of([&] { g.write_attr("nul", std::string("a\0b", 3)); });
  EXPECT_HAS(m, "NUL");
}

TEST(H5Datasets, RoundTripEveryNumericType) {
  TempDir dir;
  const auto path = dir / "d.h5";
  const std::vector<float> f32{1.5f, -0.0f, 3.4028235e38f, 1e-45f, 0.1f, -7.25f};
  const std::vector<double> f64{0.1, 1e-310, -2.5, 1e300, 0, 42};
  const std::vector<std::int8_t> i8{-128, -1, 0, 1, 100, 127};
  const std::vector<std::uint8_t> u8{0, 1, 2, 127, 128, 255};
  const std::vector<std::int32_t> i32{std::numeric_limits<std::int32_t>::min(), -1, 0, 1, 2,
                                      std::numeric_limits<std::int32_t>::max()};
  const std::vector<std::int64_t> i64{std::numeric_limits<std::int64_t>::min(), -1, 0, 1, 2,
                                      std::numeric_limits<std::int64_t>::max()};
  {
    auto f = h5::File::create(path);
    f.create_dataset("f32", h5::DType::f32, {2, 3}).write(f32);
    f.create_dataset("f64", h5::DType::f64, {6}).write(f64);
    f.create_dataset("i8", h5::DType::i8, {3, 2}).write(i8);
    f.create_dataset("u8", h5::DType::u8, {6}).write(u8);
    f.create_dataset("i32", h5::DType::i32, {6}).write(i32);
    f.create_dataset("i64", h5::DType::i64, {1, 6}).write(i64);
    f.create_dataset("deflated", h5::DType::f32, {2, 3}, {.chunk = {1, 3}, .deflate = 4})
        .write(f32);
  }
  auto f = h5::File::open(path);
  auto d = f.open_dataset("f32");
  EXPECT_EQ(d.dtype(), h5::DType::f32);
  EXPECT_EQ(d.dims(), (h5::Dims{2, 3}));
  EXPECT_EQ(d.rank(), 2);
  EXPECT_TRUE(d.chunk_dims().empty());
  const auto rf = d.read<float>();
  ASSERT_EQ(rf.size(), f32.size());
  for (std::size_t i = 0; i < rf.size(); ++i) EXPECT_EQ(bits_of(rf[i]), bits_of(f32[i])) << i;
  EXPECT_EQ(f.open_dataset("f64").read<double>(), f64);
  EXPECT_EQ(f.open_dataset("i8").read<std::int8_t>(), i8);
  EXPECT_EQ(f.open_dataset("u8").read<std::uint8_t>(), u8);
  EXPECT_EQ(f.open_dataset("i32").read<std::int32_t>(), i32);
  EXPECT_EQ(f.open_dataset("i64").read<std::int64_t>(), i64);
  EXPECT_EQ(f.open_dataset("i8").dtype(), h5::DType::i8);
  EXPECT_EQ(f.open_dataset("u8").dtype(), h5::DType::u8);
  EXPECT_EQ(f.open_dataset("i32").dtype(), h5::DType::i32);
  EXPECT_EQ(f.open_dataset("i64").dtype(), h5::DType::i64);
  EXPECT_EQ(f.open_dataset("f64").dtype(), h5::DType::f64);
  EXPECT_EQ(f.open_dataset("deflated").read<float>(), f32);
  EXPECT_EQ(f.open_dataset("deflated").chunk_dims(), (h5::Dims{1, 3}));
  // HDF5's conversions: float64 -> float32 rounds to nearest; integers widen.
  const auto as_float = f.open_dataset("f64").read<float>();
  for (std::size_t i = 0; i < f64.size(); ++i) EXPECT_EQ(as_float[i], static_cast<float>(f64[i]));
  EXPECT_EQ(f.open_dataset("i32").read<std::int64_t>()[0],
            std::numeric_limits<std::int32_t>::min());
  // No meaning-changing conversions.
  EXPECT_HAS(error_of([&] { f.open_dataset("f32").read<std::int32_t>(); }),
             "holds float32, cannot read it as int32");
  EXPECT_HAS(error_of([&] { f.open_dataset("f32").read<std::string>(); }),
             "cannot read it as string");
}

TEST(H5Datasets, Float16IsIeeeHalfAsH5pyWritesIt) {
  TempDir dir;
  auto f = h5::File::create(dir / "h.h5");
  auto d = f.create_dataset("h", h5::DType::f16, {65536});
  EXPECT_EQ(d.dtype(), h5::DType::f16);
  EXPECT_EQ(d.type().name(), "float16");
  EXPECT_EQ(d.type().size(), 2u);
  std::size_t spos, epos, esize, mpos, msize;
  ASSERT_GE(H5Tget_fields(d.type().id(), &spos, &epos, &esize, &mpos, &msize), 0);
  EXPECT_EQ((std::vector<std::size_t>{spos, epos, esize, mpos, msize}),
            (std::vector<std::size_t>{15, 10, 5, 0, 10}));
  EXPECT_EQ(H5Tget_ebias(d.type().id()), 15u);

  // Raw bits go in and out untouched; every half converts to float exactly.
  std::vector<h5::Half> all(65536);
  for (std::uint32_t i = 0; i < all.size(); ++i) all[i].bits = static_cast<std::uint16_t>(i);
  d.write(all);
  EXPECT_EQ(d.read<h5::Half>(), all);
  const auto fl = d.read<float>();
  EXPECT_EQ(fl[0x3c00], 1.0f);
  EXPECT_EQ(fl[0xc000], -2.0f);
  EXPECT_EQ(fl[0x7bff], 65504.0f);
  EXPECT_EQ(fl[0x0001], 0x1p-24f);  // smallest subnormal
  EXPECT_EQ(bits_of(fl[0x8000]), 0x80000000u);
  EXPECT_TRUE(std::isinf(fl[0x7c00]));
  EXPECT_TRUE(std::isnan(fl[0x7e00]));

  // float -> float16 by HDF5 1.10.8: exact for representable values, but NOT IEEE rounding:
  // ties round up in magnitude (IEEE: to even), [65520, 65536) gives 65504 (IEEE: Inf), and
  // subnormal results are not rounded to nearest. Writers that need IEEE results convert
  // themselves and write h5::Half. These pins notice a change of HDF5's behaviour.
  auto e = f.create_dataset("e", h5::DType::f16, {8});
  e.write(std::vector<float>{0.5f, 65504.0f, 1.0f + 3 * 0x1p-11f, 1.0f + 0x1p-11f, 65520.0f, 1e-7f,
                             0x1p-25f, -(1.0f + 0x1p-11f)});
  const auto eb = e.read<h5::Half>();
  EXPECT_EQ(eb[0].bits, 0x3800);
  EXPECT_EQ(eb[1].bits, 0x7bff);
  EXPECT_EQ(eb[2].bits, 0x3c02);  // a tie, up = even
  EXPECT_EQ(eb[3].bits, 0x3c01);  // a tie: IEEE gives 0x3c00
  EXPECT_EQ(eb[4].bits, 0x7bff);  // IEEE: 0x7c00 (Inf)
  EXPECT_EQ(eb[5].bits, 0x0001);  // IEEE: 0x0002
  EXPECT_EQ(eb[6].bits, 0x0001);  // IEEE: 0x0000
  EXPECT_EQ(eb[7].bits, 0xbc01);  // IEEE: 0xbc00
}

TEST(H5Datasets, AppendRowsFlushAndResume) {
  TempDir dir;
  const auto path = dir / "grow.h5";
  auto rows = [](int first, int n) {  // rows of 4 floats: r.0, r.1, r.2, r.3
    std::vector<float> v;
    for (int r = first; r < first + n; ++r)
      for (int c = 0; c < 4; ++c) v.push_back(static_cast<float>(r) + 0.1f * static_cast<float>(c));
    return v;
  };
  {
    auto f = h5::File::create(path, h5::Create::truncate, h5::Access::appender);
    auto d = f.create_rows_dataset("feats", h5::DType::f32, {2, 2}, 3);
    EXPECT_EQ(d.dims(), (h5::Dims{0, 2, 2}));
    EXPECT_EQ(d.chunk_dims(), (h5::Dims{3, 2, 2}));
    EXPECT_EQ(d.space().max_dims(), (h5::Dims{h5::unlimited, 2, 2}));
    EXPECT_EQ(d.row_elements(), 4u);
    EXPECT_EQ(d.append_rows(rows(0, 2)), 2u);
    f.flush();
    EXPECT_EQ(d.append_rows(rows(2, 5)), 7u);
    EXPECT_EQ(d.append_rows(std::vector<float>{}), 7u);
    f.flush();
    auto labels = f.create_rows_dataset("labels", h5::DType::i32, {}, 8);
    labels.append_rows(std::vector<std::int32_t>{3, 1, 4});
    auto q = f.create_rows_dataset("q", h5::DType::i8, {2}, 8);
    q.append_rows(std::vector<std::int8_t>{-1, 2, -3, 4});
  }
  {  // resume: reopen read-write and keep appending
    auto f = h5::File::open(path, h5::Mode::read_write, h5::Access::appender);
    auto d = f.open_dataset("feats");
    EXPECT_EQ(d.rows(), 7u);
    EXPECT_EQ(d.append_rows(rows(7, 1)), 8u);
    d.write_rows(1, rows(100, 1));  // overwrite row 1
    f.open_dataset("labels").append_rows(std::vector<std::int32_t>{1, 5});
    f.flush();
  }
  auto f = h5::File::open(path, h5::Mode::read_only, h5::Access::reader);
  auto d = f.open_dataset("feats");
  std::vector<float> want = rows(0, 8);
  const auto r100 = rows(100, 1);
  std::copy(r100.begin(), r100.end(), want.begin() + 4);
  EXPECT_EQ(d.read<float>(), want);
  EXPECT_EQ(d.read_rows<float>(1, 3), std::vector<float>(want.begin() + 4, want.begin() + 16));
  EXPECT_EQ(d.read_rows<float>(8, 0), std::vector<float>{});
  std::vector<float> buf(8, -1.0f);
  d.read_rows_into<float>(6, 2, buf);
  EXPECT_EQ(buf, std::vector<float>(want.begin() + 24, want.end()));
  EXPECT_HAS(error_of([&] { d.read_rows_into<float>(6, 1, std::span<float>(buf)); }),
             "read of 4 values into a buffer of 8");
  EXPECT_EQ(f.open_dataset("labels").read<std::int32_t>(),
            (std::vector<std::int32_t>{3, 1, 4, 1, 5}));
  EXPECT_EQ(f.open_dataset("q").read_rows<std::int8_t>(1, 1), (std::vector<std::int8_t>{-3, 4}));
}

TEST(H5Datasets, GrowingFloat16Features) {
  TempDir dir;
  auto f = h5::File::create(dir / "h.h5");
  auto d = f.create_rows_dataset("feats", h5::DType::f16, {3}, 2);
  d.append_rows(std::vector<float>{1, 2, 3, 0.5f, -0.25f, 1024});
  d.append_rows(std::vector<h5::Half>{{0x3c00}, {0x4000}, {0x4200}});  // 1, 2, 3 as raw bits
  EXPECT_EQ(d.read<float>(), (std::vector<float>{1, 2, 3, 0.5f, -0.25f, 1024, 1, 2, 3}));
}

TEST(H5Datasets, RowErrorsNameFileAndDataset) {
  TempDir dir;
  const auto path = dir / "e.h5";
  auto f = h5::File::create(path);
  auto fixed = f.create_dataset("fixed", h5::DType::f32, {2, 3});
  auto grow = f.create_rows_dataset("grow", h5::DType::f32, {3}, 4);
  std::string m = error_of([&] { fixed.append_rows(std::vector<float>(3)); });
  EXPECT_HAS(m, path.string());
  EXPECT_HAS(m, "/fixed");
  EXPECT_HAS(m, "unlimited");
  m = error_of([&] { grow.append_rows(std::vector<float>(4)); });
  EXPECT_HAS(m, "/grow");
  EXPECT_HAS(m, "not a whole number of rows of 3");
  m = error_of([&] { fixed.write_rows(1, std::vector<float>(6)); });
  EXPECT_HAS(m, "rows [1, 3) out of range: the dataset has 2 rows");
  m = error_of([&] { fixed.read_rows<float>(2, 1); });
  EXPECT_HAS(m, "out of range");
  m = error_of([&] { fixed.write(std::vector<float>(5)); });
  EXPECT_HAS(m, "write of 5 values into a dataset of 6");
  fixed.write(std::vector<std::int32_t>{1, 2, 3, 4, 5, 6});  // integers into floats: fine
  EXPECT_EQ(fixed.read<float>(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  m = error_of(
      [&] { f.create_dataset("ints", h5::DType::i32, {1}).write(std::vector<float>{1.5f}); });
  EXPECT_HAS(m, "cannot write float32 into it");  // no silent truncation
}

TEST(H5Datasets, StringListsGrowAndKeepUnicode) {
  TempDir dir;
  const auto path = dir / "s.h5";
  {
    auto f = h5::File::create(path);
    auto d = f.create_rows_dataset("paths", h5::DType::str, {}, 4);
    EXPECT_EQ(d.dtype(), h5::DType::str);
    EXPECT_TRUE(d.type().is_vlen_string());
    d.append_rows(std::vector<std::string>(kUnicode.begin(), kUnicode.begin() + 2));
    d.append_rows(std::vector<std::string>(kUnicode.begin() + 2, kUnicode.end()));
    auto c = f.create_dataset("classes", h5::DType::str, {2});
    c.write(std::vector<std::string>{"cat", "dög"});
    EXPECT_HAS(error_of([&] { d.append_rows(std::vector<std::string>{std::string("a\0b", 3)}); }),
               "NUL");
    EXPECT_EQ(d.rows(), kUnicode.size());  // a failed append adds no rows
  }
  auto f = h5::File::open(path);
  auto d = f.open_dataset("paths");
  EXPECT_EQ(d.read<std::string>(), kUnicode);
  EXPECT_EQ(d.read_rows<std::string>(2, 2),
            (std::vector<std::string>{"Grüße", "日本語/ファイル.jpg"}));
  EXPECT_EQ(f.open_dataset("classes").read<std::string>(),
            (std::vector<std::string>{"cat", "dög"}));
  H5T_cset_t cset = H5Tget_cset(d.type().id());
  EXPECT_EQ(cset, H5T_CSET_UTF8);
}

TEST(H5Paths, ExistsWalksLinkByLink) {
  TempDir dir;
  const auto path = dir / "p.h5";
  auto f = h5::File::create(path);
  f.create_dataset("g/h/d", h5::DType::f32, {1});
  f.create_dataset("block1_conv1/block1_conv1/kernel:0", h5::DType::f32, {1});
  h5::call(f.where(), "H5Lcreate_soft", H5Lcreate_soft, "/nowhere", f.id(), "dangling", H5P_DEFAULT,
           H5P_DEFAULT);
  EXPECT_TRUE(f.exists("g"));
  EXPECT_TRUE(f.exists("g/h/d"));
  EXPECT_TRUE(f.exists("/g/h/d"));
  EXPECT_TRUE(f.exists("/"));
  EXPECT_TRUE(f.exists("block1_conv1/block1_conv1/kernel:0"));
  EXPECT_FALSE(f.exists(""));
  EXPECT_FALSE(f.exists("x"));
  EXPECT_FALSE(f.exists("x/y/z"));       // missing parent: no HDF5 error
  EXPECT_FALSE(f.exists("g/h/d/more"));  // a dataset in the middle
  EXPECT_FALSE(f.exists("dangling"));
  auto g = f.open_group("g");
  EXPECT_TRUE(g.exists("h/d"));
  EXPECT_TRUE(g.exists("/g/h"));  // absolute from any group
  EXPECT_EQ(g.open_group("h").path(), "/g/h");
  EXPECT_EQ(f.kind("g/h"), h5::Kind::group);
  EXPECT_EQ(f.kind("g/h/d"), h5::Kind::dataset);
  EXPECT_EQ(f.kind("nope"), h5::Kind::none);
  EXPECT_EQ(f.children(), (std::vector<std::string>{"block1_conv1", "dangling", "g"}));
  f.remove("g/h/d");
  EXPECT_FALSE(f.exists("g/h/d"));
}

TEST(H5Paths, OpeningWhatIsNotThereNamesFileAndPath) {
  TempDir dir;
  const auto path = dir / "p.h5";
  auto f = h5::File::create(path);
  f.create_dataset("g/d", h5::DType::f32, {1});
  std::string m = error_of([&] { f.open_dataset("g/missing"); });
  EXPECT_HAS(m, path.string());
  EXPECT_HAS(m, "no dataset '/g/missing'");
  m = error_of([&] { f.open_group("g").open_dataset("kernel:0"); });
  EXPECT_HAS(m, "no dataset '/g/kernel:0'");
  m = error_of([&] { f.open_group("g/d"); });
  EXPECT_HAS(m, "'/g/d' is a dataset, not a group");
  m = error_of([&] { f.create_group("g"); });  // HDF5's own message, with context
  EXPECT_HAS(m, path.string());
  EXPECT_HAS(m, "H5Gcreate2");
  EXPECT_HAS(m, "object '/g'");
}

TEST(H5Files, OpenErrorsAreClear) {
  TempDir dir;
  const auto missing = dir / "missing.h5";
  const auto empty = dir / "empty.h5";
  const auto text = dir / "notes.txt";
  const auto truncated = dir / "half.h5";
  testing::write_text(empty, "");
  testing::write_text(text, "this is not HDF5\n");
  {
    auto f = h5::File::create(truncated);
    f.create_dataset("d", h5::DType::f32, {4096}).write(std::vector<float>(4096, 1.0f));
  }
  std::filesystem::resize_file(truncated, std::filesystem::file_size(truncated) / 2);

  EXPECT_EQ(error_of([&] { h5::File::open(missing); }),
            "HDF5 file '" + missing.string() + "': no such file");
  EXPECT_EQ(error_of([&] { h5::File::open(empty); }),
            "HDF5 file '" + empty.string() + "': not an HDF5 file (the file is empty)");
  EXPECT_EQ(error_of([&] { h5::File::open(text); }),
            "HDF5 file '" + text.string() + "': not an HDF5 file (17 bytes, no HDF5 signature)");
  EXPECT_HAS(error_of([&] { h5::File::open(dir.path()); }), "is a directory");
  const std::string m = error_of([&] { h5::File::open(truncated); });
  EXPECT_HAS(m, truncated.string());
  EXPECT_HAS(m, "truncated file");  // HDF5's innermost message
  EXPECT_HAS(error_of([&] { h5::File::create(truncated, h5::Create::exclusive); }), "File exists");
  EXPECT_FALSE(h5::File::is_hdf5(missing));
  EXPECT_FALSE(h5::File::is_hdf5(text));
  EXPECT_TRUE(h5::File::is_hdf5(truncated));
}

TEST(H5Files, OpensAnImageFromMemory) {
  TempDir dir;
  const auto path = dir / "img.h5";
  {
    auto f = h5::File::create(path);
    f.create_dataset("g/d", h5::DType::i32, {3}).write(std::vector<std::int32_t>{7, 8, 9});
    f.write_attr("name", "image");
  }
  const std::string bytes = testing::read_bytes(path);
  {
    auto f = h5::File::open_image(std::as_bytes(std::span(bytes)), "fuzz-input");
    EXPECT_EQ(f.open_dataset("g/d").read<std::int32_t>(), (std::vector<std::int32_t>{7, 8, 9}));
    EXPECT_EQ(f.read_attr<std::string>("name"), "image");
    EXPECT_EQ(f.file_name(), "fuzz-input");
  }
  const std::string junk(4096, 'x');
  EXPECT_HAS(error_of([&] { h5::File::open_image(std::as_bytes(std::span(junk)), "junk"); }),
             "HDF5 file 'junk': H5Fopen: unable to open file (file signature not found)");
  EXPECT_HAS(error_of([&] { h5::File::open_image({}, "nothing"); }), "empty");
  const std::string half = bytes.substr(0, bytes.size() / 2);
  EXPECT_HAS(error_of([&] { h5::File::open_image(std::as_bytes(std::span(half))); }),
             "<memory image>");
}

TEST(H5Handles, MoveOnlyAndCloseIsChecked) {
  static_assert(!std::is_copy_constructible_v<h5::File>);
  static_assert(!std::is_copy_assignable_v<h5::Dataset>);
  static_assert(std::is_nothrow_move_constructible_v<h5::Group>);
  TempDir dir;
  auto f = h5::File::create(dir / "m.h5");
  auto d = f.create_dataset("d", h5::DType::f32, {1});
  h5::Dataset moved = std::move(d);
  EXPECT_FALSE(d.valid());  // NOLINT(bugprone-use-after-move): checking the moved-from state
  EXPECT_TRUE(moved.valid());
  moved.close();
  EXPECT_FALSE(moved.valid());
  moved.close();  // closing twice is harmless
  f.close();
}

TEST(H5Handles, NothingStaysOpenAfterErrors) {
  {
    TempDir dir;
    const auto path = dir / "l.h5";
    auto f = h5::File::create(path);
    f.create_dataset("g/d", h5::DType::str, {2}).write(std::vector<std::string>{"a", "b"});
    f.open_group("g").write_attr("v", std::vector<std::string>{"x"});
    EXPECT_FALSE(f.exists("g/d/x"));
    EXPECT_EQ(f.open_dataset("g/d").read<std::string>().size(), 2u);
    EXPECT_EQ(f.open_group("g").read_attr<std::vector<std::string>>("v").size(), 1u);
    error_of([&] { f.open_dataset("g/missing"); });
    error_of([&] { f.open_group("g").read_attr<double>("v"); });
    error_of([&] { f.create_group("g"); });
    error_of([&] { f.open_dataset("g/d").read<float>(); });
  }
  EXPECT_EQ(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
}

TEST(H5Errors, NoHdf5PrintingOnAnyThread) {
  TempDir dir;
  const auto path = dir / "x.h5";
  h5::File::create(path);
  std::string m;
  ::testing::internal::CaptureStderr();
  std::thread t([&] {  // HDF5's print-on-error setting is per thread
    try {
      h5::File::create(path, h5::Create::exclusive);
    } catch (const Error& e) {
      m = e.what();
    }
  });
  t.join();
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  EXPECT_HAS(m, "H5Fcreate");
}

}  // namespace
}  // namespace tl
