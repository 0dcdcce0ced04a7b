"""Settings base: every app reads its configuration from the environment (or `.env`)."""

from typing import Literal, Self

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_IDENTITY_SECRET = "dev-only-identity-secret-do-not-deploy"  # noqa: S105 - refused when ENVIRONMENT=production


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/bookstore"
    # The Postgres budget: each process holds at most db_pool_size + db_max_overflow
    # connections (and sales one more for LISTEN). The defaults keep one replica of every app
    # within 40, so two replicas of each fit in Postgres' default max_connections of 100.
    # Connections are opened as needed and then kept: an overflow connection is closed when
    # it comes back, so under a steady load overflow means a new backend every few requests.
    db_pool_size: int = 8
    db_max_overflow: int = 0
    # A request or message waits this long for a pooled connection, then gets a 503.
    db_pool_timeout_seconds: float = 5.0
    # Server-side limits on every statement and every lock wait (milliseconds).
    db_statement_timeout_ms: int = 15_000
    db_lock_timeout_ms: int = 5_000
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # Prefix of every exchange and queue name, so two deployments (or two test runs)
    # can share one broker without seeing each other's messages.
    broker_namespace: str = "bookstore"
    # Shared by the gateway (signs) and the apps (verify) for the identity assertion.
    identity_secret: SecretStr = SecretStr(DEV_IDENTITY_SECRET)
    identity_ttl_seconds: int = 30
    # How long an idle HTTP connection is kept open. Apps keep it this long; the gateway drops
    # its idle connections to them after a third of it, so it never reuses one an app is
    # closing.
    http_keepalive_seconds: float = 30.0
    # The longest `Prefer: wait=N` (RFC 7240) honoured; the gateway waits that much longer.
    order_wait_max_seconds: float = 30.0
    # Retention: history older than this is deleted, a bounded batch at a time.
    retention_sweep_seconds: float = 300.0
    retention_inbox_days: float = 7.0
    retention_outbox_days: float = 1.0
    log_level: str = "INFO"
    log_json: bool = True
    # GET /metrics asks for this as a bearer token when set (Prometheus' `authorization`).
    metrics_token: SecretStr | None = None

    @model_validator(mode="after")
    def _no_dev_secrets_in_production(self) -> Self:
        if (
            self.environment == "production"
            and self.identity_secret.get_secret_value() == DEV_IDENTITY_SECRET
        ):
            raise ValueError("IDENTITY_SECRET must be set to a real secret in production")
        return self
