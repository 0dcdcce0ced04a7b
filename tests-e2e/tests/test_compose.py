"""docker compose's promises, checked on the file itself."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
APPS = ("inventory-service", "sales-service", "delivery-service")
OBSERVABILITY = ("prometheus", "grafana", "jaeger")
# Ports the host itself may use (Postgres, RabbitMQ, Redis, `make run`'s apps).
HOST_PORTS_TAKEN = {5432, 5672, 6379, 8000, 8001, 8002, 8003}
DASHBOARD = ROOT / "deploy" / "observability" / "grafana" / "dashboards" / "bookstore.json"
# What the apps' GET /metrics promises (histograms also as _bucket, _sum and _count).
HISTOGRAMS = {"http_request_duration_seconds", "bookstore_saga_duration_seconds"}
METRICS = HISTOGRAMS | {
    "http_requests_total",
    "bookstore_orders_finished_total",
    "bookstore_saga_step_resends_total",
    "bookstore_saga_compensations_total",
    "bookstore_outbox_backlog",
    "bookstore_outbox_oldest_age_seconds",
    "bookstore_outbox_parked",
    "bookstore_messages_handled_total",
    "bookstore_messages_redelivered_total",
    "bookstore_messages_dead_lettered_total",
    "bookstore_db_pool_in_use",
    "bookstore_db_pool_size",
    "bookstore_ratelimit_rejections_total",
    "bookstore_breaker_state",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_runs_postgres_rabbitmq_and_the_four_apps(compose: dict[str, Any]) -> None:
    assert {"postgres", "rabbitmq", "gateway", *APPS} <= compose["services"].keys()


def test_compose_names_no_container_so_every_app_can_scale(compose: dict[str, Any]) -> None:
    assert [n for n, s in compose["services"].items() if "container_name" in s] == []


def test_compose_publishes_only_the_gateway(compose: dict[str, Any]) -> None:
    default = {n: s for n, s in compose["services"].items() if not s.get("profiles")}
    assert [n for n, s in default.items() if s.get("ports")] == ["gateway"]
    profiled = {n: s for n, s in compose["services"].items() if s.get("profiles")}
    assert {n for n, s in profiled.items() if s.get("ports")} <= set(OBSERVABILITY)


def test_compose_observability_profile_publishes_on_loopback_only(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    profile = {n for n, s in services.items() if "observability" in s.get("profiles", [])}
    assert profile == set(OBSERVABILITY)
    host_ports = []
    for name in OBSERVABILITY:
        assert services[name]["ports"], name
        for published in services[name]["ports"]:
            match = re.fullmatch(r"([^:]+):(?:\$\{\w+:-)?(\d+)\}?:(\d+)", published)
            assert match, published
            bind, host_port, _ = match.groups()
            assert bind == "127.0.0.1", name
            host_ports.append(int(host_port))
    assert not set(host_ports) & (HOST_PORTS_TAKEN | {18000})
    assert len(set(host_ports)) == len(host_ports)


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
    for secret in (
        "IDENTITY_SECRET",
        "JWT_SECRET",
        "POSTGRES_PASSWORD",
        "RABBITMQ_PASSWORD",
        "METRICS_TOKEN",
    ):
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


def _host_path(service: dict[str, Any], container_path: str) -> Path:
    """Where `container_path` comes from on the host, through the service's bind mounts."""
    mounts = [v.split(":") for v in service["volumes"] if v.startswith("./")]
    for source, target, *_ in sorted(mounts, key=lambda m: -len(m[1])):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return ROOT / source / Path(container_path).relative_to(target)
    raise AssertionError(f"{container_path} is not mounted from the repository")


@pytest.mark.parametrize("app", ["gateway", *APPS])
def test_compose_app_has_the_metrics_token_and_traces_only_when_asked(
    compose: dict[str, Any], app: str
) -> None:
    environment = compose["services"][app]["environment"]
    assert environment["METRICS_TOKEN"].startswith("${METRICS_TOKEN:?")
    assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "${OTEL_EXPORTER_OTLP_ENDPOINT:-}"
    # http://jaeger:4318 reaches Jaeger from the app's network.
    jaeger = compose["services"]["jaeger"]
    assert set(jaeger["networks"]) & set(compose["services"][app]["networks"])


def test_compose_prometheus_scrapes_every_replica_of_the_four_apps_with_the_token(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    prometheus = services["prometheus"]
    config = yaml.safe_load(_host_path(prometheus, "/etc/prometheus/prometheus.yml").read_text())

    # The token: a compose secret made from METRICS_TOKEN, readable by Prometheus' user.
    (secret,) = prometheus["secrets"]
    assert compose["secrets"][secret["source"]] == {"environment": "METRICS_TOKEN"}
    target = secret.get("target", secret["source"])
    token_file = target if target.startswith("/") else f"/run/secrets/{target}"
    assert secret["mode"] & 0o004

    (job,) = [j for j in config["scrape_configs"] if j.get("dns_sd_configs")]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["authorization"] == {"type": "Bearer", "credentials_file": token_file}
    # Docker's DNS answers a service name with every replica's address.
    (discovery,) = job["dns_sd_configs"]
    assert discovery["type"] == "A"
    assert set(discovery["names"]) == {"gateway", *APPS}
    for name in discovery["names"]:
        assert set(prometheus["networks"]) & set(services[name]["networks"]), name
        assert f":{discovery['port']}/" in " ".join(services[name]["healthcheck"]["test"])

    rules = {rule["target_label"]: rule for rule in job["relabel_configs"]}
    instance = rules["instance"]
    assert instance["source_labels"] == ["__address__"]
    assert instance.get("regex", "(.*)") == "(.*)"
    assert instance.get("replacement", "$1") == "$1"
    app_job = rules["job"]
    assert app_job["source_labels"] == ["__meta_dns_name"]
    replacement = re.sub(r"\$\{?(\d+)\}?", r"\\\1", app_job.get("replacement", "$1"))
    for name, expected in {
        "gateway": "gateway",
        "inventory-service": "inventory",
        "sales-service": "sales",
        "delivery-service": "delivery",
    }.items():
        match = re.fullmatch(app_job["regex"], name)  # Prometheus anchors its regexes
        assert match, name
        assert match.expand(replacement) == expected


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for panel in panels:
        if panel["type"] != "row":
            found.append(panel)
        found.extend(_panels(panel.get("panels", [])))
    return found


def _metric_names(expr: str) -> set[str]:
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges ($__rate_interval...)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    words = re.findall(r"(?<![\w:$.])[a-zA-Z_:][\w:]*(?![\w:]|\s*\()", expr)  # not functions
    return set(words) - {"and", "or", "unless", "bool", "offset", "group_left", "group_right"}


def test_dashboard_names_only_the_metrics_the_apps_serve() -> None:
    assert _metric_names(
        'histogram_quantile(0.99, sum by (job, le) (rate(a_bucket{s=~"5.."}[$__rate_interval])))'
        " / on (job) group_left sum(b)"
    ) == {"a_bucket", "b"}
    served = METRICS | {
        f"{h}_{suffix}" for h in HISTOGRAMS for suffix in ("bucket", "sum", "count")
    }
    panels = _panels(json.loads(DASHBOARD.read_text())["panels"])
    assert panels
    used: set[str] = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = _metric_names(target["expr"])
            assert names, target["expr"]
            assert names <= served, f"{panel['title']}: {sorted(names - served)}"
            used |= names
    # Every metric the apps promise is on the dashboard somewhere.
    assert {re.sub(r"_(bucket|sum|count)$", "", n) for n in used} == METRICS


def test_compose_grafana_provisions_the_data_sources_and_the_dashboard(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    grafana = services["grafana"]
    provisioning = _host_path(grafana, "/etc/grafana/provisioning")

    sources = {
        source["type"]: source
        for path in sorted((provisioning / "datasources").glob("*.yml"))
        for source in yaml.safe_load(path.read_text())["datasources"]
    }
    assert sources["prometheus"]["url"] == "http://prometheus:9090"
    assert sources["jaeger"]["url"] == "http://jaeger:16686"
    for name in ("prometheus", "jaeger"):
        assert set(grafana["networks"]) & set(services[name]["networks"]), name

    providers = [
        provider
        for path in sorted((provisioning / "dashboards").glob("*.yml"))
        for provider in yaml.safe_load(path.read_text())["providers"]
    ]
    provided = {
        found
        for provider in providers
        for found in _host_path(grafana, provider["options"]["path"]).glob("*.json")
    }
    assert DASHBOARD in provided
    # Every panel asks the provisioned Prometheus.
    for panel in _panels(json.loads(DASHBOARD.read_text())["panels"]):
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == sources["prometheus"]["uid"], panel["title"]

    environment = grafana["environment"]
    assert environment["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-}"
    assert environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
