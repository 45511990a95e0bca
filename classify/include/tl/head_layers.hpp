// The layers of a dense head, each for a fixed batch size. Dense, ReLU and softmax run on
// oneDNN primitives (built once in the constructor, executed on the caller's buffers);
// dropout is a hand-written mask (see dropout_mask). Buffers are plain row-major floats: a
// batch is {N, features}, a Dense kernel is Keras's [in, out] and its bias [out].
//
//   tl::Scratchpad scratch;                                  // shared by layers run in turn
//   tl::DenseLayer fc(32, 512, 10, tl::Pass::training, scratch);
//   fc.forward(x, kernel, bias, y);                          // {32, 512} -> {32, 10}
//   fc.backward(x, kernel, dy, dx, dkernel, dbias);          // {32, 10} -> {32, 512}, grads
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string>

#include "tl/layer_plan.hpp"

namespace tl {

// Fully connected layer on oneDNN inner_product: dst = src · kernel + bias.
class DenseLayer {
 public:
  // `diff_src` = false skips the backward-data primitive (the first layer of a head, whose
  // input is a constant feature, needs only the weight gradients).
  DenseLayer(int batch, int in, int out, Pass pass, Scratchpad& scratch, bool diff_src = true);
  ~DenseLayer();
  DenseLayer(DenseLayer&&) noexcept;
  DenseLayer& operator=(DenseLayer&&) noexcept;

  int batch() const;
  int in() const;
  int out() const;

  // {N, in} · [in, out] + [out] -> {N, out}
  void forward(const float* src, const float* kernel, const float* bias, float* dst);
  // {N, out} -> {N, in} (diff_src, skipped when null), [in, out] and [out] (overwritten).
  void backward(const float* src, const float* kernel, const float* diff_dst, float* diff_src,
                float* diff_kernel, float* diff_bias);
  std::string describe() const;  // the oneDNN implementations chosen

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ReLU on oneDNN eltwise: dst = max(src, 0); backward from the forward's src.
class ReluLayer {
 public:
  ReluLayer(int batch, int size, Pass pass, Scratchpad& scratch);
  ~ReluLayer();
  ReluLayer(ReluLayer&&) noexcept;
  ReluLayer& operator=(ReluLayer&&) noexcept;
  // {N, size} -> {N, size}
  void forward(const float* src, float* dst);
  // {N, size} -> {N, size}: diff_src = diff_dst where src > 0, else 0.
  void backward(const float* src, const float* diff_dst, float* diff_src);
  std::string describe() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Softmax over the classes of each row on oneDNN softmax (forward only: the training
// gradient is the fused softmax-cross-entropy one, see loss.hpp).
class SoftmaxLayer {
 public:
  SoftmaxLayer(int batch, int classes, Scratchpad& scratch);
  ~SoftmaxLayer();
  SoftmaxLayer(SoftmaxLayer&&) noexcept;
  SoftmaxLayer& operator=(SoftmaxLayer&&) noexcept;
  // {N, C} logits -> {N, C} probabilities
  void forward(const float* src, float* dst);
  std::string describe() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Inverted dropout as Keras trains it: each unit is kept with probability 1 - rate and then
// scaled by 1 / (1 - rate), so inference is the identity. Fills mask[i] with 0 (dropped: the
// draw uniform01 < rate) or 1 / (1 - rate), one draw per unit in order. 0 <= rate < 1.
//
// Hand-written rather than a oneDNN primitive: oneDNN 2.6 has no dropout, and the mask must
// come from our seeded generator to make training reproducible. It is one multiply per unit.
void dropout_mask(std::mt19937_64& rng, float rate, std::span<float> mask);

// dst[i] = src[i] * mask[i]: dropout forward, and its backward (d src = d dst * mask).
// src and dst may be the same buffer.
void apply_mask(const float* src, std::span<const float> mask, float* dst);

}  // namespace tl
