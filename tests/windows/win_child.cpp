// A child process for tests/windows/platform_win_test.cpp, which must observe tsign's platform
// layer from outside a process: what its command line looks like in UTF-8, and what a killed
// process leaves on disk.
//   win_child args ARG...     prints platform::args_utf8() one per line
//   win_child hold TARGET     starts a ReplaceFile of TARGET, writes 1 MiB to it, prints
//                             "ready TEMP" and then blocks reading stdin (the test kills it)
//   win_child lock FILE       opens FILE without sharing write or delete (as a running program
//                             or a scanner does), prints "locked", holds it until stdin closes
//   win_child exit N OUT ERR  prints OUT on stdout and ERR on stderr, exits with N
//   win_child hang            never ends by itself (for run_capture's timeout)
#include <windows.h>

#include <cstdio>
#include <string>
#include <vector>

#include "platform/platform.hpp"

int main(int argc, char** argv) {
  auto args = tsign::platform::args_utf8(argc, argv);
  if (args.size() >= 1 && args[0] == "args") {
    for (std::size_t i = 1; i < args.size(); ++i) std::printf("%s\n", args[i].c_str());
    return 0;
  }
  if (args.size() == 2 && args[0] == "hold") {
    tsign::platform::ReplaceFile out(tsign::platform::from_utf8(args[1]));
    std::vector<std::uint8_t> block(1 << 20, 0x5a);
    out.write(tsign::ByteView(block.data(), block.size()));
    std::printf("ready %s\n", tsign::platform::to_utf8(out.temp_path()).c_str());
    std::fflush(stdout);
    // Blocks until the test closes our stdin or, as it does, kills this process.
    int c;
    while ((c = std::getchar()) != EOF) {
    }
    return 0;
  }
  if (args.size() == 2 && args[0] == "lock") {
    HANDLE h = CreateFileW(tsign::platform::from_utf8(args[1]).c_str(), GENERIC_READ,
                           FILE_SHARE_READ, nullptr, OPEN_EXISTING, 0, nullptr);
    if (h == INVALID_HANDLE_VALUE) {
      std::fprintf(stderr, "win_child: cannot open %s (error %lu)\n", args[1].c_str(),
                   GetLastError());
      return 1;
    }
    std::printf("locked\n");
    std::fflush(stdout);
    int c;
    while ((c = std::getchar()) != EOF) {
    }
    CloseHandle(h);
    return 0;
  }
  if (args.size() == 4 && args[0] == "exit") {
    std::fputs(args[2].c_str(), stdout);
    std::fputs(args[3].c_str(), stderr);
    return std::stoi(args[1]);
  }
  if (args.size() == 1 && args[0] == "hang") {
    Sleep(INFINITE);
    return 0;
  }
  std::fprintf(stderr,
               "usage: win_child args ARG... | hold TARGET | lock FILE | exit N OUT ERR | hang\n");
  return 2;
}
