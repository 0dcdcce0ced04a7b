"""docker compose's promises, checked on the file itself."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
APPS = ("inventory-service", "sales-service", "delivery-service")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_runs_postgres_rabbitmq_and_the_four_apps(compose: dict[str, Any]) -> None:
    assert {"postgres", "rabbitmq", "gateway", *APPS} <= compose["services"].keys()


def test_compose_names_no_container_so_every_app_can_scale(compose: dict[str, Any]) -> None:
    assert [n for n, s in compose["services"].items() if "container_name" in s] == []


def test_compose_publishes_only_the_gateway(compose: dict[str, Any]) -> None:
    assert [n for n, s in compose["services"].items() if s.get("ports")] == ["gateway"]


def test_compose_keeps_apps_on_an_internal_network(compose: dict[str, Any]) -> None:
    internal = {n for n, net in compose["networks"].items() if (net or {}).get("internal")}
    assert internal
    for name in ("postgres", "rabbitmq", "redis", *APPS):
        assert set(compose["services"][name]["networks"]) <= internal, name
    assert set(compose["services"]["gateway"]["networks"]) - internal


@pytest.mark.parametrize("app", ["gateway", *APPS])
def test_compose_app_waits_for_healthy_deps_and_its_migration(
    compose: dict[str, Any], app: str
) -> None:
    service = compose["services"][app]
    depends = service["depends_on"]
    assert depends["postgres"]["condition"] == "service_healthy"
    if app != "gateway":
        assert depends["rabbitmq"]["condition"] == "service_healthy"
    migrations = [
        d for d, c in depends.items() if c["condition"] == "service_completed_successfully"
    ]
    assert len(migrations) == 1
    migrate = compose["services"][migrations[0]]
    assert migrate["command"][-1] == "migrate"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "/health/ready" in " ".join(service["healthcheck"]["test"])
    assert service["build"]["dockerfile"] == "deploy/Dockerfile"


def test_compose_gateway_waits_for_healthy_apps_and_shares_limits_in_redis(
    compose: dict[str, Any],
) -> None:
    gateway = compose["services"]["gateway"]
    for dependency in (*APPS, "redis"):
        assert gateway["depends_on"][dependency]["condition"] == "service_healthy"
    assert gateway["environment"]["REDIS_URL"].startswith("redis://redis:")


def test_compose_takes_secrets_from_the_environment(compose: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for secret in ("IDENTITY_SECRET", "JWT_SECRET", "POSTGRES_PASSWORD", "RABBITMQ_PASSWORD"):
        assert re.search(rf"\$\{{{secret}:\?", text), f"{secret} must be required, not defaulted"
    environment = compose["services"]["gateway"]["environment"]
    assert environment["ENVIRONMENT"] == "production"


def test_dockerfile_is_multi_stage_non_root_and_picks_the_app() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.MULTILINE)) >= 2
    assert re.search(r"^ARG APP\b", dockerfile, re.MULTILINE)
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.MULTILINE)
    assert "--no-dev" in dockerfile
    assert "--package" in dockerfile


def test_compose_starts_every_long_running_service_again_after_a_crash(
    compose: dict[str, Any],
) -> None:
    long_running = {
        name: service
        for name, service in compose["services"].items()
        if not name.endswith("-migrate") and "demo" not in service.get("profiles", [])
    }
    assert {n for n, s in long_running.items() if s.get("restart") != "unless-stopped"} == set()


def test_compose_publishes_on_loopback_away_from_the_hosts_own_ports(
    compose: dict[str, Any],
) -> None:
    (published,) = compose["services"]["gateway"]["ports"]
    bind, host_port, container_port = re.fullmatch(
        r"\$\{GATEWAY_BIND:-([^}]*)\}:\$\{GATEWAY_PORT:-(\d+)\}:(\d+)", published
    ).groups()  # type: ignore[union-attr]
    assert bind == "127.0.0.1"
    assert int(host_port) not in {5432, 5672, 6379, 8000, 8001, 8002, 8003}
    assert container_port == "8000"


def test_compose_gives_each_migration_what_its_settings_require(compose: dict[str, Any]) -> None:
    # The gateway's settings refuse to load in production without JWT_SECRET, migrate or not.
    assert "JWT_SECRET" in compose["services"]["gateway-migrate"]["environment"]


def test_compose_mails_to_its_own_sink_unless_told_otherwise(compose: dict[str, Any]) -> None:
    sink = compose["services"]["mail-sink"]
    assert sink["image"] == compose["services"]["gateway"]["image"]  # no image of its own
    assert sink["command"][:3] == ["python", "-m", "bookstore_shared.mailsink"]
    assert set(sink["networks"]) == {"internal"}
    smtp_url = compose["services"]["gateway"]["environment"]["SMTP_URL"]
    assert smtp_url == "${SMTP_URL:-smtp://mail-sink:1025}"
    assert sink["command"][sink["command"].index("--port") + 1] == "1025"
