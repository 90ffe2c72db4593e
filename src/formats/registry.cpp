// The format registry: picks a file's format by its content, never by its extension alone.
// Adding a format is one line in kFormats.
#include <array>
#include <string>

#include "common/error.hpp"
#include "formats/format.hpp"
#include "formats/pe.hpp"
#include "platform/platform.hpp"

namespace tsign::formats {

namespace {

struct Format {
  std::string_view name;  // as listed to the user
  bool (*detect)(platform::ReadFile&);
  std::unique_ptr<SignableFile> (*open)(const std::filesystem::path&);
};

// Tried in order; the first whose content detection matches wins.
constexpr std::array kFormats{
    Format{"PE", &pe::detect, &pe::open},
};

const Format* find(platform::ReadFile& f) {
  for (const auto& fmt : kFormats)
    if (fmt.detect(f)) return &fmt;
  return nullptr;
}

std::string supported_list() {
  std::string s;
  for (const auto& fmt : kFormats) {
    if (!s.empty()) s += "/";
    s += fmt.name;
  }
  return s;
}

}  // namespace

std::unique_ptr<SignableFile> open(const std::filesystem::path& path) {
  const Format* fmt = nullptr;
  {
    // Closed again before the format opens it: detection only needs the first bytes.
    platform::ReadFile f(path);
    fmt = find(f);
  }
  if (!fmt)
    throw FileError(platform::to_utf8(path) + ": not a supported file format (" + supported_list() +
                    ")");
  return fmt->open(path);
}

bool is_supported(const std::filesystem::path& path) {
  try {
    platform::ReadFile f(path);
    return find(f) != nullptr;
  } catch (const Error&) {
    return false;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace tsign::formats
