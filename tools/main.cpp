// Thin entry point: all logic is in tsign_core (src/), shared with the tests.
#include "cli/commands.hpp"

int main(int argc, char** argv) {
  return tsign::cli::main(argc, argv);
}
