// platform::file_stamp and ReplaceFile::patch: what the one-read signing path relies on (a copy
// written during the digest pass, fields patched once the signature exists, and a stamp that
// changes whenever anybody writes the original meanwhile).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

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
