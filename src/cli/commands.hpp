#pragma once

namespace tsign::cli {
// Dispatches `tsign COMMAND ...`; returns the process exit code (interface.md).
int main(int argc, char** argv);
}  // namespace tsign::cli
