"""Fault hooks for tests of failure handling. Off unless BOOKSTORE_FAULTS is set.

BOOKSTORE_FAULTS is a comma-separated list of:
- `crash_after_commit:<MessageType>`: the process exits at once after committing a transaction
  that wrote a message of that type to the outbox, before the message is published.
- `delay:<MessageType>:<seconds>`: the consumer waits that long before handling that type.
Never set it in production; the apps log a warning at start-up when it is set.
"""

import os
from functools import cache

import structlog

log = structlog.get_logger(__name__)
CRASH_EXIT_CODE = 70


@cache
def _faults() -> tuple[frozenset[str], dict[str, float]]:
    crash: set[str] = set()
    delay: dict[str, float] = {}
    for item in filter(
        None, (s.strip() for s in os.environ.get("BOOKSTORE_FAULTS", "").split(","))
    ):
        kind, _, rest = item.partition(":")
        if kind == "crash_after_commit":
            crash.add(rest)
        elif kind == "delay":
            message_type, _, seconds = rest.partition(":")
            delay[message_type] = float(seconds)
    if crash or delay:
        log.warning("fault_hooks_enabled", crash_after_commit=sorted(crash), delay=delay)
    return frozenset(crash), delay


def announce() -> None:
    """Read BOOKSTORE_FAULTS now, so a deployment with hooks on says so as it starts."""
    _faults()


def crash_after_commit(message_types: set[str]) -> None:
    if crash := _faults()[0] & message_types:
        log.warning("fault_crash_after_commit", message_types=sorted(crash))
        os._exit(CRASH_EXIT_CODE)


def delay_for(message_type: str) -> float:
    return _faults()[1].get(message_type, 0.0)
