"""Progress for long steps: a bar on a terminal, one log line every few seconds otherwise."""

from __future__ import annotations

import logging
import sys
import time

from stages import history

log = logging.getLogger(__name__)


class Progress:
    """Counts units of work (bytes, lines, rows) and reports them without flooding CI logs."""

    def __init__(self, label: str, *, total: int | None = None, unit: str = "", every: float = 5.0):
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self._every = every
        self._started = time.monotonic()
        self._last = self._started
        self._tty = sys.stderr.isatty()

    def advance(self, amount: int) -> None:
        self.done += amount
        history.report_progress(self.label, self.done, self.total, self.unit)
        now = time.monotonic()
        if now - self._last >= (0.2 if self._tty else self._every):
            self._last = now
            self._report(now)

    def finish(self) -> None:
        if self._tty:
            self._report(time.monotonic())
            sys.stderr.write("\n")

    def _report(self, now: float) -> None:
        rate = self.done / max(now - self._started, 1e-9)
        if self.total:
            share = min(self.done / self.total, 1.0)
            text = f"{self.label}: {_size(self.done, self.unit)}/{_size(self.total, self.unit)}"
            text += f" ({share:.0%}, {_size(rate, self.unit)}/s)"
        else:
            share = None
            text = f"{self.label}: {_size(self.done, self.unit)} ({_size(rate, self.unit)}/s)"
        if self._tty:
            filled = int((share or 0) * 30)
            bar = "" if share is None else f"[{'#' * filled}{'.' * (30 - filled)}] "
            sys.stderr.write(f"\r{bar}{text}\033[K")
            sys.stderr.flush()
        else:
            log.info("%s", text)


def _size(value: float, unit: str) -> str:
    if unit != "B":
        return f"{value:,.0f}{' ' + unit if unit else ''}"
    for suffix in ("B", "KB", "MB", "GB"):
        if value < 1024 or suffix == "GB":
            return f"{value:.1f} {suffix}" if suffix != "B" else f"{value:.0f} B"
        value /= 1024
    return f"{value:.1f} GB"
