"""Settings base: every app reads its configuration from the environment (or `.env`)."""

from typing import Literal, Self

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_IDENTITY_SECRET = "dev-only-identity-secret-do-not-deploy"  # noqa: S105 - refused when ENVIRONMENT=production


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/bookstore"
    db_pool_size: int = 20
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # Prefix of every exchange and queue name, so two deployments (or two test runs)
    # can share one broker without seeing each other's messages.
    broker_namespace: str = "bookstore"
    # Shared by the gateway (signs) and the apps (verify) for the identity assertion.
    identity_secret: SecretStr = SecretStr(DEV_IDENTITY_SECRET)
    identity_ttl_seconds: int = 30
    log_level: str = "INFO"
    log_json: bool = True

    @model_validator(mode="after")
    def _no_dev_secrets_in_production(self) -> Self:
        if (
            self.environment == "production"
            and self.identity_secret.get_secret_value() == DEV_IDENTITY_SECRET
        ):
            raise ValueError("IDENTITY_SECRET must be set to a real secret in production")
        return self
