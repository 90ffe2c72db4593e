// Files: positioned reads (ReadFile) and whole-file replacement written beside the target and
// renamed over it (ReplaceFile), with wide, long paths on Windows (the \\?\ prefix of the Win32
// file APIs), O_TMPFILE on Linux, and the named temporaries a second Ctrl-C removes.
#include "platform/files.hpp"

#include <algorithm>
#include <mutex>
#include <set>
#include <system_error>

#include "common/error.hpp"
#include "platform/env.hpp"
#include "platform/platform.hpp"

#ifdef _WIN32
#include <windows.h>

#include <fcntl.h>
#include <io.h>
#else
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace tsign::platform {

namespace fs = std::filesystem;

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

#ifdef _WIN32
// Sharing delete access: the file can be renamed or replaced while it is open, as on POSIX (the
// engine hashes a signed copy while the copy is renamed over the original).
std::FILE* open_for_reading(const fs::path& p) {
  HANDLE h = CreateFileW(long_path(p).c_str(), GENERIC_READ,
                         FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                         OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, nullptr);
  if (h == INVALID_HANDLE_VALUE) {
    const DWORD err = GetLastError();
    errno = err == ERROR_FILE_NOT_FOUND || err == ERROR_PATH_NOT_FOUND     ? ENOENT
            : err == ERROR_ACCESS_DENIED || err == ERROR_SHARING_VIOLATION ? EACCES
                                                                           : EIO;
    return nullptr;
  }
  const int fd = _open_osfhandle(reinterpret_cast<intptr_t>(h), _O_RDONLY | _O_BINARY);
  if (fd < 0) {
    CloseHandle(h);
    return nullptr;
  }
  std::FILE* f = _fdopen(fd, "rb");
  if (!f) _close(fd);
  return f;
}
#else
std::FILE* open_for_reading(const fs::path& p) {
  return std::fopen(p.c_str(), "rb");
}
#endif

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
  f_ = open_for_reading(path);
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

#ifdef __linux__
PageCacheRelease::PageCacheRelease(const fs::path& p)
    : fd_(::open(p.c_str(), O_RDONLY | O_CLOEXEC)) {}
PageCacheRelease::~PageCacheRelease() {
  if (fd_ >= 0) ::close(fd_);
}
void PageCacheRelease::release(std::uint64_t offset, std::uint64_t length) noexcept {
  if (fd_ >= 0)
    ::posix_fadvise(fd_, static_cast<off_t>(offset), static_cast<off_t>(length),
                    POSIX_FADV_DONTNEED);
}
#else
PageCacheRelease::PageCacheRelease(const fs::path&) {}
PageCacheRelease::~PageCacheRelease() = default;
void PageCacheRelease::release(std::uint64_t, std::uint64_t) noexcept {}
#endif

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
  written_ += data.size();
#ifdef __linux__
  // Starts the write-back of each 8 MiB as it is written, on the writing thread. Renaming over an
  // existing file makes ext4 (auto_da_alloc) start the write-back of the whole new file inside
  // rename(), on the caller's clock: 0.3 s for 512 MiB here. Started as the copy goes, it
  // overlaps the hashing instead. A hint only: its failure changes nothing.
  constexpr std::uint64_t kWriteBackStep = 8u << 20;
  if (written_ - flushed_ >= kWriteBackStep && std::fflush(f_) == 0) {
    ::sync_file_range(fileno(f_), static_cast<off64_t>(flushed_),
                      static_cast<off64_t>(written_ - flushed_), SYNC_FILE_RANGE_WRITE);
    flushed_ = written_;
  }
#endif
}

void ReplaceFile::patch(std::uint64_t offset, ByteView data) {
  if (!f_) throw FileError(to_utf8(target_) + ": write after close");
#ifdef _WIN32
  const auto seek = [this](std::int64_t off, int whence) { return _fseeki64(f_, off, whence); };
#else
  const auto seek = [this](std::int64_t off, int whence) {
    return fseeko(f_, static_cast<off_t>(off), whence);
  };
#endif
  if (seek(static_cast<std::int64_t>(offset), SEEK_SET) != 0 ||
      (!data.empty() && std::fwrite(data.data(), 1, data.size(), f_) != data.size()) ||
      seek(0, SEEK_END) != 0)
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
  // the power-loss case only (CONTRIBUTING.md, "Decisions").
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

FileStamp file_stamp(const fs::path& p) {
  FileStamp st;
#ifdef _WIN32
  HANDLE h = CreateFileW(long_path(p).c_str(), FILE_READ_ATTRIBUTES,
                         FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                         OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, nullptr);
  BY_HANDLE_FILE_INFORMATION info{};
  FILE_BASIC_INFO basic{};
  const bool ok = h != INVALID_HANDLE_VALUE && GetFileInformationByHandle(h, &info) &&
                  GetFileInformationByHandleEx(h, FileBasicInfo, &basic, sizeof basic);
  const DWORD err = GetLastError();
  if (h != INVALID_HANDLE_VALUE) CloseHandle(h);
  if (!ok)
    throw FileError(to_utf8(p) + ": cannot examine the file (Windows error " + std::to_string(err) +
                    ")");
  st.device = info.dwVolumeSerialNumber;
  st.inode = (std::uint64_t{info.nFileIndexHigh} << 32) | info.nFileIndexLow;
  st.size = (std::uint64_t{info.nFileSizeHigh} << 32) | info.nFileSizeLow;
  st.mtime_ns = basic.LastWriteTime.QuadPart * 100;
  st.ctime_ns = basic.ChangeTime.QuadPart * 100;
#else
  struct stat s {};
  if (::stat(p.c_str(), &s) != 0)
    throw FileError(to_utf8(p) + ": cannot examine the file: " + describe_errno(errno));
  st.device = static_cast<std::uint64_t>(s.st_dev);
  st.inode = static_cast<std::uint64_t>(s.st_ino);
  st.size = static_cast<std::uint64_t>(s.st_size);
#ifdef __APPLE__
  const auto& m = s.st_mtimespec;
  const auto& c = s.st_ctimespec;
#else
  const auto& m = s.st_mtim;
  const auto& c = s.st_ctim;
#endif
  st.mtime_ns = std::int64_t{m.tv_sec} * 1'000'000'000 + m.tv_nsec;
  st.ctime_ns = std::int64_t{c.tv_sec} * 1'000'000'000 + c.tv_nsec;
#endif
  return st;
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

}  // namespace tsign::platform
