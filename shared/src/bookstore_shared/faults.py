"""Fault hooks for tests of failure handling. Off unless BOOKSTORE_FAULTS is set.

BOOKSTORE_FAULTS is a comma-separated list of:
- `crash_after_commit:<MessageType>`: the process exits at once after committing a transaction
  that wrote a message of that type to the outbox, before the message is published.
- `delay:<MessageType>:<seconds>`: the consumer waits that long before handling that type.
- `hold:<MessageType>:<path>`: the consumer waits until the file at `path` exists before
  handling that type, so a test decides exactly when the step goes on (no race with a timer).
Never set it in production; the apps log a warning at start-up when it is set.
"""

import asyncio
import os
from functools import cache
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)
CRASH_EXIT_CODE = 70


@cache
def _faults() -> tuple[frozenset[str], dict[str, float], dict[str, Path]]:
    crash: set[str] = set()
    delay: dict[str, float] = {}
    hold: dict[str, Path] = {}
    for item in filter(
        None, (s.strip() for s in os.environ.get("BOOKSTORE_FAULTS", "").split(","))
    ):
        kind, _, rest = item.partition(":")
        if kind == "crash_after_commit":
            crash.add(rest)
        elif kind == "delay":
            message_type, _, seconds = rest.partition(":")
            delay[message_type] = float(seconds)
        elif kind == "hold":
            message_type, _, path = rest.partition(":")
            hold[message_type] = Path(path)
    if crash or delay or hold:
        log.warning(
            "fault_hooks_enabled",
            crash_after_commit=sorted(crash),
            delay=delay,
            hold={t: str(p) for t, p in hold.items()},
        )
    return frozenset(crash), delay, hold


def announce() -> None:
    """Read BOOKSTORE_FAULTS now, so a deployment with hooks on says so as it starts."""
    _faults()


def crash_after_commit(message_types: set[str]) -> None:
    if crash := _faults()[0] & message_types:
        log.warning("fault_crash_after_commit", message_types=sorted(crash))
        os._exit(CRASH_EXIT_CODE)


async def before_handling(message_type: str) -> None:
    """Wait as the fault hooks say before a message of this type is handled."""
    if delay := _faults()[1].get(message_type):
        await asyncio.sleep(delay)
    if (gate := _faults()[2].get(message_type)) is not None:
        while not gate.exists():  # noqa: ASYNC110 - a file another process creates
            await asyncio.sleep(0.05)
