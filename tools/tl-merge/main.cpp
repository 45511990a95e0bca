// tl-merge: the shard folder of a Slurm array extraction -> one feature file.
#include <iostream>

#include "cli.hpp"
#include "tl/merge.hpp"

int main(int argc, char** argv) {
  const tl::cli::ToolInfo info{
      "tl-merge", "tl-merge SHARD_FOLDER --output FILE.h5 [--copy]",
      "Checks that a shard folder (tl-extract --slurm-array, --shard K/N) holds every shard "
      "0..N-1, complete and made with the same options, then writes one feature file that "
      "reads as a single-machine run: an HDF5 virtual dataset over the shards (default; keep "
      "the shard folder next to it) or a full copy (--copy).",
      "tl-merge feats.shards --output feats.h5"};
  return tl::cli::run(info, argc, argv, [&](tl::cli::Parser& p) {
    namespace po = tl::cli::po;
    std::string shards, output;
    tl::MergeConfig cfg;
    po::options_description o("Merging");
    o.add_options()("shards", po::value(&shards)->value_name("FOLDER"),
                    "the shard folder (also the first positional argument)")(
        "output", po::value(&output)->value_name("FILE.h5"), "the merged file to write")(
        "copy", po::bool_switch(&cfg.copy),
        "copy every row instead of writing a virtual dataset over the shard files")(
        "overwrite", po::bool_switch(&cfg.overwrite), "replace an existing output");
    p.add(o);
    p.positional("shards", 1);
    if (!p.parse()) return 0;
    if (shards.empty()) throw tl::UsageError("the shard folder is required (tl-merge FOLDER ...)");
    cfg.shards = shards;
    cfg.output = output;
    tl::merge_shards(cfg, std::cerr);
    return 0;
  });
}
