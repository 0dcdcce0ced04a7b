"""The compose stack for real: built, scaled to two replicas of every app, ordered through the
published gateway port while one replica of sales and one of inventory are killed.

Runs where a Docker engine with Compose v2 answers (`make up`'s prerequisites); elsewhere it
is skipped, saying why. Bounded: about three minutes with the images built before.
"""

import secrets
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bookstore_testing.load import OrderLoad
from bookstore_testing.shop import Shop

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.compose
CLIENTS = 8
STOCK = 1_000
DEMO_PASSWORD = "compose-demo-password"


def _compose_answers() -> str | None:
    """Why the compose stack cannot run here, or None if it can."""
    if shutil.which("docker") is None:
        return "no docker command"
    for probe in (["docker", "info"], ["docker", "compose", "version"]):
        try:
            done = subprocess.run(probe, capture_output=True, timeout=15, check=False)
        except subprocess.TimeoutExpired:
            return f"`{' '.join(probe)}` did not answer"
        if done.returncode != 0:
            return f"`{' '.join(probe)}` failed: no Docker engine or no Compose v2 here"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class ComposeStack:
    project: str
    env_file: Path
    url: str

    def command(self, *args: str) -> list[str]:
        return [
            "docker",
            "compose",
            "--project-name",
            self.project,
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(self.env_file),
            *args,
        ]

    def run(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            self.command(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=ROOT,
        )
        said = f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
        assert done.returncode == 0, f"docker compose {' '.join(args)}:\n{said}"
        return done.stdout

    def kill(self, service: str, replica: int) -> None:
        container = f"{self.project}-{service}-{replica}"
        subprocess.run(["docker", "kill", container], capture_output=True, timeout=30, check=True)


@pytest.fixture(scope="module")
def compose_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    if why := _compose_answers():
        pytest.skip(f"compose stack not tried: {why}")
    port = _free_port()
    env_file = tmp_path_factory.mktemp("compose") / "compose.env"
    env_file.write_text(
        "".join(
            f"{name}={secrets.token_hex(32)}\n"
            for name in (
                "POSTGRES_PASSWORD",
                "RABBITMQ_PASSWORD",
                "IDENTITY_SECRET",
                "JWT_SECRET",
                "METRICS_TOKEN",
            )
        )
        + f"DEMO_PASSWORD={DEMO_PASSWORD}\nGATEWAY_BIND=127.0.0.1\nGATEWAY_PORT={port}\n"
    )
    stack = ComposeStack(
        project=f"bookstore-test-{uuid.uuid4().hex[:8]}",
        env_file=env_file,
        url=f"http://127.0.0.1:{port}",
    )
    try:
        stack.run("build", timeout=600)
        stack.run(
            "up",
            "--detach",
            "--wait",
            "--wait-timeout",
            "240",
            *(f"--scale={app}-service=2" for app in ("inventory", "sales", "delivery")),
            timeout=300,
        )
        stack.run("--profile", "demo", "run", "--rm", "--no-deps", "demo-users")
        yield stack
    finally:
        down = ("--profile", "demo", "down", "--volumes", "--remove-orphans", "--timeout", "5")
        subprocess.run(
            stack.command(*down), capture_output=True, timeout=180, check=False, cwd=ROOT
        )


@pytest.fixture
async def shop(compose_stack: ComposeStack) -> AsyncIterator[Shop]:
    limits = httpx.Limits(max_connections=CLIENTS + 4)
    async with httpx.AsyncClient(base_url=compose_stack.url, timeout=60, limits=limits) as gateway:
        token = await gateway.post(
            "/api/auth/token",
            data={"username": "staff@bookstore.local", "password": DEMO_PASSWORD},
        )
        assert token.status_code == 200, token.text
        yield Shop(gateway, {"Authorization": f"Bearer {token.json()['access_token']}"})


async def test_two_replicas_each_survive_a_killed_sales_and_inventory(
    compose_stack: ComposeStack, shop: Shop
) -> None:
    books = [await shop.new_book(stock=STOCK) for _ in range(3)]
    customers = [await shop.new_customer() for _ in range(CLIENTS)]
    load = OrderLoad(shop, books, customers)
    load.start()
    try:
        await load.run_until(20, within=90)
        killed_at = time.monotonic()
        compose_stack.kill("sales-service", 2)
        compose_stack.kill("inventory-service", 2)
        await load.run_until(40, within=120)  # the survivors carry on
    finally:
        await load.finish()

    failed = load.failures()
    # Only a request on its way to a killed replica may fail, and it fails cleanly: sent
    # before the kill, or while the gateway's DNS answer (kept 10 s) still named the replica.
    assert len(failed) <= CLIENTS, failed[:3]
    assert all(a.sent_at < killed_at + 15 for a in failed), failed[:3]
    assert all(a.status in (409, 502, 503, 504) for a in failed), failed[:3]
    placed = 0
    for customer in customers:
        mine = (await shop.gateway.get("/api/orders?size=100", headers=customer)).json()
        for order in mine["data"]:
            final = await shop.wait_final(order["id"], customer, within=90)
            assert final["status"] in {"confirmed", "cancelled"}
            placed += 1
    assert placed >= 60
    for book in books:
        available, reserved, sold = await shop.counts(book)
        assert reserved == 0
        assert available + sold == STOCK


async def test_the_gateways_metrics_want_the_token_compose_gave_it(
    compose_stack: ComposeStack,
) -> None:
    settings = dict(
        line.split("=", 1) for line in compose_stack.env_file.read_text().splitlines() if line
    )
    async with httpx.AsyncClient(base_url=compose_stack.url, timeout=10) as client:
        stranger = await client.get("/metrics")
        scraper = await client.get(
            "/metrics", headers={"Authorization": f"Bearer {settings['METRICS_TOKEN']}"}
        )
    assert stranger.status_code == 401
    assert scraper.status_code == 200
    assert "http_requests_total" in scraper.text
