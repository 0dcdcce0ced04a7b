from functools import lru_cache
from typing import Self

from pydantic import SecretStr, field_validator, model_validator

from bookstore_shared.settings import ServiceSettings

DEV_JWT_SECRET = "dev-only-jwt-secret-do-not-deploy-0123456789"  # noqa: S105 - refused when ENVIRONMENT=production


class Settings(ServiceSettings):
    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_issuer: str = "bookstore"
    jwt_audience: str = "bookstore-api"
    access_token_minutes: int = 15
    refresh_token_days: int = 14
    # Expired refresh tokens are deleted this long after they expire.
    retention_refresh_tokens_days: float = 1.0
    # How long a checked session, account or API key is trusted before it is checked again:
    # deactivation, role changes, logout and key revocation take effect within this time.
    auth_cache_seconds: float = 5.0
    # Rate limits (https://limits.readthedocs.io/ notation), shared by every gateway replica
    # through Redis when REDIS_URL is set, per process otherwise.
    redis_url: str | None = None
    rate_limit_per_principal: str = "600/minute"
    rate_limit_per_ip: str = "1200/minute"
    login_failures_per_account: str = "10/minute"
    login_failures_per_ip: str = "10/minute"
    max_body_bytes: int = 1_048_576
    # POST /api/books/import takes a catalog file of up to 5 MiB.
    import_max_body_bytes: int = 5 * 1024 * 1024
    # The circuit breaker per app: open after this many failures in a row, retry after ttl.
    breaker_threshold: int = 5
    breaker_ttl_seconds: float = 10.0
    # Re-resolve an app's host name this often, so replicas added by --scale are found.
    upstream_dns_seconds: float = 5.0
    # Comma-separated base URLs; several URLs are several replicas of one app.
    inventory_url: str = "http://127.0.0.1:8001"
    sales_url: str = "http://127.0.0.1:8002"
    delivery_url: str = "http://127.0.0.1:8003"
    # Connecting (including the wait for a free pooled connection), and each read of an
    # answer; a request with `Prefer: wait=N` may read N seconds longer.
    upstream_connect_timeout: float = 2.0
    upstream_read_timeout: float = 10.0
    upstream_max_connections: int = 500
    openapi_cache_seconds: float = 60.0
    # Concurrent argon2 hashes; each takes ~19 MiB, so a login flood cannot exhaust memory.
    password_hash_concurrency: int = 4
    demo_password: SecretStr = SecretStr("bookstore-demo")
    # The first admin of a stack without demo data: created, or promoted, at start-up.
    admin_email: str | None = None
    admin_password: SecretStr | None = None

    @field_validator("admin_email", "admin_password", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value  # compose passes ADMIN_EMAIL= when it is not set

    @model_validator(mode="after")
    def _no_dev_jwt_secret_in_production(self) -> Self:
        if (
            self.environment == "production"
            and self.jwt_secret.get_secret_value() == DEV_JWT_SECRET
        ):
            raise ValueError("JWT_SECRET must be set to a real secret in production")
        if (self.admin_email is None) != (self.admin_password is None):
            raise ValueError("ADMIN_EMAIL and ADMIN_PASSWORD go together: set both or neither")
        if self.admin_password is not None and len(self.admin_password.get_secret_value()) < 8:
            raise ValueError("ADMIN_PASSWORD must be at least 8 characters")
        return self

    def upstream_urls(self) -> dict[str, list[str]]:
        return {
            app: [u.strip().rstrip("/") for u in urls.split(",") if u.strip()]
            for app, urls in (
                ("inventory", self.inventory_url),
                ("sales", self.sales_url),
                ("delivery", self.delivery_url),
            )
        }


@lru_cache
def get_settings() -> Settings:
    return Settings()
