"""W3C trace context, carried through every message of a saga.

Just enough of https://www.w3.org/TR/trace-context/ to correlate: the first message of a saga
starts a trace; every message it causes keeps that trace id, with a fresh span id per hop.
"""

import re
import secrets
from contextvars import ContextVar

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
current_traceparent: ContextVar[str | None] = ContextVar("current_traceparent", default=None)


def child_of(traceparent: str | None) -> str:
    """A traceparent in the same trace as `traceparent` (or a new trace), with a new span."""
    match = _TRACEPARENT.match(traceparent or "")
    trace_id = match.group(1) if match else secrets.token_hex(16)
    return f"00-{trace_id}-{secrets.token_hex(8)}-01"
