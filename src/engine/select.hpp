// File selection (interface.md: files, files-folder[-filter|-recurse|-depth], files-catalog).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace tsign::engine {

struct SelectionRequest {
  std::vector<std::string> files;  // `files` and positional arguments
  std::string folder;
  // Extensions (dll, .dll), names or globs (*.ps1), path globs (bin/*.dll, **/bin/*.dll) and
  // exclusions (!*.Tests.dll): see matches_path_filter and docs/usage.md, "Selecting files".
  std::vector<std::string> filter;
  bool recurse = false;
  std::optional<int> depth;  // levels below `folder` that recurse descends (unlimited if unset)
  std::string catalog;
  // The run's deadline (docs/interface.md "Deadline"): selection counts against it. Unset: none.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  std::chrono::seconds timeout{0};  // for the message when the deadline passes
};

// A catalog larger than this is refused: a list of files is kilobytes, and reading an unbounded
// one (a device such as /dev/zero behind a name) would fill memory.
constexpr std::uint64_t kMaxCatalogBytes = 16 * 1024 * 1024;

// One file to sign. A symbolic link is never replaced: its target is signed in place, once,
// however many names reach it (docs/usage.md "Symbolic links").
struct SelectedFile {
  std::filesystem::path path;    // the name given (or found in the folder)
  std::filesystem::path target;  // the file written: `path`, or the file a link resolves to
  std::vector<std::filesystem::path> aliases;  // other names given that reach the same target
  std::uint64_t bytes = 0;  // size when selected, so a file failing before it is read shows it
};

// A name that was found but is not signed (a link leading outside the folder), with the reason,
// so the report and the summary list it.
struct SkippedFile {
  std::filesystem::path path;
  std::filesystem::path target;
  std::string reason;
};

struct Selection {
  // Deterministic order (sorted by path), each target once. Catalog entries that do not exist
  // are kept and fail per file, so a catalog listing a missing file is reported, not fatal.
  std::vector<SelectedFile> files;
  std::vector<SkippedFile> skipped;
  // tsign's own temporary files met in the folder scan (platform::is_temporary_name): never
  // selected, for the caller to warn about (one a killed run left behind is stale).
  std::vector<std::filesystem::path> temporaries;
};

// Throws InputError when nothing was asked for, a file given in `files` does not exist, the
// folder does not exist, the catalog is not a regular file of at most kMaxCatalogBytes, or the
// selection is empty (saying what was searched); DeadlineError when the deadline passes.
Selection select_files(const SelectionRequest& req);

// Case-insensitive match of a file name against one filter entry (extension or glob).
bool matches_filter(const std::string& file_name, const std::string& entry);
// Case-insensitive match of a path relative to files-folder ('/' between names) against one
// filter entry, its '!' already taken off. An entry without '/' is matched against the file name
// alone (matches_filter). An entry with '/' is a path glob anchored at the folder ("./" at its
// start is dropped): '*' and '?' stay within one name, a whole "**" name spans any number of
// folders, none included.
bool matches_path_filter(const std::string& relative_path, const std::string& entry);

}  // namespace tsign::engine
