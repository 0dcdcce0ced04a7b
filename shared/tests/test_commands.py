"""What a person sees when Postgres or RabbitMQ is missing: one line, the URL, no traceback."""

import os
import socket
import subprocess
import sys

import pytest

from bookstore_testing.harness import free_port


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", [("-m", "inventory", "migrate"), ("-m", "gateway", "seed")])
def test_app_command_without_postgres_says_so_in_one_line(command: tuple[str, ...]) -> None:
    url = f"postgresql+asyncpg://postgres:s3cret@127.0.0.1:{free_port()}/bookstore"
    result = _run(*command, env={"DATABASE_URL": url})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: Postgres is not answering at postgresql+asyncpg://")
    assert "s3cret" not in lines[0]
    assert "***" in lines[0]


def test_stack_without_rabbitmq_says_so_in_one_line() -> None:
    url = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    result = _run("-m", "bookstore_shared.stack", env={"AMQP_URL": url})
    assert result.returncode == 1
    error_lines = result.stderr.strip().splitlines()
    assert len(error_lines) == 1, result.stderr
    assert error_lines[0].startswith(
        "error: RabbitMQ is not answering at amqp://guest:***@127.0.0.1"
    )
    assert "Traceback" not in result.stdout + result.stderr


def test_stack_with_its_port_taken_says_so_in_one_line() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        ports = {f"{app}_PORT": str(free_port()) for app in ("INVENTORY", "SALES", "DELIVERY")}
        result = _run("-m", "bookstore_shared.stack", env={**ports, "GATEWAY_PORT": str(port)})
    assert result.returncode == 1
    error_lines = [line for line in result.stderr.strip().splitlines() if line]
    assert error_lines == [error_lines[0]], result.stderr
    assert error_lines[0].startswith(f"error: port in use: gateway:{port}")
