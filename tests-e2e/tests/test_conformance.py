"""The API keeps to its own OpenAPI document: schemathesis with every check it has (status
codes, content types, headers, schemas, negative data refused, positive data accepted,
unsupported methods, authentication ignored ...), as a customer and as staff."""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bookstore_shared.stack import LocalStack
from bookstore_testing.stacks import DEMO_PASSWORD

pytestmark = pytest.mark.e2e
EXAMPLES_PER_OPERATION = 8
CONFIG = Path(__file__).resolve().parents[1] / "schemathesis.toml"


def _token(base_url: str, email: str) -> str:
    reply = httpx.post(
        f"{base_url}/api/auth/token", data={"username": email, "password": DEMO_PASSWORD}
    )
    token: str = reply.json()["access_token"]
    return token


@pytest.mark.parametrize("who", ["customer", "staff"])
def test_api_passes_every_schemathesis_check(
    stack: LocalStack, tmp_path_factory: pytest.TempPathFactory, who: str
) -> None:
    base_url = stack.url("gateway")
    token = _token(base_url, f"{who}@bookstore.local")
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {token}",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--generation-deterministic",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "bookstore_testing.schemathesis_hooks",
        "SCHEMATHESIS_REPORT_DIR": str(tmp_path_factory.mktemp("schemathesis")),
    }
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=600, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    assert "No issues found" in output or " passed" in output, output[-3000:]
