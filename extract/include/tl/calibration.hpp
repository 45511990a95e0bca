// int8 calibration on the user's own images: a deterministic sample of the whole image list
// (the same for every shard of a cluster run), decoded as the extraction decodes them.
//
//   tl::Int8Calibration cal = tl::calibrate_on_images(weights, net, tl::list_images("photos"),
//                                                     image_options, /*count=*/64, std::cerr);
//   net.calibration = std::make_shared<const tl::Int8Calibration>(cal);  // the int8 net's ranges
#pragma once

#include <iosfwd>

#include "tl/image.hpp"
#include "tl/image_list.hpp"
#include "tl/vgg16.hpp"

namespace tl {

// Runs calibrate_int8 (f32) over up to `count` images picked at even steps across `list`
// (all of it, not one shard's slice). Images that cannot be decoded are skipped. Throws
// Error when none of the sampled images decodes.
Int8Calibration calibrate_on_images(const Vgg16Weights& weights, const NetConfig& net,
                                    const ImageList& list, const ImageOptions& image, int count,
                                    std::ostream& log);

}  // namespace tl
