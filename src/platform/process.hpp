// Child processes behind the platform layer (added for the Azure CLI credential,
// src/auth/azure_cli.cpp); see process.cpp.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace tsign::platform {

struct RunResult {
  int exit_code = -1;      // the child's exit status; -1 if it was killed or did not exit normally
  std::string out;         // everything it wrote on stdout
  std::string err;         // everything it wrote on stderr
  bool timed_out = false;  // true if it was killed because `timeout` passed
  bool not_found = false;  // true if argv[0] could not be started (not on PATH)
};

// Runs argv[0] (looked up in PATH; on Windows a .cmd/.bat such as az.cmd is run through
// cmd.exe) with the arguments argv[1..], without a shell on POSIX, and captures its output. The
// child is killed if it runs longer than `timeout`. Blocks the calling thread.
RunResult run_capture(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

}  // namespace tsign::platform
