"""The mail sink: `python -m bookstore_shared.mailsink` keeps every message as a file."""

import json
import os
import smtplib
import socket
import subprocess
import sys
import time
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_listening(port: int, process: subprocess.Popen[str], within: float = 15) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the sink never listened"
            time.sleep(0.05)


def test_sink_saves_each_message_per_recipient_and_logs_one_line_each(tmp_path: Path) -> None:
    port, mail_dir = _free_port(), tmp_path / "mail"
    command = ["-m", "bookstore_shared.mailsink", "--port", str(port), "--dir", str(mail_dir)]
    sink = subprocess.Popen(
        [sys.executable, *command],
        env={**os.environ, "LOG_JSON": "true", "LOG_LEVEL": "INFO"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_listening(port, sink)
        message = EmailMessage()
        message["From"] = "Bookstore <no-reply@bookstore.local>"
        message["To"] = "ann@example.com, bob/../x@example.com"
        message["Subject"] = "Hello"
        message.set_content("Token: abc\n")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.send_message(message)
    finally:
        sink.terminate()
        output, _ = sink.communicate(timeout=15)
    assert sink.returncode == 0, output

    files = sorted(mail_dir.iterdir())
    assert [f.name.split("-", 1)[1] for f in files] == [
        "ann@example.com.eml",
        "bob_.._x@example.com.eml",
    ]
    saved = message_from_bytes(files[0].read_bytes(), policy=default_policy)
    assert saved["Subject"] == "Hello"
    assert b"\r" not in files[0].read_bytes()  # plain text lines, for grep and sed
    received = [json.loads(line) for line in output.splitlines() if "mail_received" in line]
    assert [line["to"] for line in received] == ["ann@example.com", "bob/../x@example.com"]
    assert [Path(line["path"]) for line in received] == files
