#include "engine/select.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>
#include <tuple>

#include "common/error.hpp"
#include "common/text.hpp"
#include "formats/format.hpp"
#include "platform/platform.hpp"

namespace tsign::engine {

namespace fs = std::filesystem;

namespace {

// '*' and '?' glob over a whole file name (no path separators involved).
bool glob(std::string_view pat, std::string_view s) {
  std::size_t p = 0, i = 0, star = std::string_view::npos, mark = 0;
  while (i < s.size()) {
    if (p < pat.size() && (pat[p] == '?' || ascii_lower(pat[p]) == ascii_lower(s[i]))) {
      ++p;
      ++i;
    } else if (p < pat.size() && pat[p] == '*') {
      star = p++;
      mark = i;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

std::vector<std::string_view> split_names(std::string_view path) {
  std::vector<std::string_view> names;
  for (std::size_t at = 0; at <= path.size();) {
    std::size_t end = path.find('/', at);
    if (end == std::string_view::npos) end = path.size();
    if (end > at) names.push_back(path.substr(at, end - at));
    at = end + 1;
  }
  return names;
}

// Path glob by names; "**" matches any number of names (a short loop per "**": patterns are a few
// names long).
bool glob_names(const std::vector<std::string_view>& pat, std::size_t p,
                const std::vector<std::string_view>& names, std::size_t n) {
  if (p == pat.size()) return n == names.size();
  if (pat[p] == "**") {
    for (std::size_t k = n; k <= names.size(); ++k)
      if (glob_names(pat, p + 1, names, k)) return true;
    return false;
  }
  return n < names.size() && glob(pat[p], names[n]) && glob_names(pat, p + 1, names, n + 1);
}

fs::path normal(const fs::path& p) {
  std::error_code ec;
  auto c = fs::weakly_canonical(p, ec);
  return ec ? fs::absolute(p).lexically_normal() : c;
}

bool inside(const fs::path& child, const fs::path& root) {
  auto c = child.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++c) {
    if (r->empty()) continue;  // trailing separator
    if (c == child.end() || *c != *r) return false;
  }
  return true;
}

}  // namespace

bool matches_filter(const std::string& name, const std::string& entry) {
  if (entry.find_first_of("*?") != std::string::npos) return glob(entry, name);
  // An extension (dll, .dll); an entry naming a whole file (core.dll) matches that file too.
  std::string ext = entry;
  if (!ext.empty() && ext[0] == '.') ext.erase(0, 1);
  return glob("*." + ext, name) || glob(entry, name);
}

bool matches_path_filter(const std::string& relative_path, const std::string& entry) {
  std::string pattern = entry;
  std::replace(pattern.begin(), pattern.end(), '\\', '/');  // a Windows-minded workflow
  if (pattern.find('/') == std::string::npos) {
    auto slash = relative_path.rfind('/');
    return matches_filter(
        slash == std::string::npos ? relative_path : relative_path.substr(slash + 1), entry);
  }
  while (pattern.rfind("./", 0) == 0) pattern.erase(0, 2);
  return glob_names(split_names(pattern), 0, split_names(relative_path), 0);
}

Selection select_files(const SelectionRequest& req) {
  std::vector<fs::path> found;
  std::vector<std::string> searched;
  Selection sel;
  auto check_deadline = [&req] {
    if (req.deadline && std::chrono::steady_clock::now() >= *req.deadline)
      throw DeadlineError("the run's deadline (" + std::to_string(req.timeout.count()) +
                          " s) passed while selecting files; nothing was signed");
  };
  std::vector<fs::path> temporaries;

  // A file named explicitly that does not exist is a mistake in the workflow, not a file to
  // report: refused before anything is requested (exit 2).
  std::vector<std::string> missing;
  for (const auto& f : req.files) {
    fs::path p = platform::from_utf8(f);
    std::error_code ec;
    if (fs::exists(p, ec)) {
      found.push_back(p);
    } else if (fs::is_symlink(fs::symlink_status(p, ec))) {
      missing.push_back("'" + f + "' (a symbolic link to '" +
                        platform::to_utf8(fs::read_symlink(p, ec)) + "', which does not exist)");
    } else {
      missing.push_back("'" + f + "'");
    }
  }
  if (!missing.empty()) {
    std::string msg = "files: no such file: ";
    for (std::size_t i = 0; i < missing.size(); ++i) msg += (i ? ", " : "") + missing[i];
    throw InputError(msg + "; nothing was signed");
  }
  if (!req.files.empty()) searched.push_back(std::to_string(req.files.size()) + " listed file(s)");

  // The filter: entries to take, and '!' entries to leave out (docs/usage.md "Selecting files").
  std::vector<std::string> takes, excludes;
  for (const auto& f : req.filter) {
    if (f.empty() || f[0] != '!') {
      takes.push_back(f);
      continue;
    }
    if (f.size() == 1)
      throw InputError(
          "files-folder-filter: '!' excludes nothing; write the files to leave out "
          "after it, as in '!*.Tests.dll'");
    excludes.push_back(f.substr(1));
  }

  if (!req.folder.empty()) {
    fs::path root = platform::from_utf8(req.folder);
    std::error_code ec;
    if (!fs::is_directory(root, ec))
      throw InputError("files-folder: '" + req.folder + "' is not an existing folder");
    fs::path real_root = normal(root);
    int max_depth = req.recurse ? req.depth.value_or(1 << 30) : 0;
    // Symbolic links to folders are not followed (no loops, nothing outside the folder);
    // links to files are taken only when they resolve inside the folder, the others are listed
    // as skipped.
    fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec),
        end;
    if (ec) throw InputError("files-folder: cannot read '" + req.folder + "': " + ec.message());
    for (; it != end; it.increment(ec)) {
      if (ec)
        throw InputError("files-folder: error while listing '" + req.folder + "': " + ec.message());
      check_deadline();
      const auto& entry = *it;
      if (entry.is_directory(ec) && !entry.is_symlink(ec)) {
        if (it.depth() >= max_depth) it.disable_recursion_pending();
        continue;
      }
      bool outside = false;
      if (entry.is_symlink(ec)) {
        if (!fs::is_regular_file(entry.path(), ec)) continue;
        outside = !inside(normal(entry.path()), real_root);
      } else if (!entry.is_regular_file(ec)) {
        continue;
      }
      auto name = platform::to_utf8(entry.path().filename());
      // A copy tsign is writing (or a killed run left): a PE by content, never a file to sign.
      if (platform::is_temporary_name(name)) {
        temporaries.push_back(entry.path());
        continue;
      }
      const auto rel_u8 = entry.path().lexically_relative(root).generic_u8string();
      const std::string rel(rel_u8.begin(), rel_u8.end());
      if (!takes.empty()) {
        bool ok = std::any_of(takes.begin(), takes.end(),
                              [&](const std::string& f) { return matches_path_filter(rel, f); });
        if (!ok) continue;
      } else if (!formats::is_supported(entry.path())) {
        // No filter: every file of a supported format. What signtool would sign and tsign does
        // not yet is listed as skipped, so a drop-in user sees it was not signed.
        auto kind = formats::unsupported_kind(entry.path());
        if (!kind.empty())
          sel.skipped.push_back({entry.path(), entry.path(),
                                 std::string(kind) + ", a format tsign does not sign yet"});
        continue;
      }
      // Left out on purpose: listed, so the summary says which entry took it out.
      if (auto ex = std::find_if(excludes.begin(), excludes.end(),
                                 [&](const std::string& f) { return matches_path_filter(rel, f); });
          ex != excludes.end()) {
        sel.skipped.push_back(
            {entry.path(), entry.path(), "excluded by the filter entry '!" + *ex + "'"});
        continue;
      }
      if (outside) {
        auto target = normal(entry.path());
        sel.skipped.push_back(
            {entry.path(), target,
             "a symbolic link to '" + platform::to_utf8(target) +
                 "', outside the folder: links are followed only inside files-folder"});
        continue;
      }
      found.push_back(entry.path());
    }
    std::string what = "folder '" + req.folder + "'";
    if (req.recurse) what += req.depth ? " to depth " + std::to_string(*req.depth) : " recursively";
    what += takes.empty() ? " for supported files" : " for files matching the filter";
    searched.push_back(what);
  }

  if (!req.catalog.empty()) {
    fs::path cat = platform::from_utf8(req.catalog);
    // Checked before it is opened: opening a FIFO blocks until a writer comes, and a device
    // never ends. Only a regular file of bounded size is a list of files.
    std::error_code ec;
    auto st = fs::status(cat, ec);
    if (ec || !fs::exists(st))
      throw InputError("files-catalog: '" + req.catalog + "' does not exist");
    if (!fs::is_regular_file(st))
      throw InputError("files-catalog: '" + req.catalog +
                       "' is not a regular file (a folder, FIFO or device cannot be a catalog)");
    auto size = fs::file_size(cat, ec);
    if (ec) throw InputError("files-catalog: cannot read '" + req.catalog + "': " + ec.message());
    const std::string too_big = "files-catalog: '" + req.catalog + "' is larger than " +
                                std::to_string(kMaxCatalogBytes >> 20) +
                                " MiB; a catalog lists files, one per line";
    if (size > kMaxCatalogBytes) throw InputError(too_big);
    std::ifstream in(cat, std::ios::binary);
    if (!in) throw InputError("files-catalog: cannot read '" + req.catalog + "'");
    // One byte more than measured, to notice a file that grew after it was measured.
    std::string text(static_cast<std::size_t>(size + 1), '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    if (text.size() > size)
      throw InputError("files-catalog: '" + req.catalog + "' grew while it was being read");
    std::istringstream lines(text);
    std::string line;
    int n = 0;
    while (std::getline(lines, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      auto b = line.find_first_not_of(" \t");
      if (b == std::string::npos) continue;
      line = line.substr(b, line.find_last_not_of(" \t") - b + 1);
      fs::path p = platform::from_utf8(line);
      found.push_back(p.is_absolute() ? p : cat.parent_path() / p);
      ++n;
    }
    searched.push_back("catalog '" + req.catalog + "' (" + std::to_string(n) + " entries)");
  }
  check_deadline();

  if (searched.empty())
    throw InputError("nothing to sign: give files, files-folder or files-catalog");

  // Deterministic order, each target once: every name is keyed by the file it resolves to
  // (links followed to the end), so a folder holding real.exe and a link to it signs real.exe
  // once. The entry is named by the name that is not a link when there is one.
  struct Name {
    fs::path key, path;
    bool link;
  };
  std::vector<Name> names;
  for (auto& p : found) {
    std::error_code ec;
    names.push_back({normal(p), p, fs::is_symlink(fs::symlink_status(p, ec))});
  }
  std::sort(names.begin(), names.end(), [](const Name& a, const Name& b) {
    return std::tie(a.key, a.link, a.path) < std::tie(b.key, b.link, b.path);
  });
  for (std::size_t i = 0; i < names.size();) {
    SelectedFile f;
    f.path = names[i].path;
    f.target = names[i].link ? names[i].key : names[i].path;
    std::error_code ec;
    auto size = fs::file_size(f.target, ec);
    f.bytes = ec ? 0 : size;
    std::size_t j = i + 1;
    for (; j < names.size() && names[j].key == names[i].key; ++j)
      if (names[j].path != f.path &&
          std::find(f.aliases.begin(), f.aliases.end(), names[j].path) == f.aliases.end())
        f.aliases.push_back(names[j].path);
    sel.files.push_back(std::move(f));
    i = j;
  }
  std::sort(sel.files.begin(), sel.files.end(),
            [](const SelectedFile& a, const SelectedFile& b) { return a.path < b.path; });
  std::sort(temporaries.begin(), temporaries.end());
  std::sort(sel.skipped.begin(), sel.skipped.end(),
            [](const SkippedFile& a, const SkippedFile& b) { return a.path < b.path; });
  sel.temporaries = std::move(temporaries);

  if (sel.files.empty()) {
    std::string msg = "no files to sign: searched ";
    for (std::size_t i = 0; i < searched.size(); ++i) msg += (i ? ", " : "") + searched[i];
    if (!sel.skipped.empty())
      msg += " (" + std::to_string(sel.skipped.size()) + " skipped; the first, '" +
             platform::to_utf8(sel.skipped.front().path) + "': " + sel.skipped.front().reason + ")";
    throw InputError(msg);
  }
  return sel;
}

}  // namespace tsign::engine
