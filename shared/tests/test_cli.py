"""The command line: what an operator sees when the configuration is wrong."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("app", "env", "expected"),
    [
        (
            "gateway",
            {"ENVIRONMENT": "production", "IDENTITY_SECRET": "a" * 64},
            "error: gateway: configuration: JWT_SECRET must be set to a real secret in production",
        ),
        (
            "sales",
            {"DB_POOL_SIZE": "many"},
            "error: sales: configuration: DB_POOL_SIZE: Input should be a valid integer",
        ),
    ],
    ids=["production-without-jwt-secret", "pool-size-not-a-number"],
)
def test_bad_setting_stops_with_one_line_naming_it(
    app: str, env: dict[str, str], expected: str, tmp_path: Path
) -> None:
    clean = {k: v for k, v in os.environ.items() if k not in {"JWT_SECRET", "IDENTITY_SECRET"}}
    done = subprocess.run(
        [sys.executable, "-m", app, "migrate"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # no .env of the checkout's
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(expected), lines[0]
