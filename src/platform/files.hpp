// Files behind the platform layer: positioned reads, and atomic replacement of a file by a copy
// written beside it. Wide paths on Windows; see files.cpp.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <span>
#include <string_view>

#ifdef _WIN32
// <windows.h> (which Boost.Asio includes too) defines ReplaceFile as a macro for ReplaceFileW:
// it would rename the class below in some translation units and not in others. Include it here,
// before anything uses the name, and drop the macro; its include guard keeps it from coming back.
#include <windows.h>
#undef ReplaceFile
#endif

#include "common/bytes.hpp"

namespace tsign::platform {

// A file opened for reading, with positioned reads. Throws FileError naming the path. The file
// may be renamed or replaced while it is open, on Windows too (its handle shares delete access):
// the reads go on reading the file that was opened.
class ReadFile {
 public:
  explicit ReadFile(const std::filesystem::path& path);
  ~ReadFile();
  ReadFile(const ReadFile&) = delete;
  ReadFile& operator=(const ReadFile&) = delete;

  std::uint64_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }
  // Reads exactly out.size() bytes at offset; throws FileError if the file is shorter.
  void read_at(std::uint64_t offset, std::span<std::uint8_t> out);
  Bytes read_at(std::uint64_t offset, std::size_t n);

 private:
  std::filesystem::path path_;
  std::FILE* f_ = nullptr;
  std::uint64_t size_ = 0;
  std::uint64_t pos_ = 0;
};

// Lets the system drop from its page cache the parts of a file that will not be read again, as a
// file being replaced is read (posix_fadvise POSIX_FADV_DONTNEED on Linux; nothing elsewhere).
// Replacing a file drops its cached pages all at once, inside the rename: 0.1 s for 512 MiB here,
// after everything else is done; released as the reading goes on, on a thread that has the time,
// they cost the rename nothing. Only a hint: nothing fails without it.
//
// Threading: one object per thread.
class PageCacheRelease {
 public:
  explicit PageCacheRelease(const std::filesystem::path& p);  // never throws
  ~PageCacheRelease();
  PageCacheRelease(const PageCacheRelease&) = delete;
  PageCacheRelease& operator=(const PageCacheRelease&) = delete;
  void release(std::uint64_t offset, std::uint64_t length) noexcept;

 private:
  int fd_ = -1;
};

// A new version of `target`, written beside it and moved over it only by commit(). Destroying it
// without commit() discards the copy: the target is either the old bytes or the complete new
// ones, never something in between, and nothing is left in the target's folder.
//
// On Linux the copy is an unnamed file (O_TMPFILE) in the target's folder, linked in under a
// short temporary name only at commit() and renamed over the target at once: a process killed
// by anything (SIGKILL, the OOM killer) leaves no trace of it. Where O_TMPFILE is not supported
// (some file systems, macOS, Windows) the copy has a short temporary name from the start; it is
// removed on every error, by abandon_temporaries() on a second Ctrl-C, and on Windows by the
// system when the process dies while it is being written (delete-on-close). Temporary names
// match is_temporary_name() and stay short (23 bytes), so a target whose name has the file
// system's maximum length (255 bytes) can be replaced too.
//
// Threading: one object per thread; distinct objects may be used concurrently.
class ReplaceFile {
 public:
  explicit ReplaceFile(const std::filesystem::path& target);
  ~ReplaceFile();
  ReplaceFile(const ReplaceFile&) = delete;
  ReplaceFile& operator=(const ReplaceFile&) = delete;

  void write(ByteView data);
  // Overwrites bytes already written at `offset` (fixed-size fields of a format, filled in once
  // the signature exists); later write()s append again.
  void patch(std::uint64_t offset, ByteView data);
  // A path to open the copy by for reading until commit(), e.g. to check it: the temporary's
  // name, or for an unnamed copy /proc/self/fd/N.
  std::filesystem::path read_path() const;
  // The temporary name; empty while the copy is unnamed.
  const std::filesystem::path& temp_path() const { return temp_; }
  // Flushes to stable storage, closes, keeps the target's permissions, atomically renames.
  void close();   // flush and close without renaming (so the copy can be re-read and checked)
  void commit();  // close() if needed, then rename over the target

 private:
  std::filesystem::path target_;
  std::filesystem::path temp_;
  std::FILE* f_ = nullptr;
  std::uint64_t written_ = 0, flushed_ = 0;  // bytes appended, and handed to write-back (Linux)
  int unnamed_fd_ = -1;  // Linux: the O_TMPFILE copy, open until it is linked or discarded
  bool committed_ = false;
};

// True for a file name of the form ReplaceFile gives its temporaries (".tsign-HEX.tmp", also
// after a file name: "app.exe.tsign-HEX.tmp", as earlier versions named them). A folder scan
// never selects such a file: it is a copy being written, or one a killed run left behind.
bool is_temporary_name(std::string_view file_name);

// Removes every named temporary of a ReplaceFile not yet committed or discarded, and keeps any
// new one from being created, for a process about to end at once (a second Ctrl-C): the next
// call must be std::_Exit. Unnamed (O_TMPFILE) copies need nothing: they vanish with the process.
void abandon_temporaries();

// What changes whenever a file is written or replaced: its identity (device and inode, or volume
// serial and file index), size, modification time, and status-change time (st_ctim, Windows'
// ChangeTime), which unlike the modification time no tool can set back. Equal stamps taken
// before and after a span mean nobody wrote the file in between.
struct FileStamp {
  std::uint64_t device = 0, inode = 0, size = 0;
  std::int64_t mtime_ns = 0, ctime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};
// Throws FileError naming the file when it cannot be examined.
FileStamp file_stamp(const std::filesystem::path& p);

// True if the file's permissions or attributes forbid writing it (root included: we honour the
// read-only bit rather than overriding it).
bool is_read_only(const std::filesystem::path& p);

}  // namespace tsign::platform
