#include "cli/commands.hpp"

#include <cstdio>
#include <string>

namespace tsign::cli {
int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--version") {
    std::printf("tsign %s\n", TSIGN_VERSION);
    return 0;
  }
  return 2;
}
}  // namespace tsign::cli
