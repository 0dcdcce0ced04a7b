"""The whole stack as local processes: used by `make run`, the end-to-end suite and the benchmark.

`python -m bookstore_shared.stack` checks Postgres and RabbitMQ, migrates and seeds every app,
starts the gateway and the three apps, prints where they are, and stops them all on Ctrl-C.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from bookstore_shared.preflight import broker_problem, postgres_problem
from bookstore_shared.settings import ServiceSettings


@dataclass(frozen=True)
class AppSpec:
    name: str  # also the Python package: `python -m <name>`
    default_port: int
    url_env: str | None  # how the gateway is told where this app is


# Upstreams first, so the gateway's readiness (which checks them) comes up last.
APPS = (
    AppSpec("inventory", 8001, "INVENTORY_URL"),
    AppSpec("sales", 8002, "SALES_URL"),
    AppSpec("delivery", 8003, "DELIVERY_URL"),
    AppSpec("gateway", 8000, None),
)


class StackError(RuntimeError):
    pass


class LocalStack:
    def __init__(
        self,
        *,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        ports: Mapping[str, int] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.log_dir = log_dir
        self.ports = {app.name: (ports or {}).get(app.name, app.default_port) for app in APPS}
        self.env = {**os.environ, **(env or {})}
        for app in APPS:
            if app.url_env:
                self.env[app.url_env] = self.url(app.name)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def url(self, app: str) -> str:
        return f"http://{self.host}:{self.ports[app]}"

    def log_path(self, app: str) -> Path:
        return self.log_dir / f"{app}.log"

    def run_command(self, app: str, *args: str) -> str:
        result = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", app, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
            errors = [line for line in lines if line.startswith("error:")]
            raise StackError(f"`{app} {' '.join(args)}` failed: {(errors or lines)[-1]}")
        return result.stdout.strip()

    def _each_app(self, command: str) -> list[str]:
        # The apps' schemas are independent, so their commands run side by side.
        with ThreadPoolExecutor(max_workers=len(APPS)) as pool:
            return list(pool.map(lambda app: self.run_command(app.name, command), APPS))

    def migrate(self) -> list[str]:
        return self._each_app("migrate")

    def seed(self) -> list[str]:
        return self._each_app("seed")

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for app in APPS:
            self._spawn(app.name, self.env)

    def _spawn(self, name: str, env: Mapping[str, str]) -> None:
        command = [
            sys.executable,
            "-m",
            name,
            "serve",
            "--host",
            self.host,
            "--port",
            str(self.ports[name]),
        ]
        with self.log_path(name).open("ab") as log:
            self.processes[name] = subprocess.Popen(  # noqa: S603 - our interpreter, our module
                command,
                env=dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us, and we stop them in order
            )

    def stop_app(self, name: str) -> None:
        process = self.processes[name]
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def restart(
        self, name: str, env: Mapping[str, str] | None = None, timeout: float = 60.0
    ) -> None:
        """Stop one app (if it still runs) and start it again, with extra environment if given."""
        self.stop_app(name)
        self._spawn(name, {**self.env, **(env or {})})
        self.wait_ready(timeout, only=name)

    def exited(self) -> dict[str, int]:
        return {name: code for name, p in self.processes.items() if (code := p.poll()) is not None}

    def log_tail(self, app: str, lines: int = 15) -> str:
        path = self.log_path(app)
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def wait_ready(self, timeout: float = 60.0, only: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        pending = [app.name for app in APPS if only in (None, app.name)]
        with httpx.Client(timeout=2.0) as client:
            while pending:
                if dead := {n: c for n, c in self.exited().items() if n in pending}:
                    name, code = next(iter(dead.items()))
                    raise StackError(
                        f"{name} exited with code {code}; last log lines:\n{self.log_tail(name)}"
                    )
                app = pending[0]
                try:
                    if client.get(f"{self.url(app)}/health/ready").status_code == 200:
                        pending.pop(0)
                        continue
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise StackError(
                        f"{app} was not ready after {timeout:.0f}s; last log lines:\n"
                        f"{self.log_tail(app)}"
                    )
                time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def _ports_from_env() -> dict[str, int]:
    return {
        app.name: int(os.environ.get(f"{app.name.upper()}_PORT", app.default_port)) for app in APPS
    }


def main() -> int:
    settings = ServiceSettings()
    print("Checking Postgres and RabbitMQ ...", flush=True)
    for problem in (
        asyncio.run(postgres_problem(settings.database_url)),
        asyncio.run(broker_problem(settings.amqp_url)),
    ):
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 1

    stack = LocalStack(log_dir=Path(".run/logs"), ports=_ports_from_env())
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        print("Migrating ...", flush=True)
        for line in stack.migrate():
            print(f"  {line}", flush=True)
        print("Seeding ...", flush=True)
        for line in stack.seed():
            print(f"  {line}", flush=True)
        print("Starting the gateway and the three apps ...", flush=True)
        stack.start()
        stack.wait_ready()
    except StackError as exc:
        stack.stop()
        print(f"error: {exc}", file=sys.stderr)
        return 1

    gateway = stack.url("gateway")
    password = os.environ.get("DEMO_PASSWORD", "bookstore-demo")
    print(
        f"\nThe bookstore is up.\n"
        f"  API      {gateway}/api\n"
        f"  Docs     {gateway}/docs\n"
        f"  Logs     {stack.log_dir}/<app>.log\n"
        f"  Logins   admin@bookstore.local, staff@bookstore.local, customer@bookstore.local"
        f" (password: {password})\n"
        f"Press Ctrl-C to stop.",
        flush=True,
    )
    code = 0
    while not stopping:
        if dead := stack.exited():
            name, status = next(iter(dead.items()))
            print(
                f"error: {name} exited with code {status}:\n{stack.log_tail(name)}", file=sys.stderr
            )
            code = 1
            break
        time.sleep(0.5)
    print("\nStopping ...", flush=True)
    stack.stop()
    print("Stopped.", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
