#!/usr/bin/env python3
"""Runs a command and prints its wall time and the peak RSS of its process tree, as
`wall_seconds peak_rss_kib exit_code`. Used by scripts/bench.

  measure.py [--warm-mib N] COMMAND...

--warm-mib N: before the clock starts, a child process writes N MiB of fresh memory and exits,
freeing it. On a virtual machine whose balloon reports free pages to the host (the machines this
project is developed and benchmarked on), the first write to a page the host has taken back
costs a fault on the host, several times the price of the write itself: 512 MiB of new page
cache took 0.14 s or 0.57 s depending on which pages the kernel handed out. Memory just freed is
what the kernel hands out next, and the host backs it: the command is timed for its own work, as
on a machine without a balloon."""
import os
import resource
import subprocess
import sys
import time

args = sys.argv[1:]
if args[:1] == ["--warm-mib"]:
    # One byte written per page of a fresh mapping faults every page in; the child's exit frees
    # them.
    warm = ("import mmap, sys; n = int(sys.argv[1]) << 20; m = mmap.mmap(-1, n); "
            "m[::mmap.PAGESIZE] = bytes(len(range(0, n, mmap.PAGESIZE)))")
    subprocess.run([sys.executable, "-c", warm, args[1]], check=True)
    args = args[2:]

t0 = time.monotonic()
child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
# wait4: this child's own usage (with its waited-for descendants), not the warming child's.
_, status, usage = os.wait4(child.pid, 0)
wall = time.monotonic() - t0
rc = os.waitstatus_to_exitcode(status)
print(f"{wall:.3f} {usage.ru_maxrss} {rc}")
