#!/usr/bin/env python3
"""Runs a command and prints its wall time and the peak RSS of its process tree (children's
ru_maxrss), as `wall_seconds peak_rss_kib exit_code`. Used by scripts/bench."""
import resource
import subprocess
import sys
import time

t0 = time.monotonic()
rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wall = time.monotonic() - t0
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"{wall:.3f} {rss} {rc}")
