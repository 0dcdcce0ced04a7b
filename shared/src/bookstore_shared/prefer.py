"""The `Prefer` request header (RFC 7240): only `wait=N` means anything here."""

import re

_WAIT = re.compile(r"(?:^|[,;\s])wait=(\d+)(?:$|[,;\s])")


def requested_wait(prefer: str | None) -> int | None:
    """The seconds asked for with `Prefer: wait=N`, or None."""
    if prefer and (match := _WAIT.search(prefer)):
        return int(match.group(1))
    return None
