"""Progress of a stage's phases (read, merge, write): a tqdm bar on a terminal, one plain log
line every few seconds otherwise (CI logs, files), and always a last line with the true count.

`Progress` counts units (bytes, lines, rows) with a total and an ETA where the total is known;
`phase` times a step that has nothing to count (a set-based merge in PostgreSQL), so a long
merge shows its elapsed time instead of a count that seems frozen.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

from stages.observe import recorder

log = logging.getLogger(__name__)

PLAIN_EVERY = 5.0  # seconds between plain progress lines off a terminal
TERMINAL_EVERY = 0.2  # seconds between redraws of a terminal bar


class Progress:
    """Counts units of work in one named phase and reports them truthfully.

    `total` is in `unit` when known (bytes of a download). A phase counted in one unit but
    measured in another (lines of a file whose size is known) passes `fraction` to `update`,
    which gives the share and the ETA. `finish` reports the final count, whatever was reported
    before. `stream` and `tty` exist for tests; by default stderr and whether it is a terminal.
    """

    def __init__(
        self,
        label: str,
        *,
        total: int | None = None,
        unit: str = "",
        every: float = PLAIN_EVERY,
        stream: IO[str] | None = None,
        tty: bool | None = None,
    ):
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self.fraction: float | None = None
        self._every = every
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty() if tty is None else tty
        self._started = time.monotonic()
        self._last = self._started
        self._bar: Any = None
        self._finished = False

    def advance(self, amount: int) -> None:
        """Count `amount` more units."""
        self.update(self.done + amount)

    def update(self, done: int, *, fraction: float | None = None) -> None:
        """Set the count to `done` (and the share of the work done, 0..1, when known)."""
        self.done = done
        if fraction is not None:
            self.fraction = min(max(fraction, 0.0), 1.0)
        recorder.report_progress(self.label, self.done, self.total, self.unit)
        now = time.monotonic()
        if now - self._last >= (TERMINAL_EVERY if self._tty else self._every):
            self._last = now
            self._report(now)

    def finish(self, done: int | None = None) -> None:
        """Report the phase's final count (`done` if given) and how long it took; once."""
        if self._finished:
            return
        self._finished = True
        if done is not None:
            self.done = done
        if self.total is None or self.fraction is not None:
            self.fraction = 1.0
        recorder.report_progress(self.label, self.done, self.total, self.unit)
        seconds = time.monotonic() - self._started
        if self._tty:
            self._draw()
            self._bar.close()
        else:
            log.info("%s: %s in %.1f s", self.label, _amount(self.done, self.unit), seconds)

    def _share(self) -> float | None:
        if self.total:
            return min(self.done / self.total, 1.0)
        return self.fraction

    def _report(self, now: float) -> None:
        if self._tty:
            self._draw()
            return
        elapsed = now - self._started
        text = f"{self.label}: {_amount(self.done, self.unit)}"
        if self.total:
            text += f" of {_amount(self.total, self.unit)}"
        share = self._share()
        details = [] if share is None else [f"{share:.0%}"]
        details.append(f"{_amount(self.done / max(elapsed, 1e-9), self.unit)}/s")
        if share:
            details.append(f"ETA {elapsed * (1 - share) / share:.0f} s")
        log.info("%s (%s)", text, ", ".join(details))

    def _draw(self) -> None:
        from tqdm import tqdm

        if self._bar is None:
            bytes_ = self.unit == "B"
            self._bar = tqdm(
                desc=self.label,
                total=self.total if self.total is not None else (100 if self.fraction else None),
                unit=self.unit or "it",
                unit_scale=bytes_,
                unit_divisor=1024 if bytes_ else 1000,
                file=self._stream,
                leave=True,
                dynamic_ncols=True,
                mininterval=TERMINAL_EVERY,
                initial=0,
            )
        if self.total is not None:
            self._bar.n = self.done
        elif self.fraction is not None:
            # Measured in another unit: the bar shows the share, the postfix the count.
            self._bar.total = 100
            self._bar.n = round(self.fraction * 100)
            self._bar.set_postfix_str(_amount(self.done, self.unit), refresh=False)
        else:
            self._bar.n = self.done
        self._bar.refresh()


@contextlib.contextmanager
def phase(label: str, *, every: float = PLAIN_EVERY) -> Iterator[None]:
    """Time a step with nothing to count: a line when it starts, its elapsed time every `every`
    seconds while it runs (so a 70 s merge is seen running), and its duration at the end."""
    started = time.monotonic()
    stop = threading.Event()
    log.info("%s: started", label)
    recorder.report_progress(label, 0, None, "s")

    def tick() -> None:
        while not stop.wait(every):
            elapsed = time.monotonic() - started
            recorder.report_progress(label, round(elapsed), None, "s")
            log.info("%s: running for %.0f s", label, elapsed)

    ticker = threading.Thread(target=tick, name=f"progress {label}", daemon=True)
    ticker.start()
    outcome = "stopped after"  # an error or an interrupt ends the step
    try:
        yield
        outcome = "done in"
    finally:
        stop.set()
        ticker.join()
        log.info("%s: %s %.1f s", label, outcome, time.monotonic() - started)


def _amount(value: float, unit: str) -> str:
    if unit != "B":
        return f"{value:,.0f}{' ' + unit if unit else ''}"
    return byte_size(value)


def byte_size(value: float) -> str:
    """A byte count for people, in steps of 1024: "512 B", "22.0 KB", "1.5 MB", "3.2 GB"."""
    for suffix in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} B" if suffix == "B" else f"{value:.1f} {suffix}"
        value /= 1024
    return f"{value:.1f} GB"
