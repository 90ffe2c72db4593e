// The text helpers of src/common/text.hpp, and that they are the only ones: protocol tokens fold
// ASCII case only, whatever the locale, and every layer uses the one copy.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "common/text.hpp"

using namespace tsign;
namespace fs = std::filesystem;

TEST_CASE("ascii_lower and ascii_upper fold ASCII letters only", "[text]") {
  CHECK(ascii_lower("Content-Type: X-MS-Error-Code") == "content-type: x-ms-error-code");
  CHECK(ascii_upper("files-folder-filter") == "FILES-FOLDER-FILTER");
  // UTF-8 bytes of non-ASCII letters are left as they are ("Ä" is C3 84).
  CHECK(ascii_lower("\xC3\x84Z") == "\xC3\x84z");
  CHECK(ascii_upper("\xC3\xA4z") == "\xC3\xA4Z");
  CHECK(ascii_lower('@') == '@');
  CHECK(ascii_lower('[') == '[');
  CHECK(ascii_upper('`') == '`');
  CHECK(ascii_upper('{') == '{');
}

TEST_CASE("iequals compares without regard to ASCII case", "[text]") {
  CHECK(iequals("Bearer", "bEARER"));
  CHECK_FALSE(iequals("Bearer", "Bearer "));
  CHECK_FALSE(iequals("\xC3\x84", "\xC3\xA4"));
  static_assert(iequals("SUCCEEDED", "Succeeded"));
}

TEST_CASE("trim: blanks at either end, or HTTP's optional whitespace only", "[text]") {
  CHECK(trim("  \t value \r\n\f\v") == "value");
  CHECK(trim(" a b ") == "a b");
  CHECK(trim(" \t\r\n").empty());
  CHECK(trim("").empty());
  // A header value: SP and HTAB go, a CR stays (it is no part of OWS).
  CHECK(trim(" \t120\r ", kHttpOws) == "120\r");
  static_assert(trim("  x  ") == "x");
}

TEST_CASE("no source file folds case or trims by its own hand", "[text]") {
  const fs::path src = fs::path(TSIGN_SOURCE_DIR) / "src";
  // The C library's case functions (locale-dependent), and local helpers named lower/upper/trim.
  const std::regex own(
      R"((std::)?\bto(lower|upper)\s*\(|^\s*(static\s+|inline\s+)?(std::string(_view)?|char)\s+(lower|upper|trim|to_lower|to_upper)\s*\()");
  std::vector<std::string> offenders;
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(src)) {
    if (!e.is_regular_file()) continue;
    const auto ext = e.path().extension();
    if ((ext != ".cpp" && ext != ".hpp") || e.path().filename() == "text.hpp") continue;
    ++files;
    std::ifstream in(e.path());
    std::string line;
    for (int n = 1; std::getline(in, line); ++n)
      if (std::regex_search(line, own))
        offenders.push_back(fs::relative(e.path(), src).generic_string() + ":" + std::to_string(n) +
                            ": " + line);
  }
  CHECK(files > 20);
  std::ostringstream all;
  for (const auto& o : offenders) all << o << "\n";
  INFO(all.str());
  CHECK(offenders.empty());
}
