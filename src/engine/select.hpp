// File selection (interface.md: files, files-folder[-filter|-recurse|-depth], files-catalog).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace tsign::engine {

struct SelectionRequest {
  std::vector<std::string> files;  // `files` and positional arguments
  std::string folder;
  std::vector<std::string> filter;  // extensions (dll, .dll) or globs (*.ps1)
  bool recurse = false;
  std::optional<int> depth;  // levels below `folder` that recurse descends (unlimited if unset)
  std::string catalog;
};

struct Selection {
  // Deterministic order (sorted by path), duplicates removed. Files that do not exist are kept
  // and fail per file, so a catalog listing a missing file is reported, not fatal.
  std::vector<std::filesystem::path> files;
  // tsign's own temporary files met in the folder scan (platform::is_temporary_name): never
  // selected, for the caller to warn about (one a killed run left behind is stale).
  std::vector<std::filesystem::path> temporaries;
};

// Throws InputError when nothing was asked for, the folder or catalog does not exist, or the
// selection is empty (saying what was searched).
Selection select_files(const SelectionRequest& req);

// Case-insensitive match of a file name against one filter entry (extension or glob).
bool matches_filter(const std::string& file_name, const std::string& entry);

}  // namespace tsign::engine
