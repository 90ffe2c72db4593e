#include "platform/platform.hpp"

#include <cstdlib>
#include <system_error>

#include <openssl/x509.h>

#include "common/error.hpp"

#ifdef _WIN32
#include <io.h>
#include <wincrypt.h>
#include <windows.h>
#else
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace tsign::platform {

namespace fs = std::filesystem;

std::optional<std::string> getenv(const std::string& name) {
#ifdef _WIN32
  std::wstring wname = from_utf8(name).wstring();
  DWORD n = GetEnvironmentVariableW(wname.c_str(), nullptr, 0);
  if (n == 0) return std::nullopt;
  std::wstring buf(n, L'\0');
  n = GetEnvironmentVariableW(wname.c_str(), buf.data(), n);
  buf.resize(n);
  return to_utf8(fs::path(buf));
#else
  const char* v = std::getenv(name.c_str());
  if (!v) return std::nullopt;
  return std::string(v);
#endif
}

std::string to_utf8(const fs::path& p) {
  auto u8 = p.u8string();
  return std::string(u8.begin(), u8.end());
}

fs::path from_utf8(std::string_view s) {
  return fs::path(std::u8string(s.begin(), s.end()));
}

namespace {

std::FILE* open_file(const fs::path& p, const char* mode) {
#ifdef _WIN32
  std::wstring wmode(mode, mode + std::char_traits<char>::length(mode));
  return _wfopen(p.c_str(), wmode.c_str());
#else
  return std::fopen(p.c_str(), mode);
#endif
}

int seek(std::FILE* f, std::uint64_t off) {
#ifdef _WIN32
  return _fseeki64(f, static_cast<__int64>(off), SEEK_SET);
#else
  return fseeko(f, static_cast<off_t>(off), SEEK_SET);
#endif
}

std::string describe_errno(int err) {
  return std::generic_category().message(err);
}

}  // namespace

ReadFile::ReadFile(const fs::path& path) : path_(path) {
  std::error_code ec;
  auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw FileError(to_utf8(path) + ": no such file");
  if (!fs::is_regular_file(st)) throw FileError(to_utf8(path) + ": not a regular file");
  f_ = open_file(path, "rb");
  if (!f_) throw FileError(to_utf8(path) + ": cannot open for reading: " + describe_errno(errno));
  size_ = fs::file_size(path, ec);
  if (ec) throw FileError(to_utf8(path) + ": cannot read its size: " + ec.message());
  // Large sequential reads: hashing is one pass over the file.
  std::setvbuf(f_, nullptr, _IOFBF, 1 << 16);
}

ReadFile::~ReadFile() {
  if (f_) std::fclose(f_);
}

void ReadFile::read_at(std::uint64_t offset, std::span<std::uint8_t> out) {
  if (out.empty()) return;
  if (offset > size_ || out.size() > size_ - offset)
    throw FileError(to_utf8(path_) + ": unexpected end of file");
  if (offset != pos_ && seek(f_, offset) != 0)
    throw FileError(to_utf8(path_) + ": cannot seek: " + describe_errno(errno));
  std::size_t got = std::fread(out.data(), 1, out.size(), f_);
  pos_ = offset + got;
  if (got != out.size()) throw FileError(to_utf8(path_) + ": read failed or file shrank");
}

Bytes ReadFile::read_at(std::uint64_t offset, std::size_t n) {
  Bytes b(n);
  read_at(offset, std::span<std::uint8_t>(b));
  return b;
}

ReplaceFile::ReplaceFile(const fs::path& target) : target_(target) {
  // Beside the target, so the final rename never crosses a file system.
  auto name = target.filename();
  name += fs::path(".tsign-" + to_hex(random_bytes(6)) + ".tmp");
  temp_ = target.parent_path() / name;
#ifdef _WIN32
  f_ = _wfopen(temp_.c_str(), L"wbx");
#else
  int fd = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  f_ = fd >= 0 ? fdopen(fd, "wb") : nullptr;
#endif
  if (!f_)
    throw FileError(to_utf8(target) +
                    ": cannot create a temporary file beside it: " + describe_errno(errno));
  std::setvbuf(f_, nullptr, _IOFBF, 1 << 16);
}

ReplaceFile::~ReplaceFile() {
  if (f_) std::fclose(f_);
  if (!committed_) {
    std::error_code ec;
    fs::remove(temp_, ec);
  }
}

void ReplaceFile::write(ByteView data) {
  if (!f_) throw FileError(to_utf8(target_) + ": write after close");
  if (!data.empty() && std::fwrite(data.data(), 1, data.size(), f_) != data.size())
    throw FileError(to_utf8(target_) + ": write failed: " + describe_errno(errno));
}

void ReplaceFile::close() {
  if (!f_) return;
  bool ok = std::fflush(f_) == 0;
#ifdef _WIN32
  ok = ok && FlushFileBuffers(reinterpret_cast<HANDLE>(_get_osfhandle(_fileno(f_))));
#else
  ok = ok && ::fsync(fileno(f_)) == 0;
#endif
  int err = errno;
  ok = (std::fclose(f_) == 0) && ok;
  f_ = nullptr;
  if (!ok)
    throw FileError(to_utf8(target_) + ": writing the signed copy failed: " + describe_errno(err));
}

void ReplaceFile::commit() {
  close();
  std::error_code ec;
  // Keep the original's permissions (e.g. the executable bit).
  auto perms = fs::status(target_, ec).permissions();
  if (!ec) fs::permissions(temp_, perms, ec);
#ifdef _WIN32
  if (!MoveFileExW(temp_.c_str(), target_.c_str(),
                   MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH))
    throw FileError(to_utf8(target_) + ": cannot replace the file (is it open elsewhere?), error " +
                    std::to_string(GetLastError()));
#else
  if (::rename(temp_.c_str(), target_.c_str()) != 0)
    throw FileError(to_utf8(target_) + ": cannot replace the file: " + describe_errno(errno));
#endif
  committed_ = true;
}

bool is_read_only(const fs::path& p) {
#ifdef _WIN32
  DWORD a = GetFileAttributesW(p.c_str());
  return a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_READONLY);
#else
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return false;
  return (st.st_mode & 0222) == 0 || ::access(p.c_str(), W_OK) != 0;
#endif
}

bool is_terminal(std::FILE* stream) {
#ifdef _WIN32
  return _isatty(_fileno(stream)) != 0;
#else
  return ::isatty(fileno(stream)) != 0;
#endif
}

void setup_console() {
#ifdef _WIN32
  SetConsoleOutputCP(CP_UTF8);
  SetConsoleCP(CP_UTF8);
#endif
}

void load_trust_roots(X509_STORE* store) {
  if (auto file = getenv("SSL_CERT_FILE"); file && !file->empty()) {
    if (X509_STORE_load_file(store, file->c_str()) != 1)
      throw InputError("SSL_CERT_FILE=" + *file +
                       ": cannot load CA certificates: " + openssl_error_text());
    return;
  }
#ifdef _WIN32
  HCERTSTORE sys = CertOpenSystemStoreW(0, L"ROOT");
  if (sys) {
    PCCERT_CONTEXT ctx = nullptr;
    while ((ctx = CertEnumCertificatesInStore(sys, ctx)) != nullptr) {
      const unsigned char* p = ctx->pbCertEncoded;
      X509* x = d2i_X509(nullptr, &p, static_cast<long>(ctx->cbCertEncoded));
      if (x) {
        X509_STORE_add_cert(store, x);
        X509_free(x);
      }
    }
    CertCloseStore(sys, 0);
  }
#else
  X509_STORE_set_default_paths(store);
#endif
}

void load_trust_roots(SSL_CTX* ctx) {
  load_trust_roots(SSL_CTX_get_cert_store(ctx));
}

}  // namespace tsign::platform
