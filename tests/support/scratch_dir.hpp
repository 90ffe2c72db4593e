// A fresh, empty directory for one test, removed by the destructor; portable (fixtures.hpp's
// TempDir is POSIX-only), for the tests that also run in the Windows build.
#pragma once

#include <filesystem>
#include <random>
#include <string>
#include <system_error>

namespace tsign::test {

struct ScratchDir {
  std::filesystem::path path;
  explicit ScratchDir(const std::string& tag) {
    std::random_device rd;
    do
      path = std::filesystem::temp_directory_path() / ("tsign-" + tag + "-" + std::to_string(rd()));
    while (!std::filesystem::create_directory(path));
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
};

}  // namespace tsign::test
