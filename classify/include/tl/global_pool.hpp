// How a stored feature row [H, W, C] becomes the head's input: Keras's Flatten (the row as
// stored, (h, w, c) order) or a global average / max pool over H and W (Keras's
// GlobalAveragePooling2D / GlobalMaxPooling2D, or VGG16(pooling="avg"|"max")).
//
//   std::vector<float> out(c);
//   tl::global_pool(tl::Pool::avg, row, h, w, c, out.data());   // [h, w, c] -> [c]
#pragma once

#include <string_view>

namespace tl {

enum class Pool { flatten, avg, max };

Pool parse_pool(std::string_view s);  // "flatten" | "avg" | "max"; UsageError otherwise
std::string_view to_string(Pool p);

// Floats per sample after the pool: h*w*c for flatten, c otherwise.
long long pooled_size(Pool p, int h, int w, int c);

// One row [h, w, c] -> [c] (avg, max) or [h*w*c] (flatten: a copy).
//
// Hand-written rather than a oneDNN pooling primitive: it runs per row inside the oneTBB
// workers that prepare a batch (a primitive there would open an OpenMP region from each TBB
// worker, see the oneDNN notes), it is a streaming reduction the compiler vectorises over c,
// and it sits before the first trainable layer, so training never needs its backward.
void global_pool(Pool p, const float* row, int h, int w, int c, float* out);

// Backward of global_pool for one row: d out -> d row [h, w, c] (overwritten). avg spreads
// each channel's gradient evenly over the h*w positions; max routes it to the maximal position
// (the first in (h, w) order on ties), as Keras's max pool does. For gradient checks and for
// fine-tuning through the pool later.
void global_pool_backward(Pool p, const float* row, int h, int w, int c, const float* diff_out,
                          float* diff_row);

}  // namespace tl
