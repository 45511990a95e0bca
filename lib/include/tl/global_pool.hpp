// Global pooling of a feature row over H and W: none (the row as stored, [H, W, C] in Keras's
// Flatten order), avg or max (Keras's GlobalAveragePooling2D / GlobalMaxPooling2D, or
// VGG16(pooling="avg"|"max")). tl-extract pools rows before storing them (--pool), a head pools
// the rows it reads (tl-train --pool); both call this one implementation.
//
//   tl::Pool p = tl::parse_pool("avg");                  // UsageError for an unknown name
//   std::vector<float> out(tl::pooled_size(p, h, w, c));
//   tl::global_pool(p, row, h, w, c, out.data());        // [h, w, c] -> [c]
#pragma once

#include <string_view>

namespace tl {

enum class Pool { none, avg, max };

// "none" (also "flatten": what a head does with rows that are not pooled), "avg", "max";
// UsageError naming the accepted values otherwise.
Pool parse_pool(std::string_view s);
std::string_view to_string(Pool p);  // "none", "avg", "max"

// Floats per row after the pool: h*w*c for none, c otherwise.
long long pooled_size(Pool p, int h, int w, int c);

// One row [h, w, c] -> [c] (avg, max) or [h*w*c] (none: a copy). avg sums each channel in
// (h, w) order in double and divides once, then rounds to float; max is exact.
//
// Hand-written rather than a oneDNN pooling primitive: it runs per row inside the oneTBB
// workers that prepare a batch (a primitive there would open an OpenMP region from each TBB
// worker, see the oneDNN notes), and it is a streaming reduction the compiler vectorises over c.
void global_pool(Pool p, const float* row, int h, int w, int c, float* out);

// Backward of global_pool for one row: d out -> d row [h, w, c] (overwritten). avg spreads
// each channel's gradient evenly over the h*w positions; max routes it to the maximal position
// (the first in (h, w) order on ties), as Keras's max pool does.
void global_pool_backward(Pool p, const float* row, int h, int w, int c, const float* diff_out,
                          float* diff_row);

}  // namespace tl
