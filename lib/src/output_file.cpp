// Output checks (identity, kind) and atomic writes of the files a run produces.
#include "tl/output_file.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>

#include <fmt/format.h>

#include "tl/error.hpp"
#include "tl/hdf5.hpp"

namespace fs = std::filesystem;

namespace tl {
namespace {

std::string_view kind_name(FileKind k) {
  switch (k) {
    case FileKind::features:
      return "a feature file";
    case FileKind::model:
      return "a model";
    case FileKind::text:
      return "a text file";
    case FileKind::image:
      return "a PNG image";
    case FileKind::onnx:
      return "an ONNX model";
  }
  return "?";
}

// An ONNX ModelProto as protobuf serialises it: field 1 (ir_version, a varint from 1 to 127)
// first, then a length-delimited field (producer_name, ..., graph: fields 2 to 8). No text
// file starts with byte 0x08.
bool looks_like_onnx(const char* head) {
  const auto b = [&](int i) { return static_cast<unsigned char>(head[i]); };
  return b(0) == 0x08 && b(1) >= 1 && b(1) < 0x80 && (b(2) & 7) == 2 && (b(2) >> 3) >= 2 &&
         (b(2) >> 3) <= 8;
}

// What an existing regular file holds, from its first bytes (and an HDF5 file's "format").
std::optional<FileKind> kind_of(const fs::path& p) {
  char head[8] = {};
  std::ifstream in(p, std::ios::binary);
  in.read(head, sizeof head);
  if (in.gcount() < 8) return std::nullopt;
  if (std::memcmp(head, "\x89HDF\r\n\x1a\n", 8) == 0) {
    try {
      const auto f = h5::File::open(p, h5::Mode::read_only, h5::Access::reader);
      const std::string format = f.has_attr("format") ? f.read_attr<std::string>("format") : "";
      if (format == "tlkit-features") return FileKind::features;
      if (format == "tlkit-model") return FileKind::model;
    } catch (const Error&) {
    }
    return FileKind::features;  // some other HDF5 file: data, never text or an image
  }
  if (std::memcmp(head, "\x89PNG\r\n\x1a\n", 8) == 0) return FileKind::image;
  if (looks_like_onnx(head)) return FileKind::onnx;
  return std::nullopt;  // text or anything else: replaceable by text
}

struct Identity {
  dev_t dev = 0;
  ino_t ino = 0;
  fs::path resolved;
};

Identity identity_of(const fs::path& p) {
  Identity id;
  std::error_code ec;
  id.resolved = fs::weakly_canonical(fs::absolute(p, ec), ec);
  struct stat st {};
  if (::stat(p.c_str(), &st) == 0) {
    id.dev = st.st_dev;
    id.ino = st.st_ino;
  }
  return id;
}

bool same_file(const Identity& a, const Identity& b) {
  if (a.ino != 0 && b.ino != 0) return a.dev == b.dev && a.ino == b.ino;
  return a.resolved == b.resolved;
}

}  // namespace

void check_outputs(const std::vector<InputFile>& inputs, const std::vector<OutputFile>& outputs,
                   bool overwrite) {
  std::vector<std::pair<const OutputFile*, Identity>> seen;
  for (const OutputFile& o : outputs) {
    if (o.path.empty()) continue;
    std::error_code ec;
    const auto st = fs::symlink_status(o.path, ec);
    if (fs::is_symlink(st) && !fs::exists(o.path, ec))
      throw UsageError(fmt::format(
          "{} '{}' is a dangling symbolic link (to '{}'): remove it or give another name", o.option,
          o.path.string(), fs::read_symlink(o.path, ec).string()));
    const auto target = fs::status(o.path, ec);
    if (fs::exists(target) && !fs::is_regular_file(target))
      throw UsageError(fmt::format(
          "{} '{}' exists and is not a regular file ({}): it is never replaced; give a file "
          "name",
          o.option, o.path.string(),
          fs::is_directory(target) ? "a folder" : "a device, pipe or socket"));
    const Identity id = identity_of(o.path);
    for (const InputFile& in : inputs)
      if (!in.path.empty() && same_file(id, identity_of(in.path)))
        throw UsageError(fmt::format("{} '{}' is the input {} '{}': writing it would destroy it",
                                     o.option, o.path.string(), in.option, in.path.string()));
    for (const auto& [other, other_id] : seen)
      if (same_file(id, other_id))
        throw UsageError(fmt::format("{} and {} are the same file '{}': give each its own name",
                                     other->option, o.option, o.path.string()));
    seen.emplace_back(&o, id);
    if (!overwrite && fs::is_regular_file(target)) {
      const auto have = kind_of(o.path);
      const bool fits = have ? *have == o.kind : (o.kind == FileKind::text);
      if (!fits)
        throw UsageError(fmt::format(
            "{} '{}' exists and is {}, not {}: --overwrite replaces it, or give another name",
            o.option, o.path.string(), have ? kind_name(*have) : "not an HDF5 or PNG file",
            kind_name(o.kind)));
    }
  }
}

fs::path temporary_path_for(const fs::path& path) {
  static std::atomic<unsigned> counter{0};
  std::error_code ec;
  const fs::path dir = fs::absolute(path, ec).parent_path();
  const std::string prefix = path.filename().string() + ".tmp-";
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.starts_with(prefix)) continue;
    const long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
    if (pid > 0 && pid != ::getpid() && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      std::error_code ignored;
      fs::remove(it->path(), ignored);  // left by a killed run of this output
    }
  }
  return fs::path(fmt::format("{}.tmp-{}-{}", path.string(), ::getpid(), counter++));
}

void write_file_atomically(const fs::path& path, std::string_view bytes) {
  const fs::path tmp = temporary_path_for(path);
  auto fail = [&](const char* what, int err) {
    ::unlink(tmp.c_str());
    throw Error(
        fmt::format("cannot write '{}': {} failed: {} (the previous file, if any, is "
                    "unchanged)",
                    path.string(), what, std::strerror(err)));
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    throw Error(fmt::format("cannot write '{}': cannot create '{}': {}", path.string(),
                            tmp.string(), std::strerror(err)));
  }
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      ::close(fd);
      fail("write", err);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    fail("fsync", err);
  }
  if (::close(fd) != 0) fail("close", errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename", errno);
  const fs::path dir = fs::absolute(path).parent_path();
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);  // the rename made durable; a failure here loses nothing already written
    ::close(dfd);
  }
}

}  // namespace tl
