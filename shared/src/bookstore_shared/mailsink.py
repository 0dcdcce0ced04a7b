"""An SMTP server that delivers nowhere: every message it is given is saved as a file.

`python -m bookstore_shared.mailsink --port 1025 --dir .run/mail` is where `make run`, the
end-to-end suite and the compose stack send their mail: each message is written to
`<dir>/<timestamp>-<recipient>.eml` (one file per recipient), and one line is logged for it.
"""

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session

from bookstore_shared.logging import configure_logging

log = structlog.get_logger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]")


def file_name_part(recipient: str) -> str:
    """The recipient as it appears in file names: characters unsafe in a path replaced."""
    return _UNSAFE.sub("_", recipient)[:200] or "unknown"


def mail_path(directory: Path, recipient: str, received_at: datetime) -> Path:
    """A new file name for a message to `recipient`: `<timestamp>-<recipient>.eml`."""
    stamp = received_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    name = file_name_part(recipient)
    path = directory / f"{stamp}-{name}.eml"
    suffix = 1
    while path.exists():  # two messages to one address within a microsecond
        suffix += 1
        path = directory / f"{stamp}-{name}-{suffix}.eml"
    return path


class SaveToDirectory:
    """The aiosmtpd handler: writes each message whole, then renames it into place, so a reader
    polling the directory never sees half a message."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # Saved with LF line ends, as mail stores keep it, so grep and sed read it as text.
        content = (envelope.original_content or b"").replace(b"\r\n", b"\n")
        subject = message_from_bytes(content, policy=default_policy).get("Subject", "")
        for recipient in envelope.rcpt_tos:
            path = await asyncio.to_thread(_save, self.directory, recipient, content)
            log.info(
                "mail_received",
                to=recipient,
                mail_from=envelope.mail_from,
                subject=str(subject),
                path=str(path),
            )
        return "250 Message accepted for delivery"


def _save(directory: Path, recipient: str, content: bytes) -> Path:
    path = mail_path(directory, recipient, datetime.now(UTC))
    partial = path.with_name(f".{path.name}.part")
    partial.write_bytes(content)
    partial.replace(path)
    return path


@contextlib.asynccontextmanager
async def mail_sink(
    directory: Path, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[int]:
    """The sink listening on `host:port` (0: a free port) until the block ends; yields its port."""
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    # aiosmtpd logs every SMTP command at INFO; one line a message (ours) is enough.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    handler = SaveToDirectory(directory)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        # A fixed host name: aiosmtpd would otherwise look up the machine's FQDN, which can hang.
        lambda: SMTP(handler, hostname="bookstore-mailsink", loop=loop),
        host=host,
        port=port,
    )
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def _serve(directory: Path, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with mail_sink(directory, host=host, port=port) as bound:
        log.info("mail_sink_listening", url=f"smtp://{host}:{bound}", directory=str(directory))
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bookstore_shared.mailsink",
        description="An SMTP server that saves every message it receives as a .eml file.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", type=Path, default=Path(".run/mail"), dest="directory")
    args = parser.parse_args(argv)
    configure_logging(
        service="mailsink",
        level=os.environ.get("LOG_LEVEL", "INFO"),
        json=os.environ.get("LOG_JSON", "true").lower() != "false",
    )
    try:
        asyncio.run(_serve(args.directory, args.host, args.port))
    except OSError as exc:
        print(f"error: mail sink on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
