// The platform layer's small calls: the environment, UTF-8 paths, the console, the command line
// and the trust store. Files are files.cpp, child processes process.cpp.
#include "platform/platform.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <openssl/err.h>
#include <openssl/x509.h>

#include "common/error.hpp"
#include "platform/env.hpp"

#ifdef _WIN32
// windows.h first: wincrypt.h and shellapi.h need its types.
#include <windows.h>

#include <io.h>
#include <shellapi.h>
#include <wincrypt.h>
#else
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

bool is_terminal(std::FILE* stream) {
#ifdef _WIN32
  return _isatty(_fileno(stream)) != 0;
#else
  return ::isatty(fileno(stream)) != 0;
#endif
}

void setup_memory() {
#ifdef __GLIBC__
  // From the heap up to 4 MiB (the chunks and the copy's queue), not mmap; and the heap's free
  // top is given back only past 64 MiB. A run's peak memory is unchanged: what stays is what a
  // file used and the next one uses again.
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
#endif
}

void setup_console() {
#ifdef _WIN32
  // tsign writes UTF-8; a console shows it right only in code page 65001. Pipes and files (as on
  // a GitHub runner) get the bytes unchanged either way.
  SetConsoleOutputCP(CP_UTF8);
  SetConsoleCP(CP_UTF8);
#endif
}

std::vector<std::string> args_utf8(int argc, char** argv) {
#ifdef _WIN32
  // argv is in the ANSI code page, which loses every character outside it: take the UTF-16
  // command line instead.
  (void)argv;
  int n = 0;
  wchar_t** w = CommandLineToArgvW(GetCommandLineW(), &n);
  if (w) {
    std::vector<std::string> v;
    for (int i = 1; i < n; ++i) v.push_back(to_utf8(fs::path(w[i])));
    LocalFree(w);
    return v;
  }
#endif
  return std::vector<std::string>(argv + (argc > 0 ? 1 : 0), argv + argc);
}

void load_trust_roots(X509_STORE* store) {
  if (auto file = env::get("SSL_CERT_FILE"); file && !file->empty()) {
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
  // SSL_CERT_DIR, when set, is OpenSSL's to read; the probe only stands in for a missing file.
  if (auto extra = extra_ca_bundle(X509_get_default_cert_file())) {
    // A bundle that fails half-way still added the certificates before the bad one; the
    // handshake or the chain check then names what is not trusted.
    if (X509_STORE_load_file(store, extra->c_str()) != 1) ERR_clear_error();
  }
#endif
}

std::optional<fs::path> extra_ca_bundle(const fs::path& openssl_default,
                                        std::span<const std::string_view> candidates) {
  std::error_code ec;
  if (fs::is_regular_file(openssl_default, ec)) return std::nullopt;
  for (std::string_view c : candidates) {
    fs::path p(c);
    // Readable, not just present: a bundle only root can read would load nothing.
    if (fs::is_regular_file(p, ec) && std::ifstream(p, std::ios::binary).good()) return p;
  }
  return std::nullopt;
}

void load_trust_roots(SSL_CTX* ctx) {
  load_trust_roots(SSL_CTX_get_cert_store(ctx));
}

}  // namespace tsign::platform
