from dataclasses import dataclass
from functools import lru_cache
from typing import Self
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr, field_validator, model_validator

from bookstore_shared.settings import ServiceSettings

DEV_JWT_SECRET = "dev-only-jwt-secret-do-not-deploy-0123456789"  # noqa: S105 - refused when ENVIRONMENT=production
# SMTP_URL's schemes: plain (a local sink), STARTTLS required, TLS from the first byte.
SMTP_SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class SmtpServer:
    """Where mail goes, read from SMTP_URL."""

    hostname: str
    port: int
    use_tls: bool
    start_tls: bool
    username: str | None
    password: str | None


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
    # Password reset mails asked for, per address and per client IP (found or not).
    password_reset_per_address: str = "3/hour"  # noqa: S105 - a rate, not a password
    password_reset_per_ip: str = "20/hour"  # noqa: S105 - a rate, not a password
    password_reset_minutes: int = 30
    # Expired password reset tokens are deleted this long after they expire.
    retention_password_resets_days: float = 1.0
    # Mail: smtp://host:1025 (plain), smtp+starttls://user:pass@host:587, smtps://host:465.
    # Unset: nothing can be mailed (a password reset is answered, and no mail goes).
    smtp_url: SecretStr | None = None
    smtp_timeout_seconds: float = 10.0
    mail_from: str = "Bookstore <no-reply@bookstore.local>"
    # Where clients reach the API, for the instructions in mails.
    public_url: str = DEFAULT_PUBLIC_URL
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

    @field_validator("admin_email", "admin_password", "smtp_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value  # compose passes ADMIN_EMAIL= when it is not set

    @field_validator("public_url", mode="before")
    @classmethod
    def _empty_public_url_is_the_default(cls, value: object) -> object:
        return DEFAULT_PUBLIC_URL if value == "" else value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_is_readable(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parts = urlsplit(value.get_secret_value())
            if parts.scheme not in SMTP_SCHEMES or not parts.hostname:
                # The URL may hold a password: it is not repeated in the error.
                raise ValueError(
                    "use smtp://host:port, smtp+starttls://user:password@host:port "
                    "or smtps://host:port"
                )
            try:
                parts.port  # noqa: B018 - raises on a port that is not a number
            except ValueError as exc:
                raise ValueError("the port is not a number") from exc
        return value

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

    def smtp_server(self) -> SmtpServer | None:
        if self.smtp_url is None:
            return None
        parts = urlsplit(self.smtp_url.get_secret_value())
        assert parts.hostname is not None
        return SmtpServer(
            hostname=parts.hostname,
            port=parts.port or SMTP_SCHEMES[parts.scheme],
            use_tls=parts.scheme == "smtps",
            start_tls=parts.scheme == "smtp+starttls",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

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
