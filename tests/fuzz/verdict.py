#!/usr/bin/env python3
"""verdict.py TARGET LOG ARTIFACT_DIR EXIT_STATUS SECONDS — what one libFuzzer run of
scripts/fuzz came to, from its log, its artifact folder and its exit status. Prints one line,
then for a failure the inputs that caused it (hex, ready for the seed file's "# regressions"):

  TARGET: N execs, 0 crashes (S s, R execs/s)           the run completed; exit 0
  TARGET: interrupted after N execs, 0 crashes (...)     stopped by a signal (Ctrl-C, kill);
                                                         exit 3: not a failure, not a full run
  TARGET: CRASH                                          a crash, leak, timeout or OOM; exit 1

libFuzzer writes slow-unit-* files for inputs that took long (on a starved CPU, seconds); they
are never failures and are listed apart, as are the log's last lines of a real failure.
"""

import pathlib
import re
import sys

FAILURE_ARTIFACTS = ("crash-", "leak-", "timeout-", "oom-")


def main(target, log_path, artifacts, status, seconds):
    log = pathlib.Path(log_path).read_text(errors="replace")
    runs = re.findall(r"^stat::number_of_executed_units: *(\d+)", log, re.M)
    if not runs:  # no final stats (interrupted before them): the last "#N" progress line
        runs = re.findall(r"^#(\d+)\s", log, re.M)
    n = int(runs[-1]) if runs else 0
    secs = max(int(seconds), 1)
    files = sorted(p for p in pathlib.Path(artifacts).glob("*") if p.is_file())
    failures = [p for p in files if p.name.startswith(FAILURE_ARTIFACTS)]
    slow = [p for p in files if p.name.startswith("slow-unit-")]
    interrupted = "libFuzzer: run interrupted" in log
    rate = f"({seconds} s, {n // secs} execs/s)"
    if int(status) == 0 and not failures:
        print(f"{target}: {n} execs, 0 crashes {rate}")
        code = 0
    elif interrupted and not failures:
        print(f"{target}: interrupted after {n} execs, 0 crashes {rate}")
        code = 3
    else:
        print(f"{target}: CRASH")
        lines = [l for l in log.splitlines() if not re.match(r"^(#|INFO|Loading|Loaded)", l)]
        print("\n".join(lines[-60:]))
        for p in failures:
            print(f"{target}: crashing input {p.name} (hex): {p.read_bytes().hex()}")
        code = 1
    for p in slow:
        print(f"{target}: slow input (not a failure) {p.name}")
    return code


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:6]))
