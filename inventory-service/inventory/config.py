from functools import lru_cache
from typing import Literal

from pydantic import SecretStr

from bookstore_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    # How long stock stays set aside for an order that is not yet paid and scheduled.
    reservation_lease_seconds: float = 900.0
    reservation_sweep_seconds: float = 1.0
    # Book summaries: `local` (extractive, in-process, no network) or `openai` (any
    # OpenAI-compatible chat-completions endpoint under SUMMARY_API_URL).
    summary_provider: Literal["local", "openai"] = "local"
    summary_api_url: str = "https://api.openai.com/v1"
    summary_api_key: SecretStr | None = None
    summary_model: str = "gpt-4o-mini"
    # Each try's limit, tries after the first (timeouts, 429 and 5xx), and the breaker: after
    # this many failed summaries in a row the provider is not asked for breaker_ttl seconds.
    summary_timeout_seconds: float = 10.0
    summary_retries: int = 2
    summary_breaker_threshold: int = 3
    summary_breaker_ttl_seconds: float = 30.0


@lru_cache
def get_settings() -> Settings:
    return Settings()
