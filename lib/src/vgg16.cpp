// The VGG16 base on oneDNN 2.6 primitives. One stage per layer, built from the layer table;
// "describe with format_tag::any -> let oneDNN choose -> reorder only if the layout differs
// -> execute with an argument map" is written once (Builder::add_*).
#include "tl/vgg16.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.hpp>

#include "tl/error.hpp"
#include "tl/int8_quantization.hpp"
#include "tl/layer_plan.hpp"
#include "tl/machine.hpp"
#include "tl/onednn.hpp"
#include "tl/winograd.hpp"

namespace tl {

using namespace onednn;

namespace {

// {N, C, H, W} dims for oneDNN (which orders logical dims NCHW whatever the layout).
memory::dims nchw(const Shape& s) {
  return {s.n, s.c, s.h, s.w};
}

// Whether the net's convs past the first run tlkit's Winograd: asked for, or Winograd asked
// for where oneDNN has none.
bool tlkit_winograd(const NetConfig& c) {
  return c.precision == Precision::f32 &&
         (c.algo == ConvAlgo::winograd_tlkit ||
          (c.algo == ConvAlgo::winograd && !machine().f32_winograd.native));
}

}  // namespace

struct Vgg16::Impl {
  NetConfig cfg;
  const dnnl::engine& eng = onednn::engine();
  dnnl::stream strm{eng};
  Shape in_shape, out_shape;
  double macs = 0;

  struct Step {
    std::string name;  // layer name, or "reorder before <layer>"
    dnnl::primitive prim;
    std::unordered_map<int, memory> args;
    // A conv on tlkit's Winograd instead of a primitive: NHWC f32 from act[src] to act[dst].
    WinogradConv* wino = nullptr;
    int src = 0, dst = 0;
  };
  std::vector<Step> steps;
  std::vector<std::string> impls;

  // Ping-pong activation buffers in oneDNN's layout, the shared scratchpad, and staging
  // rows for a short last batch. Every memory below aliases one of these.
  AlignedBuffer act[2], scratch, stage_in, stage_out;
  memory user_src, user_dst;                        // NHWC f32, handles set per forward()
  std::vector<memory> weights;                      // owned per conv, in oneDNN's layout
  std::vector<std::unique_ptr<WinogradConv>> wino;  // the convs that run tlkit's Winograd
};

namespace {

// Builds the steps of an Impl layer by layer; tracks where the current activation lives.
class Builder {
 public:
  explicit Builder(Vgg16::Impl& impl) : m_(impl) {}

  // Plan pass: descriptors and primitives; buffers are sized after all layers are known.
  void build(const Vgg16Weights& weights) {
    const auto& c = m_.cfg;
    const auto shapes = infer_shapes(m_.in_shape, c.from, c.to);
    const int first = layer_index(c.from) + 1;
    m_.out_shape = shapes.back();
    m_.macs = macs_per_image(c.height, c.width, c.from, c.to);

    // {N, C, H, W} NHWC f32 as the user gives it.
    m_.user_src = memory({nchw(m_.in_shape), dt::f32, tag::nhwc}, m_.eng, DNNL_MEMORY_NONE);
    cur_md_ = m_.user_src.get_desc();
    cur_ = Loc::user;

    Shape s = m_.in_shape;
    for (size_t k = 0; k < shapes.size(); ++k) {
      const LayerSpec& l = vgg16_layers()[first + k];
      if (l.kind == LayerKind::conv)
        add_conv(l, weights.conv(l.name), s, shapes[k]);
      else
        add_pool(l, s, shapes[k]);
      s = shapes[k];
    }
    // {N, C, oh, ow} in oneDNN's layout -> NHWC f32 for the user.
    m_.user_dst = memory({nchw(m_.out_shape), dt::f32, tag::nhwc}, m_.eng, DNNL_MEMORY_NONE);
    add_reorder_to(m_.user_dst.get_desc(), "output", Loc::user, int8() ? 1.f / cur_scale_ : 1.f);
    allocate();
  }

 private:
  enum class Loc { user, act0, act1 };
  struct Pending {  // a memory whose handle is bound once buffers exist
    size_t step;
    int arg;
    memory::desc md;
    Loc loc;
  };

  bool int8() const { return m_.cfg.precision == Precision::int8; }
  // Activation type between layers: u8 after a ReLU in int8 (the net's own input is s8 when
  // it can be negative, e.g. caffe-preprocessed images), else bf16 or f32.
  dt act_type() const {
    if (int8()) return cur_ == Loc::user && layer_index(m_.cfg.from) < 0 ? dt::s8 : dt::u8;
    return m_.cfg.precision == Precision::bf16 ? dt::bf16 : dt::f32;
  }

  // int8's scales, from the net's calibration (UsageError without one).
  const Int8Scales& scales() {
    if (!scales_) scales_.emplace(m_.cfg.calibration.get(), m_.cfg.from);
    return *scales_;
  }
  Loc other() const { return cur_ == Loc::act0 ? Loc::act1 : Loc::act0; }

  // Move the current activation into layout `want` (a reorder step) unless it is there.
  // `scale` multiplies the values on the way (int8 quantisation in and out).
  void add_reorder_to(const memory::desc& want, const std::string& why, Loc dst_loc,
                      float scale = 1.f) {
    if (want == cur_md_ && cur_ != Loc::user && dst_loc != Loc::user && scale == 1.f) return;
    dnnl::primitive_attr a = onednn::attr();
    if (scale != 1.f) a.set_output_scales(0, {scale});
    dnnl::reorder::primitive_desc pd(m_.eng, cur_md_, m_.eng, want, a);
    note_scratch(pd.scratchpad_desc());
    push(fmt::format("reorder ({})", why), dnnl::reorder(pd),
         {{DNNL_ARG_FROM, cur_md_, cur_}, {DNNL_ARG_TO, want, dst_loc}});
    cur_md_ = want;
    cur_ = dst_loc;
  }

  // {N, cin, H, W} -> {N, cout, H, W}: 3x3 conv, pad 1, bias, ReLU post-op.
  void add_conv(const LayerSpec& l, const ConvWeights& w, const Shape& in, const Shape& out) {
    if (w.cin != l.cin || w.cout != l.cout)
      throw Error(fmt::format("layer {}: weights are {}->{} channels, VGG16 has {}->{}", l.name,
                              w.cin, w.cout, l.cin, l.cout));
    const memory::desc src_md(nchw(in), act_type(), tag::any);
    const memory::desc wei_md({l.cout, l.cin, 3, 3}, int8() ? dt::s8 : act_type(), tag::any);
    const memory::desc bias_md({l.cout}, dt::f32, tag::x);
    const memory::desc dst_md(nchw(out), int8() ? dt::u8 : act_type(), tag::any);
    // int8: s8 weights with one scale per output channel, activations scaled per tensor.
    // oneDNN 2.x computes dst = output_scale[oc] * (sum(src_q * wei_q) + bias), so the bias
    // is given in the accumulator's scale and output_scale maps it to dst's scale.
    const float in_scale = int8() ? (cur_ == Loc::user ? scales().input() : cur_scale_) : 1.f;
    std::vector<float> wei_scale(l.cout, 1.f), out_scales;
    dnnl::primitive_attr attr = onednn::attr(true);
    if (int8()) {
      wei_scale = Int8Scales::weights(w, act_type() == dt::u8);
      const float out_scale = scales().output(l.name);
      for (int o = 0; o < l.cout; ++o) out_scales.push_back(out_scale / (in_scale * wei_scale[o]));
      attr.set_output_scales(1 << 1, out_scales);
      next_scale_ = out_scale;
    }
    auto make = [&](dnnl::algorithm alg) {
      dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, alg, src_md, wei_md,
                                        bias_md, dst_md, {1, 1}, {1, 1}, {1, 1});
      return dnnl::convolution_forward::primitive_desc(d, attr, m_.eng);
    };
    // --algo is an f32 choice. oneDNN 2.6 also has an int8 Winograd (u8s8s32x_wino), but on
    // the demo it moved features by 10% of their scale where direct int8 moves them 4%.
    const auto algo = m_.cfg.precision == Precision::f32 ? m_.cfg.algo : ConvAlgo::direct;
    // Winograd, oneDNN's or tlkit's, for every conv but the first (3 input channels), which
    // runs direct: oneDNN's Winograd takes it, but ran it 3.4x slower than direct (bench_vgg16
    // Conv/layer:0/prec:0/algo:1 vs algo:0 on AVX-512, bench/RESULTS.md).
    const bool wino_layer = WinogradConv::takes(l.cin, l.cout);
    if (tlkit_winograd(m_.cfg) && wino_layer) {
      add_tlkit_winograd(w, in, out);
      return;
    }
    const auto pd = onednn::call(
        [&] {
          if (algo == ConvAlgo::winograd && wino_layer) {
            try {  // Winograd where oneDNN has it; direct elsewhere
              return make(dnnl::algorithm::convolution_winograd);
            } catch (const dnnl::error&) {
              return make(dnnl::algorithm::convolution_direct);
            }
          }
          return make(algo == ConvAlgo::automatic ? dnnl::algorithm::convolution_auto
                                                  : dnnl::algorithm::convolution_direct);
        },
        "layer {}: oneDNN has no {} {} convolution here", l.name, to_string(m_.cfg.precision),
        to_string(algo));
    add_reorder_to(pd.src_desc(), std::string("into ") + std::string(l.name), other_or_act0(),
                   cur_ == Loc::user ? in_scale : 1.f);
    m_.weights.push_back(
        load_conv_weights(w, pd.weights_desc(), int8() ? wei_scale : std::vector<float>{}));
    auto bias = memory(bias_md, m_.eng);
    auto* b = static_cast<float*>(bias.get_data_handle());
    for (int o = 0; o < l.cout; ++o) b[o] = w.bias[o] * in_scale * wei_scale[o];
    note_scratch(pd.scratchpad_desc());
    const Loc dst = other_or_act0();
    push(std::string(l.name), dnnl::convolution_forward(pd),
         {{DNNL_ARG_SRC, pd.src_desc(), cur_}, {DNNL_ARG_DST, pd.dst_desc(), dst}},
         {{DNNL_ARG_WEIGHTS, m_.weights.back()}, {DNNL_ARG_BIAS, bias}});
    m_.impls.push_back(fmt::format("{}: {}", l.name, pd.impl_info_str()));
    cur_md_ = pd.dst_desc();
    cur_ = dst;
    cur_scale_ = next_scale_;
  }

  // The same conv on tlkit's Winograd (tl/winograd.hpp), NHWC f32 in and out.
  void add_tlkit_winograd(const ConvWeights& w, const Shape& in, const Shape& out) {
    const memory::desc src_md(nchw(in), dt::f32, tag::nhwc), dst_md(nchw(out), dt::f32, tag::nhwc);
    add_reorder_to(src_md, "into " + w.name, other_or_act0());
    const Loc dst = other();
    m_.wino.push_back(std::make_unique<WinogradConv>(w, in));
    act_size_ = std::max({act_size_, src_md.get_size(), dst_md.get_size()});
    m_.steps.push_back({w.name,
                        {},
                        {},
                        m_.wino.back().get(),
                        cur_ == Loc::act0 ? 0 : 1,
                        dst == Loc::act0 ? 0 : 1});
    m_.impls.push_back(m_.wino.back()->describe());
    cur_md_ = dst_md;
    cur_ = dst;
  }

  // {N, C, H, W} -> {N, C, H/2, W/2}: max 2x2 stride 2 (floor), in the current layout.
  void add_pool(const LayerSpec& l, const Shape& in, const Shape& out) {
    if (cur_ == Loc::user) {
      const float scale = int8() ? scales().input() : 1.f;
      add_reorder_to(memory::desc(nchw(in), act_type(), tag::nhwc), "input", Loc::act0, scale);
      cur_scale_ = next_scale_ = scale;
    }
    const memory::desc dst_md(nchw(out), act_type(), tag::any);
    const memory::dims pad_r = onednn::floor_pool_padding(in.h, in.w, out.h, out.w);
    dnnl::pooling_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max,
                                  cur_md_, dst_md, {2, 2}, {2, 2}, {0, 0}, pad_r);
    dnnl::pooling_forward::primitive_desc pd(d, onednn::attr(), m_.eng);
    note_scratch(pd.scratchpad_desc());
    const Loc dst = other_or_act0();
    push(std::string(l.name), dnnl::pooling_forward(pd),
         {{DNNL_ARG_SRC, cur_md_, cur_}, {DNNL_ARG_DST, pd.dst_desc(), dst}});
    m_.impls.push_back(fmt::format("{}: {}", l.name, pd.impl_info_str()));
    cur_md_ = pd.dst_desc();
    cur_ = dst;
  }

  Loc other_or_act0() const { return cur_ == Loc::user ? Loc::act0 : other(); }

  // HWIO f32 (Keras) -> the conv's chosen weights layout and type, once; quantised with one
  // scale per output channel when `scales` is given.
  memory load_conv_weights(const ConvWeights& w, const memory::desc& want,
                           const std::vector<float>& scales) {
    // {cout, cin, 3, 3} described as HWIO, which is how Keras stores the kernel.
    memory user({{w.cout, w.cin, 3, 3}, dt::f32, tag::hwio}, m_.eng,
                const_cast<float*>(w.kernel.data()));
    memory dst(want, m_.eng);
    dnnl::primitive_attr a;
    if (!scales.empty()) a.set_output_scales(1 << 0, scales);
    dnnl::reorder(dnnl::reorder::primitive_desc(m_.eng, user.get_desc(), m_.eng, want, a))
        .execute(m_.strm, user, dst);
    m_.strm.wait();
    return dst;
  }

  void note_scratch(const memory::desc& md) { scratch_ = std::max(scratch_, md.get_size()); }

  struct Arg {
    int arg;
    memory::desc md;
    Loc loc;
  };
  void push(std::string name, dnnl::primitive p, std::initializer_list<Arg> acts,
            std::unordered_map<int, memory> fixed = {}) {
    const size_t i = m_.steps.size();
    for (const auto& a : acts) {
      if (a.loc != Loc::user) act_size_ = std::max(act_size_, a.md.get_size());
      pending_.push_back({i, a.arg, a.md, a.loc});
    }
    m_.steps.push_back({std::move(name), std::move(p), std::move(fixed)});
  }

  void allocate() {
    m_.act[0].reserve(act_size_);
    m_.act[1].reserve(act_size_);
    m_.scratch.reserve(std::max<size_t>(scratch_, 64));
    const memory scratch(
        memory::desc({static_cast<memory::dim>(m_.scratch.size())}, dt::u8, tag::x), m_.eng,
        m_.scratch.data());
    for (const auto& p : pending_) {
      memory mem = p.loc == Loc::user
                       ? (p.arg == DNNL_ARG_FROM ? m_.user_src : m_.user_dst)
                       : memory(p.md, m_.eng, m_.act[p.loc == Loc::act0 ? 0 : 1].data());
      m_.steps[p.step].args[p.arg] = mem;
    }
    for (auto& s : m_.steps)
      if (!s.wino) s.args[DNNL_ARG_SCRATCHPAD] = scratch;
    // Staging rows for a short last batch: the user's n rows are copied in and padded.
    m_.stage_in.reserve(m_.in_shape.elems() * sizeof(float));
    m_.stage_out.reserve(m_.out_shape.elems() * sizeof(float));
  }

  Vgg16::Impl& m_;
  memory::desc cur_md_;
  Loc cur_ = Loc::user;
  float cur_scale_ = 1.f, next_scale_ = 1.f;  // int8: q = x * scale of the current activation
  std::optional<Int8Scales> scales_;
  size_t act_size_ = 0, scratch_ = 0;
  std::vector<Pending> pending_;
};

}  // namespace

Vgg16::Vgg16(const Vgg16Weights& weights, const NetConfig& config)
    : impl_(std::make_unique<Impl>()) {
  impl_->cfg = config;
  // What this CPU has no native kernel for is refused (UsageError naming the ISA), never run on
  // oneDNN's reference code or swapped for another algorithm in silence.
  machine().require_net(config.precision, config.algo);
  impl_->in_shape = input_shape_of(config);
  onednn::call([&] { Builder(*impl_).build(weights); },
               "oneDNN could not build VGG16 ({} -> {}, {})", config.from, config.to,
               to_string(config.precision));
}

Vgg16::~Vgg16() = default;
Vgg16::Vgg16(Vgg16&&) noexcept = default;
Vgg16& Vgg16::operator=(Vgg16&&) noexcept = default;

const NetConfig& Vgg16::config() const {
  return impl_->cfg;
}
Shape Vgg16::input_shape() const {
  return impl_->in_shape;
}
Shape Vgg16::output_shape() const {
  return impl_->out_shape;
}
double Vgg16::macs_per_image() const {
  return impl_->macs;
}

Shape Vgg16::input_shape_of(const NetConfig& config) {
  const int first = layer_index(config.from) + 1;
  return {config.batch, config.height, config.width,
          first == 0 ? 3 : vgg16_layers()[first - 1].cout};
}

std::size_t Vgg16::estimate_bytes(const NetConfig& config) {
  const int first = layer_index(config.from) + 1;
  const Shape in = input_shape_of(config);
  const std::vector<Shape> shapes = infer_shapes(in, config.from, config.to);
  const double act_elem = config.precision == Precision::f32    ? 4
                          : config.precision == Precision::bf16 ? 2
                                                                : 1;
  // In doubles: a huge batch must not overflow.
  double largest = in.elems_double();
  for (const Shape& s : shapes) largest = std::max(largest, s.elems_double());
  // tlkit's Winograd keeps its transformed kernels: 36 instead of 9 values per channel pair.
  double weights = 0;
  for (int i = first; i <= layer_index(config.to); ++i) {
    const LayerSpec& l = vgg16_layers()[i];
    if (l.kind != LayerKind::conv) continue;
    const bool wino = tlkit_winograd(config) && WinogradConv::takes(l.cin, l.cout);
    weights += (wino ? 36.0 : 9.0) * l.cin * l.cout + l.cout;
  }
  const double bytes = 2 * largest * act_elem +
                       4.0 * (in.elems_double() + shapes.back().elems_double()) + 4.0 * weights;
  return bytes >= static_cast<double>(SIZE_MAX) ? SIZE_MAX : static_cast<std::size_t>(bytes);
}

ConvAlgo Vgg16::algo_used() const {
  if (!impl_->wino.empty()) return ConvAlgo::winograd_tlkit;
  for (const auto& i : impl_->impls)
    if (i.find("wino") != std::string::npos) return ConvAlgo::winograd;
  return ConvAlgo::direct;
}

std::string Vgg16::describe() const {
  std::string s;
  for (const auto& i : impl_->impls) s += i + "\n";
  return s;
}

void Vgg16::forward(const float* src, int n, float* dst) {
  Impl& m = *impl_;
  const int batch = m.cfg.batch;
  if (n < 1 || n > batch)
    throw Error(fmt::format("VGG16 forward: {} images for a net built for batch {}", n, batch));
  const size_t in_row = m.in_shape.per_image(), out_row = m.out_shape.per_image();
  float* in = const_cast<float*>(src);
  float* out = dst;
  if (n < batch) {  // pad to the built batch: primitives are fixed per batch size
    in = reinterpret_cast<float*>(m.stage_in.data());
    std::memcpy(in, src, n * in_row * sizeof(float));
    std::memset(in + n * in_row, 0, (batch - n) * in_row * sizeof(float));
    out = reinterpret_cast<float*>(m.stage_out.data());
  }
  m.user_src.set_data_handle(in);
  m.user_dst.set_data_handle(out);
  onednn::call(
      [&] {
        for (auto& s : m.steps) {
          if (!s.wino) {
            s.prim.execute(m.strm, s.args);
            continue;
          }
          m.strm.wait();  // the primitives before it have written act[src]
          s.wino->forward(m.act[s.src].floats(), batch, m.act[s.dst].floats());
        }
        m.strm.wait();
      },
      "VGG16 forward failed");
  if (n < batch) std::memcpy(dst, out, n * out_row * sizeof(float));
}

}  // namespace tl
