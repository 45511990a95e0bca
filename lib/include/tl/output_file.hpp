// The files a run writes: checked against its inputs and each other before it starts, and
// written whole or not at all.
//
//   tl::check_outputs({{"--train", "t.h5"}},
//                     {{"--output", "m.h5", tl::FileKind::model},
//                      {"--history", "h.csv", tl::FileKind::text}},
//                     /*overwrite=*/false);     // UsageError naming both options on a clash
//   tl::write_file_atomically("h.csv", text);    // temp file, fsync, rename: never half-written
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace tl {

// What an output holds, to refuse replacing a file of another kind.
enum class FileKind { features, model, text, image, onnx };

struct InputFile {
  std::string option;  // "--train"
  std::filesystem::path path;
};
struct OutputFile {
  std::string option;  // "--output"
  std::filesystem::path path;
  FileKind kind;
};

// Throws UsageError, naming the options and files, when an output
//  - is one of the inputs or another output (the same file by any name: symlinks followed,
//    hard links by inode);
//  - exists and is not a regular file (a device, a pipe, a folder), or is a dangling symlink;
//  - exists and holds another kind of file (an HDF5 feature file or model where text or a
//    PNG goes, a feature file where a model goes, ...), unless `overwrite`.
// Empty paths are skipped.
void check_outputs(const std::vector<InputFile>& inputs, const std::vector<OutputFile>& outputs,
                   bool overwrite);

// Writes `bytes` as `path`: into a new temporary file in the same folder, fsync'ed, then
// renamed over `path` (the folder fsync'ed): a kill or a full disk leaves the old file or the
// new one, never a part. Error naming the file and the reason (errno); the temporary is
// removed on failure.
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes);

// A temporary name next to `path`, unique to this process and call: "PATH.tmp-PID-N". The
// temporaries of `path` that a killed process left ("PATH.tmp-PID-N" of a PID that no longer
// runs) are removed first.
std::filesystem::path temporary_path_for(const std::filesystem::path& path);

}  // namespace tl
