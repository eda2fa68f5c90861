"""Run one command and record its wall time and peak RSS, from a process small enough not to
inflate the figure: a child forked from a large process counts the parent's pages in its peak
RSS until it execs, so the benchmark itself never forks the measured command directly.

    python -m benchmarks.measure REPORT.json COMMAND [ARG ...]
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(argv: list[str]) -> int:
    report, *command = argv
    started = time.perf_counter()
    pid = os.posix_spawnp(command[0], command, os.environ)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    with open(report, "w", encoding="utf-8") as handle:
        json.dump({"seconds": seconds, "peak_rss_kb": usage.ru_maxrss, "exit": code}, handle)
    return code if code >= 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
