#include "tl/winograd.hpp"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstddef>

#include <fmt/format.h>

#include "tl/error.hpp"
#include "tl/layer_plan.hpp"
#include "tl/machine.hpp"
#include "tl/onednn.hpp"

namespace {
// libgomp's fork and join are invisible to ThreadSanitizer (and GCC's outlined region reads its
// captured values before any annotation could run), so
// under TSan the regions run on one thread (the tiles are independent; the transforms' code is
// the same).
#if defined(__SANITIZE_THREAD__)
constexpr bool kThreads = false;
#else
constexpr bool kThreads = true;
#endif
}  // namespace

namespace tl {

using namespace onednn;

namespace {

// Transformed input and product of one block of tiles together take about this many bytes
// (an L3 slice; measured under ONEDNN_MAX_CPU_ISA=AVX2 on a Sapphire Rapids: smaller blocks
// starve the 512-channel products, larger ones lose the 64-channel layers' cache).
constexpr std::size_t kBlockBytes = std::size_t{2} << 20;
constexpr std::size_t kMinBlock = 48;
// Rows of the products come in whole panels of oneDNN's gemm kernels (24 rows for AVX2's,
// 48 for AVX-512's): every row is then computed by the same kernel wherever it sits.
constexpr int kBlockStep = 48;

// The transforms, vectorised over channels (NHWC: a pixel's channels are contiguous). Written
// once per tile size and compiled twice (AVX2 + FMA, AVX-512) by inlining into
// wrappers. They work on kLanes channels at a time, each step an innermost loop over those
// lanes (which the compiler turns into vector instructions); channel counts are multiples of
// kLanes (VGG16's convs past the first have 64 to 512).
constexpr int kLanes = 16;

// A tile size is its two 1-D transforms on kLanes channels, x[0..kTile) -> y: bt (y = B^T x,
// kTile values) and at (y = A^T x, kOut values), each reading x(k)[c] and handing y[k][c] to
// y(k, c, value) (which stores it, or adds the bias and applies ReLU: a separate pass for
// those cost 10% on AVX-512), and G (kTile x 3) for the kernels. The 2-D transforms below
// apply them to columns, then rows.

// F(4x4, 3x3): 6x6 input tiles, 36 transformed positions, 4x4 outputs per tile. Interpolation
// points 0, -1, 1, 1/2, -2 (and infinity) rather than Lavin's 0, +-1, +-2: in float32 they
// give 3.5x less error on 512 channels (a float64 simulation; Barabasz et al., "Error analysis
// and improving the accuracy of Winograd convolution", 2020, found the same). The matrices
// follow from the points (Toom-Cook): B^T's rows are the coefficients of prod_(l != k)(x - p_l),
// G's rows p_k^j / prod_(l != k)(p_k - p_l), A^T's columns p_k^i.
struct F4 {
  static constexpr int kTile = 6, kOut = 4;
  static constexpr double G[kTile][3] = {{1, 0, 0},
                                         {-1.0 / 3, 1.0 / 3, -1.0 / 3},
                                         {1.0 / 3, 1.0 / 3, 1.0 / 3},
                                         {-16.0 / 15, -8.0 / 15, -4.0 / 15},
                                         {1.0 / 15, -2.0 / 15, 4.0 / 15},
                                         {0, 0, 1}};
  template <class X, class Y>
  [[gnu::always_inline]] static inline void bt(X x, Y y) {
    const float *x0 = x(0), *x1 = x(1), *x2 = x(2), *x3 = x(3), *x4 = x(4), *x5 = x(5);
    for (int c = 0; c < kLanes; ++c) {
      y(0, c, x0[c] - 1.5f * x1[c] - 2.f * x2[c] + 1.5f * x3[c] + x4[c]);
      y(1, c, x1[c] - 2.5f * x2[c] + 0.5f * x3[c] + x4[c]);
      y(2, c, -x1[c] + 0.5f * x2[c] + 2.5f * x3[c] + x4[c]);
      y(3, c, -2.f * x1[c] - x2[c] + 2.f * x3[c] + x4[c]);
      y(4, c, 0.5f * x1[c] - x2[c] - 0.5f * x3[c] + x4[c]);
      y(5, c, x1[c] - 1.5f * x2[c] - 2.f * x3[c] + 1.5f * x4[c] + x5[c]);
    }
  }
  template <class X, class Y>
  [[gnu::always_inline]] static inline void at(X x, Y y) {
    const float *x0 = x(0), *x1 = x(1), *x2 = x(2), *x3 = x(3), *x4 = x(4), *x5 = x(5);
    for (int c = 0; c < kLanes; ++c) {
      y(0, c, x0[c] + x1[c] + x2[c] + x3[c] + x4[c]);
      y(1, c, -x1[c] + x2[c] + 0.5f * x3[c] - 2.f * x4[c]);
      y(2, c, x1[c] + x2[c] + 0.25f * x3[c] + 4.f * x4[c]);
      y(3, c, -x1[c] + x2[c] + 0.125f * x3[c] - 8.f * x4[c] + x5[c]);
    }
  }
};

// F(2x2, 3x3) (Lavin and Gray, points 0, +-1): 4x4 input tiles, 16 positions, 2x2 outputs
// per tile; 2.25x fewer multiplications than direct where F(4x4) has 4x, exact in its
// transforms (coefficients 0, +-1, +-1/2).
struct F2 {
  static constexpr int kTile = 4, kOut = 2;
  static constexpr double G[kTile][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  template <class X, class Y>
  [[gnu::always_inline]] static inline void bt(X x, Y y) {
    const float *x0 = x(0), *x1 = x(1), *x2 = x(2), *x3 = x(3);
    for (int c = 0; c < kLanes; ++c) {
      y(0, c, x0[c] - x2[c]);
      y(1, c, x1[c] + x2[c]);
      y(2, c, x2[c] - x1[c]);
      y(3, c, x1[c] - x3[c]);
    }
  }
  template <class X, class Y>
  [[gnu::always_inline]] static inline void at(X x, Y y) {
    const float *x0 = x(0), *x1 = x(1), *x2 = x(2), *x3 = x(3);
    for (int c = 0; c < kLanes; ++c) {
      y(0, c, x0[c] + x1[c] + x2[c]);
      y(1, c, x1[c] - x2[c] - x3[c]);
    }
  }
};

// kTile^2 pixel pointers (row-major over the tile; a pointer to zeros outside the image) ->
// v[pos * pos_stride + c] = (B^T d B)[pos] for each channel c.
template <class F>
[[gnu::always_inline]] inline void input_tile(const float* const* p, int C, float* v,
                                              std::size_t pos_stride) {
  constexpr int T = F::kTile;
  for (int c0 = 0; c0 < C; c0 += kLanes) {
    float t[T][T][kLanes];
    for (int j = 0; j < T; ++j)  // columns: t = B^T d
      F::bt([&](int k) { return p[k * T + j] + c0; },
            [&](int k, int c, float x) { t[k][j][c] = x; });
    for (int i = 0; i < T; ++i)  // rows: v = t B
      F::bt([&](int k) -> const float* { return t[i][k]; },
            [&](int k, int c, float x) {
              v[static_cast<std::size_t>(i * T + k) * pos_stride + c0 + c] = x;
            });
  }
}

// m[pos * pos_stride + c] -> out[k][c] = relu((A^T m A)[k] + bias[c]) for the kOut^2 outputs
// k (a per-thread spill row for outputs outside the image).
template <class F>
[[gnu::always_inline]] inline void output_tile(const float* m, std::size_t pos_stride, int C,
                                               const float* bias, float* const* out) {
  constexpr int T = F::kTile, O = F::kOut;
  for (int c0 = 0; c0 < C; c0 += kLanes) {
    float t[O][T][kLanes];
    for (int j = 0; j < T; ++j)  // columns: t = A^T m
      F::at([&](int k) { return m + static_cast<std::size_t>(k * T + j) * pos_stride + c0; },
            [&](int k, int c, float v) { t[k][j][c] = v; });
    for (int i = 0; i < O; ++i)  // rows: y = t A, + bias, ReLU
      F::at(
          [&](int k) -> const float* { return t[i][k]; },
          [&](int k, int c, float v) { out[i * O + k][c0 + c] = std::max(v + bias[c0 + c], 0.f); });
  }
}

// Input channel ci of `kernel` (Keras's HWIO [3][3][cin][cout]) -> u[pos][ci][co] =
// (G g G^T)[pos] of each of its kernels g, in double, kLanes output channels at a time.
template <class F>
[[gnu::always_inline]] inline void kernel_rows(const float* kernel, int cin, int cout, int ci,
                                               float* u) {
  constexpr int T = F::kTile;
  const auto& G = F::G;
  for (int c0 = 0; c0 < cout; c0 += kLanes) {
    double t[T][3][kLanes];  // G g, per output channel
    for (int i = 0; i < T; ++i)
      for (int kx = 0; kx < 3; ++kx)
        for (int c = 0; c < kLanes; ++c) {
          double sum = 0;
          for (int ky = 0; ky < 3; ++ky)
            sum += G[i][ky] *
                   kernel[((static_cast<std::size_t>(ky) * 3 + kx) * cin + ci) * cout + c0 + c];
          t[i][kx][c] = sum;
        }
    for (int i = 0; i < T; ++i)
      for (int j = 0; j < T; ++j) {
        float* o = u + (static_cast<std::size_t>(i * T + j) * cin + ci) * cout + c0;
        for (int c = 0; c < kLanes; ++c)
          o[c] = static_cast<float>(t[i][0][c] * G[j][0] + t[i][1][c] * G[j][1] +
                                    t[i][2][c] * G[j][2]);
      }
  }
}

constexpr int kMaxTile = F4::kTile, kMaxOut = F4::kOut;

using InputFn = void (*)(const float* const*, int, float*, std::size_t);
using OutputFn = void (*)(const float*, std::size_t, int, const float*, float* const*);
using KernelFn = void (*)(const float*, int, int, int, float*);

template <class F>
[[gnu::target("avx2,fma")]] void input_avx2(const float* const* p, int C, float* v, std::size_t s) {
  input_tile<F>(p, C, v, s);
}
template <class F>
[[gnu::target("avx2,fma")]] void output_avx2(const float* m, std::size_t s, int C, const float* b,
                                             float* const* o) {
  output_tile<F>(m, s, C, b, o);
}
template <class F>
[[gnu::target("avx2,fma")]] void kernel_avx2(const float* k, int cin, int cout, int ci, float* u) {
  kernel_rows<F>(k, cin, cout, ci, u);
}
template <class F>
[[gnu::target("avx512f,fma")]] void input_avx512(const float* const* p, int C, float* v,
                                                 std::size_t s) {
  input_tile<F>(p, C, v, s);
}
template <class F>
[[gnu::target("avx512f,fma")]] void output_avx512(const float* m, std::size_t s, int C,
                                                  const float* b, float* const* o) {
  output_tile<F>(m, s, C, b, o);
}
template <class F>
[[gnu::target("avx512f,fma")]] void kernel_avx512(const float* k, int cin, int cout, int ci,
                                                  float* u) {
  kernel_rows<F>(k, cin, cout, ci, u);
}

// One tile size's geometry, transforms and kernel transform.
struct Kernels {
  int tile = 0, out = 0;  // input tile side, output tile side
  InputFn input;
  OutputFn output;
  KernelFn kernel;
  const char* code;  // "avx512", "avx2"
};

// The transform code for oneDNN's ISA here (so ONEDNN_MAX_CPU_ISA=AVX2 runs the AVX2 code on a
// bigger CPU, as it does oneDNN's own).
template <class F>
Kernels kernels_for(std::string_view isa) {
  const std::string_view code = winograd_code_for(isa);
  if (code == "avx512")
    return {F::kTile, F::kOut, input_avx512<F>, output_avx512<F>, kernel_avx512<F>, "avx512"};
  return {F::kTile, F::kOut, input_avx2<F>, output_avx2<F>, kernel_avx2<F>, "avx2"};  // checked
}

Kernels kernels_for(WinogradTile tile, std::string_view isa) {
  return tile == WinogradTile::f2x2 ? kernels_for<F2>(isa) : kernels_for<F4>(isa);
}

// All of `kernel` (HWIO) -> u: OpenMP threads over the input channels.
void transform_weights(const float* kernel, int cin, int cout, const Kernels& k, float* u) {
#pragma omp parallel for schedule(static) if (kThreads)
  for (int ci = 0; ci < cin; ++ci) k.kernel(kernel, cin, cout, ci, u);
}

}  // namespace

std::string_view winograd_code_for(std::string_view isa) {
  if (isa.rfind("avx512", 0) == 0) return "avx512";
  if (isa.rfind("avx2", 0) == 0) return "avx2";
  return "";
}

struct WinogradConv::Impl {
  std::string name;
  int cin = 0, cout = 0, h = 0, w = 0, max_n = 0;
  int tiles_y = 0, tiles_x = 0, block = 0;  // tiles per image row / column; tiles per block
  Kernels k{};
  std::vector<float> bias, zeros;
  AlignedBuffer u, v, m, dummy;  // transformed weights, input block, product block, spill rows
  Scratchpad scratch;
  Op matmul;
  dnnl::stream strm{engine()};
};

WinogradConv::WinogradConv(const ConvWeights& w, Shape in, WinogradTile tile)
    : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  if (w.cin != in.c)
    throw Error(
        fmt::format("layer {}: weights take {} channels, the input has {}", w.name, w.cin, in.c));
  if (!takes(w.cin, w.cout))
    throw Error(fmt::format("layer {}: {} -> {} channels; tlkit's Winograd takes multiples of {}",
                            w.name, w.cin, w.cout, kLanes));
  s.name = w.name;
  s.cin = w.cin;
  s.cout = w.cout;
  s.h = in.h;
  s.w = in.w;
  s.max_n = in.n;
  if (winograd_code_for(machine().isa).empty())
    throw Error(fmt::format("layer {}: tlkit's Winograd needs AVX2 (oneDNN ISA {})", w.name,
                            machine().isa));
  s.k = kernels_for(tile, machine().isa);
  const int out = s.k.out, pos = s.k.tile * s.k.tile;
  s.tiles_y = (in.h + out - 1) / out;
  s.tiles_x = (in.w + out - 1) / out;
  s.zeros.assign(static_cast<std::size_t>(w.cin), 0.f);
  const std::size_t per_tile = sizeof(float) * pos * static_cast<std::size_t>(w.cin + w.cout);
  // As many tiles per block as fit in kBlockBytes, at least kMinBlock (the matrix products of
  // 512-channel layers need rows), a multiple of kBlockStep. The block depends on the channels
  // only, never on the batch: oneDNN's gemm rounds a row differently for other row counts
  // (seen under the AVX2 cap: 88 vs 108 rows), and an image's features must not depend on the
  // batch it came in (shards, resumes and short batches give the same rows).
  s.block = static_cast<int>(std::clamp<std::size_t>(kBlockBytes / per_tile, kMinBlock, 960)) /
            kBlockStep * kBlockStep;
  s.u.reserve(sizeof(float) * pos * static_cast<std::size_t>(w.cin) * w.cout);
  if (w.kernel.size() != 9ull * w.cin * w.cout || w.bias.size() != static_cast<std::size_t>(w.cout))
    throw Error(fmt::format("layer {}: {} kernel and {} bias values for {} -> {} channels", w.name,
                            w.kernel.size(), w.bias.size(), w.cin, w.cout));
  set_weights(w.kernel.data(), w.bias.data());
  s.v.reserve(sizeof(float) * pos * static_cast<std::size_t>(s.block) * w.cin);
  s.m.reserve(sizeof(float) * pos * static_cast<std::size_t>(s.block) * w.cout);

  // [pos, block, cin] x [pos, cin, cout] -> [pos, block, cout], row-major each.
  const memory::desc src_md({pos, s.block, w.cin}, dt::f32, tag::abc);
  const memory::desc wei_md({pos, w.cin, w.cout}, dt::f32, tag::abc);
  const memory::desc dst_md({pos, s.block, w.cout}, dt::f32, tag::abc);
  const auto pd = call(
      [&] {
        return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, wei_md, dst_md), attr(),
                                            engine());
      },
      "layer {}: Winograd's matrix products", w.name);
  s.matmul =
      Op(pd, dnnl::matmul(pd),
         {{DNNL_ARG_SRC, src_md}, {DNNL_ARG_WEIGHTS, wei_md}, {DNNL_ARG_DST, dst_md}}, s.scratch);
}

void WinogradConv::set_weights(const float* kernel, const float* bias) {
  Impl& s = *impl_;
  transform_weights(kernel, s.cin, s.cout, s.k, s.u.floats());
  s.bias.assign(bias, bias + s.cout);
}

bool WinogradConv::takes(int cin, int cout) {
  return cin > 0 && cout > 0 && cin % kLanes == 0 && cout % kLanes == 0;
}

WinogradConv::~WinogradConv() = default;
WinogradConv::WinogradConv(WinogradConv&&) noexcept = default;
WinogradConv& WinogradConv::operator=(WinogradConv&&) noexcept = default;

void WinogradConv::forward(const float* src, int n, float* dst) {
  Impl& s = *impl_;
  if (n < 1 || n > s.max_n)
    throw Error(fmt::format("layer {}: {} images, built for 1 to {}", s.name, n, s.max_n));
  const int per_image = s.tiles_y * s.tiles_x;
  const int T = s.k.tile, O = s.k.out;
  const int total = n * per_image;
  const std::size_t vs = static_cast<std::size_t>(s.block) * s.cin;   // position stride in v
  const std::size_t ms = static_cast<std::size_t>(s.block) * s.cout;  // position stride in m
  s.dummy.reserve(sizeof(float) * static_cast<std::size_t>(omp_get_max_threads()) * s.cout);
  float* v = s.v.floats();
  float* m = s.m.floats();
  for (int b0 = 0; b0 < total; b0 += s.block) {
    const int count = std::min(s.block, total - b0);
#pragma omp parallel if (kThreads)
    {
#pragma omp for schedule(static)
      for (int t = 0; t < s.block; ++t) {
        if (t >= count) {  // the last block's unused rows: zeros, so the product stays finite
          for (int pos = 0; pos < T * T; ++pos)
            std::fill_n(v + pos * vs + static_cast<std::size_t>(t) * s.cin, s.cin, 0.f);
          continue;
        }
        const int tile = b0 + t, img = tile / per_image, ty = tile % per_image / s.tiles_x,
                  tx = tile % s.tiles_x;
        const float* image = src + static_cast<std::size_t>(img) * s.h * s.w * s.cin;
        std::array<const float*, kMaxTile * kMaxTile> p;
        for (int i = 0; i < T; ++i)
          for (int j = 0; j < T; ++j) {
            const int y = ty * O - 1 + i, x = tx * O - 1 + j;
            p[i * T + j] = y >= 0 && y < s.h && x >= 0 && x < s.w
                               ? image + (static_cast<std::size_t>(y) * s.w + x) * s.cin
                               : s.zeros.data();
          }
        s.k.input(p.data(), s.cin, v + static_cast<std::size_t>(t) * s.cin, vs);
      }
    }
    s.matmul.run(s.strm, {{DNNL_ARG_SRC, v}, {DNNL_ARG_WEIGHTS, s.u.data()}, {DNNL_ARG_DST, m}});
#pragma omp parallel if (kThreads)
    {
#pragma omp for schedule(static)
      for (int t = 0; t < count; ++t) {
        const int tile = b0 + t, img = tile / per_image, ty = tile % per_image / s.tiles_x,
                  tx = tile % s.tiles_x;
        float* image = dst + static_cast<std::size_t>(img) * s.h * s.w * s.cout;
        float* spill = s.dummy.floats() + static_cast<std::size_t>(omp_get_thread_num()) * s.cout;
        std::array<float*, kMaxOut * kMaxOut> out;
        for (int i = 0; i < O; ++i)
          for (int j = 0; j < O; ++j) {
            const int y = ty * O + i, x = tx * O + j;
            out[i * O + j] = y < s.h && x < s.w
                                 ? image + (static_cast<std::size_t>(y) * s.w + x) * s.cout
                                 : spill;
          }
        s.k.output(m + static_cast<std::size_t>(t) * s.cout, ms, s.cout, s.bias.data(), out.data());
      }
    }
  }
}

std::string WinogradConv::describe() const {
  const Impl& s = *impl_;
  return fmt::format("{}: tlkit winograd F({}x{},3x3) {}, {} tiles per block, matmul {}", s.name,
                     s.k.out, s.k.out, s.k.code, s.block, s.matmul.impl());
}

}  // namespace tl
