// platform::file_stamp, ReplaceFile::patch and PageCacheRelease: what the one-read signing path
// relies on (a copy written during the digest pass, fields patched once the signature exists, a
// stamp that changes whenever anybody writes the original meanwhile, and the original's cache let
// go as it is read).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "platform/files.hpp"
#include "support/scratch_dir.hpp"

namespace fs = std::filesystem;
using tsign::platform::file_stamp;

namespace {
std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
tsign::ByteView bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
}  // namespace

TEST_CASE("file_stamp changes when the file is written in place, even at the same size",
          "[platform]") {
  tsign::test::ScratchDir t{"stamp"};
  const fs::path f = t.path / "app.exe";
  std::ofstream(f, std::ios::binary) << "0123456789";
  const auto before = file_stamp(f);
  CHECK(file_stamp(f) == before);  // nothing happened: equal
  const auto mtime = fs::last_write_time(f);
  {
    std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(3);
    io.write("XY", 2);
  }
  // A tool that puts the modification time back (touch -r) still changes the status-change time.
  fs::last_write_time(f, mtime);
  CHECK(fs::file_size(f) == 10);
  CHECK(file_stamp(f) != before);
  CHECK_THROWS_AS(file_stamp(t.path / "missing.exe"), tsign::FileError);
}

TEST_CASE("file_stamp tells a replaced file from the one that was there", "[platform]") {
  tsign::test::ScratchDir t{"stamp"};
  const fs::path f = t.path / "app.exe";
  std::ofstream(f, std::ios::binary) << "0123456789";
  const auto before = file_stamp(f);
  std::ofstream(t.path / "other", std::ios::binary) << "0123456789";
  fs::rename(t.path / "other", f);
  CHECK(file_stamp(f) != before);
}

TEST_CASE("ReplaceFile::patch overwrites written bytes, and writing appends again", "[platform]") {
  tsign::test::ScratchDir t{"stamp"};
  const fs::path f = t.path / "app.exe";
  std::ofstream(f, std::ios::binary) << "old";
  tsign::platform::ReplaceFile out(f);
  out.write(bytes("0123456789"));
  out.patch(2, bytes("ab"));
  out.write(bytes("tail"));
  out.patch(0, bytes("Z"));
  out.commit();
  CHECK(slurp(f) == "Z1ab456789tail");
}

TEST_CASE("a copy open for reading is renamed over the target, and read to its end after",
          "[platform]") {
  // The engine hashes a signed copy while it is renamed (an unnamed copy on Linux: read_path()
  // is /proc/self/fd/N until commit()).
  tsign::test::ScratchDir t{"readcopy"};
  const fs::path f = t.path / "app.exe";
  std::ofstream(f, std::ios::binary) << "old";
  tsign::platform::ReplaceFile out(f);
  out.write(bytes("signed bytes"));
  out.close();
  tsign::platform::ReadFile copy(out.read_path());
  out.commit();
  CHECK(slurp(f) == "signed bytes");
  const tsign::Bytes read = copy.read_at(0, static_cast<std::size_t>(copy.size()));
  CHECK(std::string(read.begin(), read.end()) == "signed bytes");
}

#ifdef __linux__
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

namespace {
// How many of the file's pages the page cache holds now (mincore over a mapping of it).
std::size_t cached_pages(const fs::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  const auto size = static_cast<std::size_t>(fs::file_size(p));
  void* m = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  REQUIRE(m != MAP_FAILED);
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> in((size + page - 1) / page);
  REQUIRE(::mincore(m, size, in.data()) == 0);
  ::munmap(m, size);
  std::size_t n = 0;
  for (unsigned char c : in) n += c & 1;
  return n;
}
}  // namespace

TEST_CASE("PageCacheRelease lets the cache drop the range released, and only that", "[platform]") {
  tsign::test::ScratchDir t{"release"};
  struct statfs fsinfo {};
  REQUIRE(::statfs(t.path.c_str(), &fsinfo) == 0);
  if (fsinfo.f_type == TMPFS_MAGIC) {
    WARN("the scratch folder is on tmpfs, whose pages are the files themselves: not checked");
    return;
  }
  const fs::path f = t.path / "big.bin";
  std::string data(8u << 20, '\0');
  std::mt19937 rng(3);
  for (auto& c : data) c = static_cast<char>(rng());
  std::ofstream(f, std::ios::binary) << data;
  ::sync();                 // clean pages: the cache may drop them (dirty ones it would keep)
  CHECK(slurp(f) == data);  // read: cached
  const std::size_t pages = data.size() / static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  REQUIRE(cached_pages(f) == pages);

  tsign::platform::PageCacheRelease release(f);
  release.release(0, 4u << 20);
  CHECK(cached_pages(f) == pages / 2);  // the second half stays
  CHECK(slurp(f) == data);              // a hint: the file reads the same
  tsign::platform::PageCacheRelease(t.path / "missing.bin").release(0, 1);  // no file: nothing
}
#endif
