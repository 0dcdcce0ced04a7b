"""The whole stack as local processes: used by `make run`, the end-to-end suite and the benchmark.

`python -m bookstore_shared.stack` checks Postgres and RabbitMQ, migrates and seeds every app,
starts the gateway and the three apps (several processes of an app with
`REPLICAS=sales=2,inventory=2`, the gateway spreading over them) and a mail sink that keeps
the gateway's mail in `.run/mail/` (unless SMTP_URL names a mail server), prints where they
are, restarts a process that dies (with back-off, saying so in one line), and stops them all
on Ctrl-C.
"""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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
# A replica beyond the first listens this far above the previous one (sales-2 on 8102).
REPLICA_PORT_STEP = 100
# An app that died is started again after 1, 2, 4 ... seconds, at most this long; the pause
# starts over once the app has stayed up for a minute.
RESTART_BACKOFF_MAX = 30.0
RESTART_BACKOFF_RESET = 60.0
# The process that receives the gateway's mail, when the stack has a mail directory.
MAIL_SINK = "mailsink"


class StackError(RuntimeError):
    pass


def replica_names(app: str, count: int) -> list[str]:
    """`sales`, `sales-2`, `sales-3` ...: the first replica keeps the app's own name."""
    return [app if i == 1 else f"{app}-{i}" for i in range(1, count + 1)]


def app_of(process: str) -> str:
    return process.rsplit("-", 1)[0] if process[-1].isdigit() and "-" in process else process


def parse_replicas(spec: str) -> dict[str, int]:
    """`sales=2,inventory=2` → {"sales": 2, "inventory": 2}; the gateway stays one process."""
    counts: dict[str, int] = {}
    apps = {app.name for app in APPS if app.url_env}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, number = item.partition("=")
        if name not in apps or not number.isdigit() or not 1 <= int(number) <= 8:
            raise StackError(
                f"REPLICAS: {item!r} is not <app>=<1..8> with app one of {', '.join(sorted(apps))}"
            )
        counts[name] = int(number)
    return counts


@dataclass
class _Supervised:
    """What the supervisor knows of one process it watches."""

    started_at: float
    restarts: int = 0
    due_at: float | None = None  # a restart is scheduled for then


@dataclass
class LocalStack:
    log_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    ports: Mapping[str, int] = field(default_factory=dict)
    replicas: Mapping[str, int] = field(default_factory=dict)
    host: str = "127.0.0.1"
    # With a directory, a mail sink runs beside the apps, keeping there every mail the gateway
    # sends (SMTP_URL points at it); without one, SMTP_URL is the environment's.
    mail_dir: Path | None = None
    # The interpreter the apps run on: this one, or another checkout's (`make bench --against`).
    python: str = sys.executable

    def __post_init__(self) -> None:
        self.names = {
            app.name: replica_names(app.name, self.replicas.get(app.name, 1)) for app in APPS
        }
        self._ports: dict[str, int] = {}
        for app in APPS:
            base = self.ports.get(app.name, app.default_port)
            for i, name in enumerate(self.names[app.name]):
                self._ports[name] = self.ports.get(name, base + REPLICA_PORT_STEP * i)
        self.env = {**os.environ, **self.env}
        for app in APPS:
            if app.url_env:
                self.env[app.url_env] = ",".join(self.url(n) for n in self.names[app.name])
        # Links in mail lead to this gateway unless told otherwise.
        self.env.setdefault("PUBLIC_URL", self.url("gateway"))
        if self.mail_dir is not None:
            self._ports[MAIL_SINK] = self.ports.get(MAIL_SINK) or _free_port(self.host)
            self.env["SMTP_URL"] = f"smtp://{self.host}:{self._ports[MAIL_SINK]}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._extra_env: dict[str, Mapping[str, str]] = {}
        self._supervised: dict[str, _Supervised] = {}

    def url(self, name: str) -> str:
        """The URL of a process: `sales` (its first replica), `sales-2`, `gateway` ..."""
        return f"http://{self.host}:{self._ports[name]}"

    @property
    def smtp_url(self) -> str | None:
        """Where the stack's own mail sink listens (None: the stack has none)."""
        return self.env["SMTP_URL"] if self.mail_dir is not None else None

    def all_processes(self) -> list[str]:
        return [name for app in APPS for name in self.names[app.name]]

    def ports_taken(self) -> list[str]:
        """`name:port` of each process whose port something else is listening on already."""
        taken = []
        for name in self.all_processes():
            with socket.socket() as probe:
                # As uvicorn binds: connections of an earlier run left in TIME_WAIT don't count.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((self.host, self._ports[name]))
                except OSError:
                    taken.append(f"{name}:{self._ports[name]}")
        return taken

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def run_command(self, app: str, *args: str) -> str:
        result = subprocess.run(  # noqa: S603 - our own interpreter and module
            [self.python, "-m", app, *args],
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
        if self.mail_dir is not None:
            self._spawn(MAIL_SINK)
        for name in self.all_processes():
            self._spawn(name)

    def _command(self, name: str) -> list[str]:
        where = ["--host", self.host, "--port", str(self._ports[name])]
        if name == MAIL_SINK:
            assert self.mail_dir is not None
            return [
                self.python,
                "-m",
                "bookstore_shared.mailsink",
                *where,
                "--dir",
                str(self.mail_dir),
            ]
        return [self.python, "-m", app_of(name), "serve", *where]

    def _spawn(self, name: str) -> None:
        command = self._command(name)
        env = {**self.env, **self._extra_env.get(name, {})}
        with self.log_path(name).open("ab") as log:
            self.processes[name] = subprocess.Popen(  # noqa: S603 - our interpreter, our module
                command,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us, and we stop them in order
            )
        self._supervised[name] = _Supervised(started_at=time.monotonic())

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def signal(self, name: str, signum: int) -> None:
        """Send a signal to one process (SIGTERM to stop it gracefully, SIGKILL to kill it)."""
        self.processes[name].send_signal(signum)

    def stop_app(self, name: str, timeout: float = 45.0) -> None:
        """Stop one process: SIGTERM, then SIGKILL if it has not gone after `timeout` s (its
        in-flight requests, up to the longest `Prefer: wait`, may finish first)."""
        process = self.processes[name]
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def restart(
        self, name: str, env: Mapping[str, str] | None = None, timeout: float = 60.0
    ) -> None:
        """Stop one process (if it still runs) and start it again. `env` is extra environment
        for it from now on (an empty or absent one: back to the stack's own)."""
        self.stop_app(name)
        self._extra_env[name] = dict(env or {})
        self._spawn(name)
        self.wait_ready(timeout, only=name)

    def exited(self) -> dict[str, int]:
        return {name: code for name, p in self.processes.items() if (code := p.poll()) is not None}

    def supervise(self) -> list[str]:
        """Start again every process that died, each after a growing pause. Returns one line
        for each thing it did (a death noticed, a restart), for whoever runs the stack."""
        said: list[str] = []
        now = time.monotonic()
        for name, code in self.exited().items():
            watch = self._supervised[name]
            if watch.due_at is None:
                if now - watch.started_at > RESTART_BACKOFF_RESET:
                    watch.restarts = 0
                pause = min(2.0**watch.restarts, RESTART_BACKOFF_MAX)
                watch.due_at = now + pause
                said.append(
                    f"{name} exited with code {code}; starting it again in {pause:.0f} s "
                    f"(log: {self.log_path(name)})"
                )
            elif now >= watch.due_at:
                restarts = watch.restarts + 1
                self._spawn(name)
                self._supervised[name].restarts = restarts
                said.append(f"{name} started again (pid {self.pid(name)}, restart {restarts})")
        return said

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.log_path(name)
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _mail_sink_listens(self) -> bool:
        try:
            with socket.create_connection((self.host, self._ports[MAIL_SINK]), timeout=1.0):
                return True
        except OSError:
            return False

    def wait_ready(self, timeout: float = 60.0, only: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        if MAIL_SINK in self.processes and only in (None, MAIL_SINK):
            while not self._mail_sink_listens():
                if (code := self.processes[MAIL_SINK].poll()) is not None:
                    raise StackError(
                        f"{MAIL_SINK} exited with code {code}; last log lines:\n"
                        f"{self.log_tail(MAIL_SINK)}"
                    )
                if time.monotonic() > deadline:
                    raise StackError(f"{MAIL_SINK} was not listening after {timeout:.0f}s")
                time.sleep(0.1)
        pending = [name for name in self.all_processes() if only in (None, name)]
        with httpx.Client(timeout=2.0) as client:
            while pending:
                if dead := {n: c for n, c in self.exited().items() if n in pending}:
                    name, code = next(iter(dead.items()))
                    raise StackError(
                        f"{name} exited with code {code}; last log lines:\n{self.log_tail(name)}"
                    )
                name = pending[0]
                try:
                    if client.get(f"{self.url(name)}/health/ready").status_code == 200:
                        pending.pop(0)
                        continue
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise StackError(
                        f"{name} was not ready after {timeout:.0f}s; last log lines:\n"
                        f"{self.log_tail(name)}"
                    )
                time.sleep(0.1)

    def stop(self, timeout: float = 45.0) -> None:
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


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


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
    try:
        replicas = parse_replicas(os.environ.get("REPLICAS", ""))
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    # A mail server of the developer's own (SMTP_URL) gets the mail; otherwise the stack's sink.
    mail_dir = None if os.environ.get("SMTP_URL") else Path(".run/mail")
    stack = LocalStack(
        log_dir=Path(".run/logs"), ports=_ports_from_env(), replicas=replicas, mail_dir=mail_dir
    )
    if taken := stack.ports_taken():
        print(
            f"error: port in use: {', '.join(taken)} (another `make run`?); stop it, or choose "
            "other ports with GATEWAY_PORT, INVENTORY_PORT, SALES_PORT, DELIVERY_PORT",
            file=sys.stderr,
        )
        return 1
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
    scaled = [
        f"  {app.name:<9}{', '.join(stack.url(n) for n in stack.names[app.name])}"
        for app in APPS
        if len(stack.names[app.name]) > 1
    ]
    mail = (
        f"{stack.mail_dir}/<time>-<address>.eml (sink at {stack.smtp_url})"
        if stack.mail_dir is not None
        else "sent through the server in SMTP_URL"
    )
    print(
        f"\nThe bookstore is up.\n"
        f"  API      {gateway}/api\n"
        f"  Docs     {gateway}/docs\n"
        f"  Metrics  {gateway}/metrics, and /metrics on each app's port\n"
        f"  Logs     {stack.log_dir}/<app>.log\n"
        f"  Mail     {mail}\n"
        f"  Logins   admin@bookstore.local, staff@bookstore.local, customer@bookstore.local"
        f" (password: {password})\n"
        + ("Replicas:\n" + "\n".join(scaled) + "\n" if scaled else "")
        + "Press Ctrl-C to stop.",
        flush=True,
    )
    while not stopping:
        for line in stack.supervise():
            print(line, file=sys.stderr, flush=True)
        time.sleep(0.5)
    print("\nStopping ...", flush=True)
    stack.stop()
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
