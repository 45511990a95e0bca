// SHA-256 of a file's bytes with OpenSSL's EVP interface, read in 1 MiB chunks.
#include <openssl/evp.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "tl/error.hpp"
#include "tl/weights.hpp"

namespace tl {

std::string sha256_file(const std::filesystem::path& file) {
  const std::string name = file.string();
  auto fail = [&](const std::string& why) -> Error {
    return Error("sha256 of '" + name + "': " + why);
  };
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(name.c_str(), "rb"), std::fclose);
  if (!f) throw fail(std::string("cannot open it: ") + std::strerror(errno));
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    throw fail("OpenSSL could not start a SHA-256 digest");

  std::vector<unsigned char> buf(std::size_t{1} << 20);
  for (;;) {
    const std::size_t n = std::fread(buf.data(), 1, buf.size(), f.get());
    if (n > 0 && EVP_DigestUpdate(ctx.get(), buf.data(), n) != 1)
      throw fail("OpenSSL SHA-256 update failed");
    if (n < buf.size()) {
      if (std::ferror(f.get())) throw fail(std::string("read error: ") + std::strerror(errno));
      break;  // end of file
    }
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), md, &len) != 1) throw fail("OpenSSL SHA-256 final failed");

  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    hex += kHex[md[i] >> 4];
    hex += kHex[md[i] & 0xf];
  }
  return hex;
}

}  // namespace tl
