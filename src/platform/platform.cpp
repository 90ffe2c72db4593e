#include "platform/platform.hpp"

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <set>
#include <system_error>

#include <openssl/x509.h>

#include "common/error.hpp"
#include "platform/env.hpp"

#ifdef _WIN32
// windows.h first: wincrypt.h and shellapi.h need its types.
#include <windows.h>

#include <fcntl.h>
#include <io.h>
#include <shellapi.h>
#include <wincrypt.h>
#else
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#include <thread>

#ifndef _WIN32
extern char** environ;  // POSIX: the environment handed to posix_spawnp
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

#ifdef _WIN32
// Win32 file APIs stop at MAX_PATH (260 UTF-16 units) unless the path is absolute and carries
// the \\?\ prefix, which also turns off their normalisation: so normalise first, then prefix.
std::wstring long_path(const fs::path& p) {
  std::wstring w = p.wstring();
  if (w.size() < 240 || w.starts_with(L"\\\\?\\")) return w;
  std::error_code ec;
  fs::path abs = fs::absolute(p, ec);
  if (ec) return w;
  std::wstring a = abs.lexically_normal().wstring();
  for (auto& c : a)
    if (c == L'/') c = L'\\';
  if (a.starts_with(L"\\\\")) return L"\\\\?\\UNC\\" + a.substr(2);
  return L"\\\\?\\" + a;
}

// The system's own text for a Win32 error code, for messages a user can act on.
std::string win_error_text(DWORD code) {
  wchar_t* buf = nullptr;
  DWORD n = FormatMessageW(
      FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
      nullptr, code, 0, reinterpret_cast<wchar_t*>(&buf), 0, nullptr);
  std::wstring w = n && buf ? std::wstring(buf, n) : std::wstring();
  if (buf) LocalFree(buf);
  while (!w.empty() &&
         (w.back() == L'\n' || w.back() == L'\r' || w.back() == L' ' || w.back() == L'.'))
    w.pop_back();
  std::string text = to_utf8(fs::path(w));
  return (text.empty() ? std::string("error") : text) + " (Win32 error " + std::to_string(code) +
         ")";
}

// Marks an open file for deletion when its last handle closes, or clears the mark. While the
// temporary copy is being written the mark is set, so if the process is killed (Ctrl-C,
// TerminateProcess, a crash) the system removes the half-written copy itself.
bool set_delete_on_close(HANDLE h, bool on) {
  FILE_DISPOSITION_INFO info{};
  info.DeleteFile = on ? TRUE : FALSE;
  return SetFileInformationByHandle(h, FileDispositionInfo, &info, sizeof info) != 0;
}
#endif

std::FILE* open_file(const fs::path& p, const char* mode) {
#ifdef _WIN32
  std::wstring wmode(mode, mode + std::char_traits<char>::length(mode));
  return _wfopen(long_path(p).c_str(), wmode.c_str());
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
#ifdef _WIN32
  const fs::path native(long_path(path));
#else
  const fs::path& native = path;
#endif
  auto st = fs::status(native, ec);
  if (ec || !fs::exists(st)) throw FileError(to_utf8(path) + ": no such file");
  if (!fs::is_regular_file(st)) throw FileError(to_utf8(path) + ": not a regular file");
  f_ = open_file(path, "rb");
  if (!f_) throw FileError(to_utf8(path) + ": cannot open for reading: " + describe_errno(errno));
  size_ = fs::file_size(native, ec);
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

namespace {

// The named temporaries that exist now (not yet renamed or removed), for abandon_temporaries().
// Creating, renaming and removing one happen under the lock, so none escapes that sweep.
std::mutex& temporaries_mutex() {
  static std::mutex m;
  return m;
}
std::set<fs::path>& temporaries() {
  static std::set<fs::path> s;
  return s;
}

constexpr std::string_view kTempPrefix = ".tsign-";
constexpr std::string_view kTempSuffix = ".tmp";

// ".tsign-" + 12 hex digits + ".tmp": 23 bytes whatever the target's name, in its folder.
fs::path temporary_beside(const fs::path& target) {
  return target.parent_path() /
         from_utf8(std::string(kTempPrefix) + to_hex(random_bytes(6)) + std::string(kTempSuffix));
}

bool remove_file(const fs::path& p) {
#ifdef _WIN32
  return DeleteFileW(long_path(p).c_str()) != 0;
#else
  return ::unlink(p.c_str()) == 0;
#endif
}

#if defined(__linux__) && defined(O_TMPFILE)
// An unnamed file in `dir` (O_TMPFILE), or -1 where that is not available: the file system does
// not support it (EOPNOTSUPP, EISDIR and EINVAL on older kernels), /proc is not mounted (the copy
// is re-read and linked through /proc/self/fd), or TSIGN_NO_TMPFILE is set (tests of the named
// fallback). Every failure falls back to a named temporary, whose error is the one reported.
int open_unnamed(const fs::path& dir) {
  if (auto no = env::get("TSIGN_NO_TMPFILE"); no && !no->empty()) return -1;
  if (::access("/proc/self/fd", X_OK) != 0) return -1;
  const fs::path d = dir.empty() ? fs::path(".") : dir;
  return ::open(d.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
}
#endif

}  // namespace

bool is_temporary_name(std::string_view name) {
  if (!name.ends_with(kTempSuffix)) return false;
  name.remove_suffix(kTempSuffix.size());
  auto at = name.rfind(kTempPrefix);
  if (at == std::string_view::npos) return false;
  auto hex = name.substr(at + kTempPrefix.size());
  return hex.size() >= 4 && std::all_of(hex.begin(), hex.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

void abandon_temporaries() {
  // Never unlocked: the process ends next, and no thread may name a new temporary meanwhile.
  temporaries_mutex().lock();
  for (const auto& p : temporaries()) remove_file(p);
  temporaries().clear();
}

ReplaceFile::ReplaceFile(const fs::path& target) : target_(target) {
  // Beside the target, so the final rename never crosses a file system.
#if defined(__linux__) && defined(O_TMPFILE)
  unnamed_fd_ = open_unnamed(target.parent_path());
  if (unnamed_fd_ >= 0) {
    int fd = ::dup(unnamed_fd_);  // the stream's own descriptor; unnamed_fd_ outlives close()
    f_ = fd >= 0 ? fdopen(fd, "wb") : nullptr;
    if (!f_) {
      int err = errno;
      if (fd >= 0) ::close(fd);
      ::close(unnamed_fd_);
      unnamed_fd_ = -1;
      throw FileError(to_utf8(target) +
                      ": cannot create a temporary file beside it: " + describe_errno(err));
    }
    std::setvbuf(f_, nullptr, _IOFBF, 1 << 16);
    return;
  }
#endif
  std::lock_guard lock(temporaries_mutex());
  temp_ = temporary_beside(target);
#ifdef _WIN32
  // CREATE_NEW: never reuse an existing name. DELETE access for the delete-on-close mark;
  // FILE_SHARE_DELETE so that mark can be cleared and the file renamed while it is open.
  HANDLE h = CreateFileW(long_path(temp_).c_str(), GENERIC_WRITE | DELETE,
                         FILE_SHARE_READ | FILE_SHARE_DELETE, nullptr, CREATE_NEW,
                         FILE_ATTRIBUTE_NORMAL, nullptr);
  if (h == INVALID_HANDLE_VALUE)
    throw FileError(to_utf8(target) + ": cannot create a temporary file beside it: " +
                    win_error_text(GetLastError()));
  set_delete_on_close(h, true);
  int fd = _open_osfhandle(reinterpret_cast<intptr_t>(h), _O_WRONLY | _O_BINARY);
  f_ = fd >= 0 ? _fdopen(fd, "wb") : nullptr;
  if (!f_) {
    if (fd >= 0)
      _close(fd);
    else
      CloseHandle(h);
    throw FileError(to_utf8(target) + ": cannot create a temporary file beside it");
  }
#else
  int fd = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  f_ = fd >= 0 ? fdopen(fd, "wb") : nullptr;
  if (!f_) {
    int err = errno;
    if (fd >= 0) {
      ::close(fd);
      ::unlink(temp_.c_str());
    }
    throw FileError(to_utf8(target) +
                    ": cannot create a temporary file beside it: " + describe_errno(err));
  }
#endif
  temporaries().insert(temp_);
  std::setvbuf(f_, nullptr, _IOFBF, 1 << 16);
}

ReplaceFile::~ReplaceFile() {
  if (f_) std::fclose(f_);  // on Windows the delete-on-close mark removes it here
#ifndef _WIN32
  if (unnamed_fd_ >= 0) ::close(unnamed_fd_);  // unlinked from the start: it is gone now
#endif
  if (!committed_ && !temp_.empty()) {
    std::lock_guard lock(temporaries_mutex());
    remove_file(temp_);
    temporaries().erase(temp_);
  }
}

fs::path ReplaceFile::read_path() const {
  if (unnamed_fd_ >= 0) return fs::path("/proc/self/fd") / std::to_string(unnamed_fd_);
  return temp_;
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
  {
    HANDLE h = reinterpret_cast<HANDLE>(_get_osfhandle(_fileno(f_)));
    // Complete: it may now outlive this handle (to be re-read, checked and renamed).
    ok = ok && set_delete_on_close(h, false);
    if (!ok) errno = EIO;
  }
#endif
  // No fsync: the rename is what makes the replacement atomic for every failure of tsign itself
  // (crash, Ctrl-C, deadline); forcing the data to disk would double the time of a large file for
  // the power-loss case only (README, "Decisions").
  int err = errno;
  ok = (std::fclose(f_) == 0) && ok;
  f_ = nullptr;
  if (!ok)
    throw FileError(to_utf8(target_) + ": writing the signed copy failed: " + describe_errno(err));
}

void ReplaceFile::commit() {
  close();
#ifdef _WIN32
  // Windows has no permission bits to carry over (the copy inherits the folder's ACL, as the
  // original did). MOVEFILE_WRITE_THROUGH: return only once the rename is on disk.
  // A read-only target is refused here rather than left to MoveFileExW, which some file
  // systems (and wine) let replace it: the read-only bit is the owner's "do not change".
  DWORD attrs = GetFileAttributesW(long_path(target_).c_str());
  if (attrs != INVALID_FILE_ATTRIBUTES && (attrs & FILE_ATTRIBUTE_READONLY))
    throw FileError(to_utf8(target_) + ": cannot replace the file: it is read-only");
  std::lock_guard lock(temporaries_mutex());
  if (!MoveFileExW(long_path(temp_).c_str(), long_path(target_).c_str(),
                   MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) {
    DWORD err = GetLastError();
    std::string hint =
        err == ERROR_SHARING_VIOLATION || err == ERROR_LOCK_VIOLATION || err == ERROR_ACCESS_DENIED
            ? " (is it read-only, or open in another program?)"
            : "";
    throw FileError(to_utf8(target_) + ": cannot replace the file: " + win_error_text(err) + hint);
  }
  temporaries().erase(temp_);
#else
  // Keep the original's permissions (e.g. the executable bit).
  std::error_code ec;
  auto st = fs::status(target_, ec);
  const auto perms = fs::exists(st) ? st.permissions()
                                    : fs::perms::owner_read | fs::perms::owner_write |
                                          fs::perms::group_read | fs::perms::others_read;
  std::lock_guard lock(temporaries_mutex());
  if (unnamed_fd_ >= 0) {
    ::fchmod(unnamed_fd_, static_cast<mode_t>(perms));
    // The unnamed copy gets a short name beside the target (linkat cannot replace an existing
    // name), which the rename then moves over the target: a kill between the two leaves that
    // one name, which folder scans recognise, skip and warn about.
    const std::string proc = "/proc/self/fd/" + std::to_string(unnamed_fd_);
    for (int attempt = 0;; ++attempt) {
      temp_ = temporary_beside(target_);
      if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, temp_.c_str(), AT_SYMLINK_FOLLOW) == 0) break;
      const int err = errno;
      temp_.clear();
      if (err != EEXIST || attempt == 3)
        throw FileError(to_utf8(target_) +
                        ": cannot name the signed copy beside it: " + describe_errno(err));
    }
    ::close(unnamed_fd_);
    unnamed_fd_ = -1;
  } else {
    fs::permissions(temp_, perms, ec);
  }
  if (::rename(temp_.c_str(), target_.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp_.c_str());
    temporaries().erase(temp_);
    temp_.clear();
    throw FileError(to_utf8(target_) + ": cannot replace the file: " + describe_errno(err));
  }
  temporaries().erase(temp_);
#endif
  committed_ = true;
}

bool is_read_only(const fs::path& p) {
#ifdef _WIN32
  DWORD a = GetFileAttributesW(long_path(p).c_str());
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
#endif
}

void load_trust_roots(SSL_CTX* ctx) {
  load_trust_roots(SSL_CTX_get_cert_store(ctx));
}

// ---- Child processes ------------------------------------------------------------------------

#ifdef _WIN32

namespace {

// Quotes one argument the way CommandLineToArgvW (and the C runtime) split it back.
std::wstring quote_arg(const std::wstring& a) {
  if (!a.empty() && a.find_first_of(L" \t\"") == std::wstring::npos) return a;
  std::wstring q = L"\"";
  std::size_t backslashes = 0;
  for (wchar_t c : a) {
    if (c == L'\\') {
      ++backslashes;
      continue;
    }
    if (c == L'"')
      q.append(backslashes * 2 + 1, L'\\');
    else
      q.append(backslashes, L'\\');
    backslashes = 0;
    q.push_back(c);
  }
  q.append(backslashes * 2, L'\\');
  q.push_back(L'"');
  return q;
}

struct Handle {
  HANDLE h = nullptr;
  ~Handle() {
    if (h && h != INVALID_HANDLE_VALUE) CloseHandle(h);
  }
};

void drain(HANDLE h, std::string& out) {
  char buf[4096];
  DWORD got = 0;
  // ::ReadFile is the Win32 call; unqualified it would name tsign::platform::ReadFile.
  while (::ReadFile(h, buf, sizeof buf, &got, nullptr) && got > 0) out.append(buf, got);
}

}  // namespace

RunResult run_capture(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  RunResult r;
  if (argv.empty()) return r;
  // CreateProcessW runs only .exe files; tools such as az are .cmd scripts, which need cmd.exe.
  std::wstring cmdline = L"cmd.exe /d /s /c \"";
  for (std::size_t i = 0; i < argv.size(); ++i) {
    if (i) cmdline += L' ';
    cmdline += quote_arg(from_utf8(argv[i]).wstring());
  }
  cmdline += L'"';

  SECURITY_ATTRIBUTES sa{sizeof(sa), nullptr, TRUE};
  Handle out_r, out_w, err_r, err_w;
  if (!CreatePipe(&out_r.h, &out_w.h, &sa, 0) || !CreatePipe(&err_r.h, &err_w.h, &sa, 0)) return r;
  SetHandleInformation(out_r.h, HANDLE_FLAG_INHERIT, 0);
  SetHandleInformation(err_r.h, HANDLE_FLAG_INHERIT, 0);

  // A job object so that a timeout also ends the grandchildren (cmd.exe starts python.exe).
  Handle job;
  job.h = CreateJobObjectW(nullptr, nullptr);
  if (job.h) {
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION li{};
    li.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
    SetInformationJobObject(job.h, JobObjectExtendedLimitInformation, &li, sizeof li);
  }

  STARTUPINFOW si{};
  si.cb = sizeof si;
  si.dwFlags = STARTF_USESTDHANDLES;
  si.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
  si.hStdOutput = out_w.h;
  si.hStdError = err_w.h;
  PROCESS_INFORMATION pi{};
  if (!CreateProcessW(nullptr, cmdline.data(), nullptr, nullptr, TRUE,
                      CREATE_NO_WINDOW | CREATE_SUSPENDED, nullptr, nullptr, &si, &pi)) {
    r.not_found = true;
    return r;
  }
  Handle proc, thread;
  proc.h = pi.hProcess;
  thread.h = pi.hThread;
  if (job.h) AssignProcessToJobObject(job.h, proc.h);
  ResumeThread(thread.h);
  CloseHandle(out_w.h);
  out_w.h = nullptr;
  CloseHandle(err_w.h);
  err_w.h = nullptr;

  // Pipes are read on their own threads so a chatty child never blocks on a full pipe.
  std::thread err_reader([&] { drain(err_r.h, r.err); });
  std::thread out_reader([&] { drain(out_r.h, r.out); });
  if (WaitForSingleObject(proc.h, static_cast<DWORD>(timeout.count())) == WAIT_TIMEOUT) {
    r.timed_out = true;
    if (job.h) TerminateJobObject(job.h, 1);
    TerminateProcess(proc.h, 1);
    WaitForSingleObject(proc.h, INFINITE);
  }
  if (job.h) {
    CloseHandle(job.h);  // ends any grandchild still holding the pipes
    job.h = nullptr;
  }
  out_reader.join();
  err_reader.join();
  DWORD code = 0;
  if (!r.timed_out && GetExitCodeProcess(proc.h, &code)) r.exit_code = static_cast<int>(code);
  // cmd.exe reports a missing command as exit code 9009.
  if (r.exit_code == 9009) r.not_found = true;
  return r;
}

#else

namespace {

struct Fd {
  int fd = -1;
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

bool make_pipe(Fd& r, Fd& w) {
  int p[2];
  if (::pipe(p) != 0) return false;
  r.fd = p[0];
  w.fd = p[1];
  // Not inherited by children other processes spawn meanwhile; dup2 in the child clears it.
  ::fcntl(p[0], F_SETFD, FD_CLOEXEC);
  ::fcntl(p[1], F_SETFD, FD_CLOEXEC);
  return true;
}

}  // namespace

RunResult run_capture(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  RunResult r;
  if (argv.empty()) return r;
  Fd out_r, out_w, err_r, err_w;
  if (!make_pipe(out_r, out_w) || !make_pipe(err_r, err_w)) return r;

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_w.fd, 1);
  posix_spawn_file_actions_adddup2(&fa, err_w.fd, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    r.not_found = (rc == ENOENT || rc == EACCES);
    return r;
  }
  out_w.reset();
  err_w.reset();

  auto deadline = std::chrono::steady_clock::now() + timeout;
  Fd* fds[2] = {&out_r, &err_r};
  std::string* sinks[2] = {&r.out, &r.err};
  while (out_r.fd >= 0 || err_r.fd >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      r.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd p[2];
    nfds_t n = 0;
    int which[2];
    for (int i = 0; i < 2; ++i) {
      if (fds[i]->fd < 0) continue;
      p[n] = pollfd{fds[i]->fd, POLLIN, 0};
      which[n++] = i;
    }
    int ready = ::poll(p, n, static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) break;
    for (nfds_t k = 0; ready > 0 && k < n; ++k) {
      if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t got = ::read(p[k].fd, buf, sizeof buf);
      if (got > 0)
        sinks[which[k]]->append(buf, static_cast<std::size_t>(got));
      else if (got == 0 || errno != EINTR)
        fds[which[k]]->reset();
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!r.timed_out && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  // posix_spawnp may report a missing program only through the child's exit status 127.
  if (r.exit_code == 127 && r.out.empty()) r.not_found = true;
  return r;
}

#endif

}  // namespace tsign::platform
