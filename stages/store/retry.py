"""Retries with exponential backoff and jitter, shared by every stage that talks to a network.

Every retry loop reports each failed attempt it is about to retry through `notify_retry`, so
the stage runner can record the attempt in the run history without the loops knowing about it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from stages.errors import first_line
from stages.rules.config import RetryPolicy

T = TypeVar("T")
log = logging.getLogger(__name__)

# (describe, attempt number that failed, its error, seconds until the next attempt)
RetryListener = Callable[[str, int, BaseException, float], None]
_listeners: list[RetryListener] = []


def add_retry_listener(listener: RetryListener) -> Callable[[], None]:
    """Call `listener` for every retried attempt in this process; returns a function removing it."""
    _listeners.append(listener)

    def remove() -> None:
        if listener in _listeners:
            _listeners.remove(listener)

    return remove


def notify_retry(describe: str, attempt: int, exc: BaseException, delay: float) -> None:
    """Tell the listeners that attempt number `attempt` of `describe` failed and will be retried.

    Every retry loop calls this once per retry, before sleeping. A listener that raises is
    logged and ignored: recording history must never change what the stage does.
    """
    for listener in list(_listeners):
        try:
            listener(describe, attempt, exc, delay)
        except Exception:
            log.debug("retry listener %r failed", listener, exc_info=True)


def backoff_delay(policy: RetryPolicy, retry: int) -> float:
    """Seconds to wait before retry number `retry` (1-based): doubling, capped, with full jitter
    on the upper half so that parallel stages hitting the same outage do not retry in lockstep."""
    base = min(policy.first_delay * 2 ** (retry - 1), policy.max_delay)
    return base / 2 + random.uniform(0, base / 2)


def with_retries(
    policy: RetryPolicy,
    attempt: Callable[[int], T],
    *,
    is_transient: Callable[[BaseException], bool],
    describe: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `attempt(n)` for n = 1, 2, ... until it succeeds, a permanent error escapes, or
    `policy.retries` retries are spent; the last transient error is then re-raised."""
    number = 1
    while True:
        try:
            return attempt(number)
        except Exception as exc:
            if not is_transient(exc) or number > policy.retries:
                raise
            delay = backoff_delay(policy, number)
            log.warning(
                "%s: attempt %d failed (%s); retrying in %.1f s",
                describe,
                number,
                first_line(exc),
                delay,
            )
            notify_retry(describe, number, exc, delay)
            sleep(delay)
            number += 1
