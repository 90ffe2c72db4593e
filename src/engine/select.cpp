#include "engine/select.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include "common/error.hpp"
#include "formats/format.hpp"
#include "platform/platform.hpp"

namespace tsign::engine {

namespace fs = std::filesystem;

namespace {

char lower(char c) {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

// '*' and '?' glob over a whole file name (no path separators involved).
bool glob(std::string_view pat, std::string_view s) {
  std::size_t p = 0, i = 0, star = std::string_view::npos, mark = 0;
  while (i < s.size()) {
    if (p < pat.size() && (pat[p] == '?' || lower(pat[p]) == lower(s[i]))) {
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

Selection select_files(const SelectionRequest& req) {
  std::vector<fs::path> found;
  std::vector<std::string> searched;
  std::vector<fs::path> temporaries;

  for (const auto& f : req.files) {
    found.push_back(platform::from_utf8(f));
  }
  if (!req.files.empty()) searched.push_back(std::to_string(req.files.size()) + " listed file(s)");

  if (!req.folder.empty()) {
    fs::path root = platform::from_utf8(req.folder);
    std::error_code ec;
    if (!fs::is_directory(root, ec))
      throw InputError("files-folder: '" + req.folder + "' is not an existing folder");
    fs::path real_root = normal(root);
    int max_depth = req.recurse ? req.depth.value_or(1 << 30) : 0;
    // Symbolic links to folders are not followed (no loops, nothing outside the folder);
    // links to files are taken only when they resolve inside the folder.
    fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec),
        end;
    if (ec) throw InputError("files-folder: cannot read '" + req.folder + "': " + ec.message());
    for (; it != end; it.increment(ec)) {
      if (ec)
        throw InputError("files-folder: error while listing '" + req.folder + "': " + ec.message());
      const auto& entry = *it;
      if (entry.is_directory(ec) && !entry.is_symlink(ec)) {
        if (it.depth() >= max_depth) it.disable_recursion_pending();
        continue;
      }
      if (entry.is_symlink(ec)) {
        if (!fs::is_regular_file(entry.path(), ec) || !inside(normal(entry.path()), real_root))
          continue;
      } else if (!entry.is_regular_file(ec)) {
        continue;
      }
      auto name = platform::to_utf8(entry.path().filename());
      // A copy tsign is writing (or a killed run left): a PE by content, never a file to sign.
      if (platform::is_temporary_name(name)) {
        temporaries.push_back(entry.path());
        continue;
      }
      if (!req.filter.empty()) {
        bool ok = std::any_of(req.filter.begin(), req.filter.end(),
                              [&](const std::string& f) { return matches_filter(name, f); });
        if (!ok) continue;
      } else if (!formats::is_supported(entry.path())) {
        continue;  // no filter: every file of a supported format
      }
      found.push_back(entry.path());
    }
    std::string what = "folder '" + req.folder + "'";
    if (req.recurse) what += req.depth ? " to depth " + std::to_string(*req.depth) : " recursively";
    what += req.filter.empty() ? " for supported files" : " for files matching the filter";
    searched.push_back(what);
  }

  if (!req.catalog.empty()) {
    fs::path cat = platform::from_utf8(req.catalog);
    std::ifstream in(cat, std::ios::binary);
    if (!in) throw InputError("files-catalog: cannot read '" + req.catalog + "'");
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
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

  if (searched.empty())
    throw InputError("nothing to sign: give files, files-folder or files-catalog");

  // Deterministic order, each file once (compared by its resolved path).
  std::vector<std::pair<fs::path, fs::path>> keyed;
  for (auto& p : found) keyed.emplace_back(normal(p), p);
  std::sort(keyed.begin(), keyed.end());
  Selection sel;
  std::sort(temporaries.begin(), temporaries.end());
  sel.temporaries = std::move(temporaries);
  std::set<fs::path> seen;
  for (auto& [key, p] : keyed)
    if (seen.insert(key).second) sel.files.push_back(p);

  if (sel.files.empty()) {
    std::string msg = "no files to sign: searched ";
    for (std::size_t i = 0; i < searched.size(); ++i) msg += (i ? ", " : "") + searched[i];
    throw InputError(msg);
  }
  return sel;
}

}  // namespace tsign::engine
