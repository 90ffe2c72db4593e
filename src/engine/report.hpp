// The JSON report of interface.md ("JSON report").
#pragma once

#include <filesystem>
#include <string>

#include "engine/engine.hpp"

namespace tsign::engine {

struct ReportContext {
  // timestamp_url: the authorities in the order they are tried, ", " between them; empty: none.
  std::string endpoint, account, profile, timestamp_url, correlation_id;
  // Why the JSON report could not be written (empty: it was, or none was asked for); the job
  // summary says so instead of pointing at a report that does not exist.
  std::string report_error;
  // The job summary shows names relative to this folder (GITHUB_WORKSPACE) when inside it.
  std::filesystem::path base;
};

std::string report_json(const RunResult& result, const ReportContext& ctx);

// Writes the report atomically (beside + rename). Throws FileError naming the path.
void write_report(const std::filesystem::path& path, const RunResult& result,
                  const ReportContext& ctx);

}  // namespace tsign::engine
