// GitHub runner conventions (protocol.md §5): workflow commands on stdout, GITHUB_OUTPUT,
// GITHUB_STEP_SUMMARY.
#pragma once

#include <filesystem>
#include <mutex>
#include <string>

#include "common/log.hpp"
#include "engine/engine.hpp"
#include "engine/report.hpp"

namespace tsign::gha {

// Workflow-command escaping: data escapes % CR LF; properties also ':' and ','.
std::string escape_data(std::string_view s);
std::string escape_property(std::string_view s);

// The log as workflow commands: ::warning::, ::error file=F::, ::debug:: (only when
// RUNNER_DEBUG=1), ::add-mask::, ::group::. Thread-safe.
class GhaLog : public Log {
 public:
  explicit GhaLog(bool debug) : debug_(debug) {}
  void info(const std::string& msg) override;
  void warning(const std::string& msg) override;
  void error(const std::string& msg, const std::string& file = {}) override;
  void debug(const std::string& msg) override;
  void mask(const Secret& secret) override;
  void group_begin(const std::string& title) override;
  void group_end() override;

 private:
  void emit(const std::string& line);
  bool debug_;
  std::mutex mu_;
};

// GITHUB_OUTPUT lines: signed-count, failed-count, skipped-count, signed-files (multi-line,
// random delimiter), report and subject-checksums (each only when its file was written).
std::string outputs_text(const engine::RunResult& r, const std::string& report_path,
                         const std::string& checksums_path = {});

// The signed files' SHA-256 (after signing) as `sha256sum` prints them, "HEX  NAME" a line, the
// name as given: the file actions/attest-build-provenance takes as `subject-checksums`. A name
// holding a backslash or a line break is escaped as GNU coreutils does (the line starts with a
// backslash; "\\" and "\n" in the name), so `sha256sum -c` reads every line back.
std::string checksums_text(const engine::RunResult& r);

// Markdown job summary (README "Outputs and the job summary"), kept under `limit` bytes: the totals
// and what stopped the run, the failures (kSummaryFailuresShown listed, the others folded), counts
// by format and by folder (kSummaryGroups rows at most each, groups with failures first; they add
// up to the totals), the run's details, the skipped files, then one row per file -- folded into
// <details> past kSummaryUnfoldedRows files; rows past the limit become "…and N more". Names are
// shown relative to ctx.base (the workspace) when inside it.
constexpr std::size_t kSummaryGroups = 20;
constexpr std::size_t kSummaryUnfoldedRows = 200;
// Failures listed before the counts; the others follow folded in <details>.
constexpr std::size_t kSummaryFailuresShown = 20;
// The Format table's row for files whose format was never recognised (they failed before).
constexpr std::string_view kUnrecognised = "not recognised";
std::string summary_markdown(const engine::RunResult& r, const engine::ReportContext& ctx,
                             std::size_t limit = 1000 * 1000);

// Escapes text for a Markdown table cell (| < > & ` * _ [ ] and line breaks).
std::string escape_markdown(std::string_view s);

// Appends text to the file named by an environment variable; false (and no exception) when it
// cannot be written.
bool append_to_file(const std::filesystem::path& path, const std::string& text);

}  // namespace tsign::gha
