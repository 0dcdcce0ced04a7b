from functools import lru_cache

from bookstore_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    # A saga step with no answer after this long is sent again, then compensated.
    saga_step_timeout_seconds: float = 30.0
    saga_step_max_attempts: int = 3
    saga_sweep_seconds: float = 1.0
    # The longest `Prefer: wait=N` honoured on POST /orders.
    order_wait_max_seconds: float = 30.0


@lru_cache
def get_settings() -> Settings:
    return Settings()
