// The format registry: picks a file's format by its content, and by its extension only for
// formats whose content cannot decide (docs/formats.md). Adding a format is one row in kFormats
// (and, once it is supported, the removal of its row in kNotYet).
#include <array>
#include <string>

#include "common/error.hpp"
#include "common/text.hpp"
#include "formats/appx.hpp"
#include "formats/cab.hpp"
#include "formats/cat.hpp"
#include "formats/format.hpp"
#include "formats/msi.hpp"
#include "formats/pe.hpp"
#include "formats/script.hpp"
#include "platform/platform.hpp"

namespace tsign::formats {

namespace {

struct Format {
  std::string_view name;  // as listed to the user
  // As in the JSON report and the summary (SignableFile::format_name), also for a file that is
  // recognised but then refused as malformed.
  std::string_view report_name;
  // Content detection (reads the first bytes). Null for a format content cannot tell apart
  // (a script is any text): it is chosen by `extensions` instead, after every content check.
  bool (*detect)(platform::ReadFile&);
  // ".ps1 .psm1": lower case, space-separated. For a format with `detect`, the names a file no
  // content check recognised is still opened as (and refused as, with the reason) rather than
  // passed over: a damaged app package is a failure, not a file nobody signs.
  std::string_view extensions;
  std::unique_ptr<SignableFile> (*open)(const std::filesystem::path&);
};

// Content formats are tried in order, the first match wins; then the name-chosen ones.
constexpr std::array kFormats{
    Format{"PE", "pe", &pe::detect, {}, &pe::open},
    Format{"CAB", "cab", &cab::detect, {}, &cab::open},
    Format{"MSI", "msi", &msi::detect, {}, &msi::open},
    Format{"CAT", "cat", &cat::detect, {}, &cat::open},
    // A zip naming AppxManifest.xml or AppxBundleManifest.xml (.appx .msix .appxbundle
    // .msixbundle).
    Format{"APPX", "appx", &appx::detect, ".appx .msix .appxbundle .msixbundle", &appx::open},
    Format{"PowerShell", script::style(script::Family::powershell).name, nullptr,
           script::style(script::Family::powershell).extensions,
           &script::open<script::Family::powershell>},
    Format{"PowerShell XML", script::style(script::Family::powershell_xml).name, nullptr,
           script::style(script::Family::powershell_xml).extensions,
           &script::open<script::Family::powershell_xml>},
    Format{"MOF", script::style(script::Family::mof).name, nullptr,
           script::style(script::Family::mof).extensions, &script::open<script::Family::mof>},
    Format{"JScript", script::style(script::Family::js).name, nullptr,
           script::style(script::Family::js).extensions, &script::open<script::Family::js>},
    Format{"VBScript", script::style(script::Family::vbs).name, nullptr,
           script::style(script::Family::vbs).extensions, &script::open<script::Family::vbs>},
    Format{"WSF", script::style(script::Family::wsf).name, nullptr,
           script::style(script::Family::wsf).extensions, &script::open<script::Family::wsf>},
};

// What signtool signs and tsign does not yet, by extension (docs/formats.md): a folder scan lists
// such files as skipped with a warning rather than passing over them in silence.
struct NotYet {
  std::string_view extensions;
  std::string_view kind;
};
constexpr std::array<NotYet, 0> kNotYet{
    // Empty since issue 11: tsign signs every format signtool signs for these users. The table
    // stays for the next format signtool gains before tsign does.
};

// True if the lower-cased extension of `path` (".ps1") is one of `list`'s words.
bool has_extension(const std::filesystem::path& path, std::string_view list) {
  std::string ext = ascii_lower(platform::to_utf8(path.extension()));
  if (ext.size() < 2) return false;
  for (std::size_t at = 0; at < list.size();) {
    std::size_t end = list.find(' ', at);
    if (end == std::string_view::npos) end = list.size();
    if (list.substr(at, end - at) == ext) return true;
    at = end + 1;
  }
  return false;
}

const Format* find(platform::ReadFile& f, const std::filesystem::path& path) {
  for (const auto& fmt : kFormats)
    if (fmt.detect && fmt.detect(f)) return &fmt;
  for (const auto& fmt : kFormats)
    if (has_extension(path, fmt.extensions)) return &fmt;
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

std::unique_ptr<SignableFile> open(const std::filesystem::path& path,
                                   const std::filesystem::path& name) {
  const auto& named = name.empty() ? path : name;
  const Format* fmt = nullptr;
  {
    // Closed again before the format opens it: detection only needs the first bytes.
    platform::ReadFile f(path);
    fmt = find(f, named);
  }
  if (!fmt) {
    std::string_view kind = unsupported_kind(named);
    throw FileError(platform::to_utf8(path) + ": not a supported file format" +
                    (kind.empty() ? std::string()
                                  : ": " + std::string(kind) + ", which tsign does not sign yet") +
                    " (tsign signs " + supported_list() + ")");
  }
  return fmt->open(path);
}

std::string_view recognised_format(const std::filesystem::path& path) {
  try {
    platform::ReadFile f(path);
    const Format* fmt = find(f, path);
    return fmt ? fmt->report_name : std::string_view();
  } catch (const std::exception&) {
    return {};
  }
}

bool is_supported(const std::filesystem::path& path) {
  try {
    platform::ReadFile f(path);
    return find(f, path) != nullptr;
  } catch (const Error&) {
    return false;
  } catch (const std::exception&) {
    return false;
  }
}

std::string_view unsupported_kind(const std::filesystem::path& path) {
  for (const auto& n : kNotYet)
    if (has_extension(path, n.extensions)) return n.kind;
  return {};
}

}  // namespace tsign::formats
