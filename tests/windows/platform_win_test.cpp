// The Windows code paths of src/platform/ (platform.cpp, files.cpp, process.cpp), run as a
// Windows executable (under wine on the Linux CI, see scripts/test-windows): UTF-16 paths with
// non-ASCII and > MAX_PATH names, atomic replacement with MoveFileExW, read-only and locked
// targets, a killed process leaving no temporary file, the UTF-16 command line and environment,
// and the CryptoAPI ROOT store.
#include <windows.h>

#include <wincrypt.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "common/error.hpp"
#include "platform/platform.hpp"

namespace fs = std::filesystem;
using namespace tsign;

namespace {

// A fresh folder under the temp directory whose own name is non-ASCII, removed afterwards.
struct WinTemp {
  fs::path path;
  WinTemp() {
    std::random_device rd;
    path =
        fs::temp_directory_path() /
        platform::from_utf8("tsign-wïn-文件-" + std::to_string(rd()) + "-" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~WinTemp() {
    // Through \\?\ so that the > MAX_PATH test's folders go too; read-only bits cleared first.
    std::error_code ec;
    for (auto& e : fs::recursive_directory_iterator(long_name(path), ec))
      SetFileAttributesW(e.path().c_str(), FILE_ATTRIBUTE_NORMAL);
    fs::remove_all(long_name(path), ec);
  }
  static fs::path long_name(const fs::path& p) {
    return fs::path(L"\\\\?\\" + fs::absolute(p).lexically_normal().wstring());
  }
};

void put(const fs::path& p, const std::string& s) {
  platform::ReplaceFile f(p);
  f.write(as_bytes(s));
  f.commit();
}

std::string get(const fs::path& p) {
  platform::ReadFile f(p);
  auto b = f.read_at(0, static_cast<std::size_t>(f.size()));
  return {b.begin(), b.end()};
}

// Names in a folder as Windows lists them (FindFirstFileW), to see the real UTF-16 names.
std::vector<std::wstring> names_in(const fs::path& dir) {
  std::vector<std::wstring> v;
  WIN32_FIND_DATAW d;
  std::wstring pattern = WinTemp::long_name(dir).wstring() + L"\\*";
  HANDLE h = FindFirstFileW(pattern.c_str(), &d);
  if (h == INVALID_HANDLE_VALUE) return v;
  do {
    std::wstring n = d.cFileName;
    if (n != L"." && n != L"..") v.push_back(n);
  } while (FindNextFileW(h, &d));
  FindClose(h);
  return v;
}

struct Handle {
  HANDLE h = nullptr;
  ~Handle() {
    if (h && h != INVALID_HANDLE_VALUE) CloseHandle(h);
  }
};

// Starts win_child with the given UTF-16 arguments; its stdin and stdout are pipes.
struct Child {
  Handle proc, in_w, out_r;
  explicit Child(const std::wstring& args) {
    SECURITY_ATTRIBUTES sa{sizeof sa, nullptr, TRUE};
    Handle in_r, out_w;
    REQUIRE(CreatePipe(&in_r.h, &in_w.h, &sa, 0));
    REQUIRE(CreatePipe(&out_r.h, &out_w.h, &sa, 0));
    SetHandleInformation(in_w.h, HANDLE_FLAG_INHERIT, 0);
    SetHandleInformation(out_r.h, HANDLE_FLAG_INHERIT, 0);
    STARTUPINFOW si{};
    si.cb = sizeof si;
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = in_r.h;
    si.hStdOutput = out_w.h;
    si.hStdError = GetStdHandle(STD_ERROR_HANDLE);
    std::wstring cmd = L"\"" + fs::path(TSIGN_WIN_CHILD).wstring() + L"\" " + args;
    PROCESS_INFORMATION pi{};
    REQUIRE(
        CreateProcessW(nullptr, cmd.data(), nullptr, nullptr, TRUE, 0, nullptr, nullptr, &si, &pi));
    proc.h = pi.hProcess;
    CloseHandle(pi.hThread);
  }
  // One line of the child's stdout; blocks until it is there (or the child is gone).
  std::string line() {
    std::string s;
    char c;
    DWORD got = 0;
    while (ReadFile(out_r.h, &c, 1, &got, nullptr) && got == 1 && c != '\n')
      if (c != '\r') s += c;
    return s;
  }
  DWORD wait() {
    WaitForSingleObject(proc.h, INFINITE);
    DWORD code = 0;
    GetExitCodeProcess(proc.h, &code);
    return code;
  }
};

bool exists_w(const fs::path& p) {
  return GetFileAttributesW(WinTemp::long_name(p).c_str()) != INVALID_FILE_ATTRIBUTES;
}

// A self-signed certificate made here, so nothing binary is committed.
struct SelfSigned {
  std::unique_ptr<X509, decltype(&X509_free)> cert{X509_new(), X509_free};
  SelfSigned() {
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    REQUIRE(key);
    X509* x = cert.get();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME* n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>("tsign test root"), -1, -1,
                               0);
    X509_set_issuer_name(x, n);
    X509_set_pubkey(x, key);
    REQUIRE(X509_sign(x, key, EVP_sha256()) > 0);
    EVP_PKEY_free(key);
  }
};

std::string der(X509* x) {
  unsigned char* p = nullptr;
  int n = i2d_X509(x, &p);
  std::string s(reinterpret_cast<char*>(p), n > 0 ? static_cast<std::size_t>(n) : 0);
  OPENSSL_free(p);
  return s;
}

bool verifies(X509_STORE* store, X509* cert) {
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, cert, nullptr);
  bool ok = X509_verify_cert(ctx) == 1;
  X509_STORE_CTX_free(ctx);
  return ok;
}

struct EnvVar {
  std::wstring name;
  EnvVar(const wchar_t* n, const std::wstring& v) : name(n) {
    SetEnvironmentVariableW(n, v.c_str());
  }
  ~EnvVar() { SetEnvironmentVariableW(name.c_str(), nullptr); }
};

}  // namespace

TEST_CASE("non-ASCII file names are written and read as the same UTF-16 names", "[windows]") {
  WinTemp t;
  const std::string name = "Prüfung-签名-ñ-😀.exe";
  fs::path p = t.path / platform::from_utf8(name);
  put(p, "payload");
  CHECK(get(p) == "payload");
  auto names = names_in(t.path);
  REQUIRE(names.size() == 1);  // and no temporary file left beside it
  CHECK(names[0] == L"Prüfung-签名-ñ-\U0001F600.exe");
  CHECK(platform::to_utf8(fs::path(names[0])) == name);
}

TEST_CASE("paths longer than MAX_PATH work for reading, replacing and attributes", "[windows]") {
  WinTemp t;
  fs::path dir = t.path;
  for (int i = 0; i < 6; ++i) {
    dir /= platform::from_utf8(std::string(45, static_cast<char>('a' + i)) + "-ü");
    REQUIRE(CreateDirectoryW(WinTemp::long_name(dir).c_str(), nullptr));
  }
  fs::path p = dir / "long.dll";
  REQUIRE(p.wstring().size() > MAX_PATH);
  put(p, "first");
  CHECK(get(p) == "first");
  put(p, "second, longer");
  CHECK(get(p) == "second, longer");
  CHECK_FALSE(platform::is_read_only(p));
  CHECK(names_in(dir).size() == 1);
}

TEST_CASE("ReplaceFile keeps the old bytes until commit and leaves nothing behind", "[windows]") {
  WinTemp t;
  fs::path p = t.path / "app.exe";
  put(p, "old");
  {
    platform::ReplaceFile f(p);
    f.write(as_bytes(std::string("new bytes")));
    f.close();
    CHECK(get(p) == "old");
    CHECK(get(f.temp_path()) == "new bytes");  // the closed copy can be re-read and checked
    f.commit();
  }
  CHECK(get(p) == "new bytes");
  CHECK(names_in(t.path).size() == 1);

  {
    platform::ReplaceFile f(p);
    f.write(as_bytes(std::string("abandoned")));
  }  // no commit: the target keeps its bytes, the copy is removed
  CHECK(get(p) == "new bytes");
  CHECK(names_in(t.path).size() == 1);
}

TEST_CASE("a copy open for reading is renamed over the target, and read to its end after",
          "[windows]") {
  // The engine hashes a signed copy while it is renamed: ReadFile shares delete access.
  WinTemp t;
  fs::path p = t.path / "app.exe";
  put(p, "old");
  platform::ReplaceFile f(p);
  f.write(as_bytes(std::string("signed bytes")));
  f.close();
  platform::ReadFile copy(f.read_path());
  f.commit();
  CHECK(get(p) == "signed bytes");
  const Bytes read = copy.read_at(0, static_cast<std::size_t>(copy.size()));
  CHECK(std::string(read.begin(), read.end()) == "signed bytes");
}

TEST_CASE("a read-only target is reported and left unchanged", "[windows]") {
  WinTemp t;
  fs::path p = t.path / "ro.dll";
  put(p, "original");
  REQUIRE(SetFileAttributesW(p.c_str(), FILE_ATTRIBUTE_READONLY));
  CHECK(platform::is_read_only(p));
  {
    platform::ReplaceFile f(p);
    f.write(as_bytes(std::string("signed")));
    try {
      f.commit();
      FAIL("commit over a read-only file succeeded");
    } catch (const FileError& e) {
      CHECK_THAT(e.what(), Catch::Contains("ro.dll") && Catch::Contains("cannot replace"));
    }
  }
  SetFileAttributesW(p.c_str(), FILE_ATTRIBUTE_NORMAL);
  CHECK(get(p) == "original");
  CHECK(names_in(t.path).size() == 1);
}

TEST_CASE("a target locked by another program is reported and left unchanged", "[windows]") {
  WinTemp t;
  fs::path p = t.path / "locked.exe";
  put(p, "original");
  {
    // What an antivirus scanner or a running program does: open it without FILE_SHARE_DELETE.
    Handle lock;
    lock.h =
        CreateFileW(p.c_str(), GENERIC_READ, FILE_SHARE_READ, nullptr, OPEN_EXISTING, 0, nullptr);
    REQUIRE(lock.h != INVALID_HANDLE_VALUE);
    platform::ReplaceFile f(p);
    f.write(as_bytes(std::string("signed")));
    CHECK_THROWS_AS(f.commit(), FileError);
  }
  CHECK(get(p) == "original");
  CHECK(names_in(t.path).size() == 1);
}

TEST_CASE("a process killed while writing leaves no temporary file", "[windows]") {
  WinTemp t;
  fs::path p = t.path / platform::from_utf8("zielé.exe");
  put(p, "original");
  Child child(L"hold \"" + p.wstring() + L"\"");
  std::string ready = child.line();
  REQUIRE(ready.rfind("ready ", 0) == 0);
  fs::path temp = platform::from_utf8(ready.substr(6));
  CHECK(exists_w(temp));  // the half-written copy is there while the writer lives
  REQUIRE(TerminateProcess(child.proc.h, 9));
  CHECK(child.wait() == 9);
  CHECK_FALSE(exists_w(temp));
  CHECK(get(p) == "original");
  CHECK(names_in(t.path).size() == 1);
}

TEST_CASE("command-line arguments arrive as UTF-8", "[windows]") {
  Child child(L"args \"C:\\Übersetzung\\файл.dll\" 日本語");
  CHECK(child.line() == "C:\\Übersetzung\\файл.dll");
  CHECK(child.line() == "日本語");
  CHECK(child.wait() == 0);
}

TEST_CASE("environment values are read as UTF-8", "[windows]") {
  EnvVar v(L"TSIGN_WIN_TEST_VALUE", L"dossier-été-文件");
  CHECK(platform::getenv("TSIGN_WIN_TEST_VALUE") == std::optional<std::string>("dossier-été-文件"));
  CHECK_FALSE(platform::getenv("TSIGN_WIN_TEST_UNSET_VARIABLE").has_value());
}

TEST_CASE("run_capture (how the Azure CLI is run): output, exit code, missing program, timeout",
          "[windows]") {
  // The child by its Windows path (TSIGN_WIN_CHILD is the build's Linux path, which cmd.exe
  // would read as a switch): it is built beside this test executable.
  wchar_t self[MAX_PATH];
  REQUIRE(GetModuleFileNameW(nullptr, self, MAX_PATH) > 0);
  const std::string child =
      platform::to_utf8(fs::path(self).parent_path() / fs::path(TSIGN_WIN_CHILD).filename());
  // Through cmd.exe, as az is a .cmd script: arguments with spaces and non-ASCII survive.
  auto r = platform::run_capture({child, "exit", "3", "{\"token\": \"é 文\"}", "a warning"},
                                 std::chrono::seconds(60));
  CHECK(r.exit_code == 3);
  CHECK(r.out == "{\"token\": \"é 文\"}");
  CHECK(r.err == "a warning");
  CHECK_FALSE(r.timed_out);
  CHECK_FALSE(r.not_found);

  auto missing = platform::run_capture({"tsign-no-such-program-here"}, std::chrono::seconds(60));
  CHECK(missing.not_found);

  // cmd.exe starts the child: the timeout must end both (the job object), and return.
  auto hung = platform::run_capture({child, "hang"}, std::chrono::milliseconds(1500));
  CHECK(hung.timed_out);
}

TEST_CASE("trust roots come from the Windows ROOT store unless SSL_CERT_FILE is set", "[windows]") {
  EnvVar none(L"SSL_CERT_FILE", L"");
  SetEnvironmentVariableW(L"SSL_CERT_FILE", nullptr);

  // Every certificate of the ROOT store, as CryptoAPI lists it.
  std::vector<std::unique_ptr<X509, decltype(&X509_free)>> roots;
  HCERTSTORE sys = CertOpenSystemStoreW(0, L"ROOT");
  REQUIRE(sys);
  for (PCCERT_CONTEXT c = nullptr; (c = CertEnumCertificatesInStore(sys, c)) != nullptr;) {
    const unsigned char* d = c->pbCertEncoded;
    if (X509* x = d2i_X509(nullptr, &d, static_cast<long>(c->cbCertEncoded)))
      roots.emplace_back(x, X509_free);
  }
  CertCloseStore(sys, 0);
  REQUIRE_FALSE(roots.empty());

  X509_STORE* store = X509_STORE_new();
  platform::load_trust_roots(store);
  // Every certificate of the Windows store is in OpenSSL's store (compared by DER) ...
  std::set<std::string> loaded;
  STACK_OF(X509)* all = X509_STORE_get1_all_certs(store);
  for (int i = 0; i < sk_X509_num(all); ++i) loaded.insert(der(sk_X509_value(all, i)));
  sk_X509_pop_free(all, X509_free);
  int missing = 0;
  for (auto& r : roots) missing += loaded.count(der(r.get())) ? 0 : 1;
  CHECK(missing == 0);
  // ... and trusted: a current self-signed root verifies (some in the store have expired).
  int trusted = 0;
  for (auto& r : roots)
    if (X509_check_issued(r.get(), r.get()) == X509_V_OK && verifies(store, r.get())) ++trusted;
  CHECK(trusted > 0);
  SelfSigned mine;
  CHECK_FALSE(verifies(store, mine.cert.get()));
  X509_STORE_free(store);

  // SSL_CERT_FILE replaces the system store: only its certificates are trusted.
  WinTemp t;
  fs::path pem = t.path / platform::from_utf8("ca-ümlaut.pem");
  {
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, mine.cert.get());
    char* data = nullptr;
    long n = BIO_get_mem_data(b, &data);
    put(pem, std::string(data, static_cast<std::size_t>(n)));
    BIO_free(b);
  }
  EnvVar set(L"SSL_CERT_FILE", pem.wstring());
  X509_STORE* own = X509_STORE_new();
  platform::load_trust_roots(own);
  CHECK(verifies(own, mine.cert.get()));
  CHECK_FALSE(verifies(own, roots.front().get()));
  X509_STORE_free(own);

  EnvVar bad(L"SSL_CERT_FILE", (t.path / "missing.pem").wstring());
  X509_STORE* none_store = X509_STORE_new();
  CHECK_THROWS_AS(platform::load_trust_roots(none_store), InputError);
  X509_STORE_free(none_store);
}
