from functools import lru_cache

from bookstore_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    # A saga step with no answer after this long is sent again, then compensated.
    saga_step_timeout_seconds: float = 30.0
    saga_step_max_attempts: int = 3
    saga_sweep_seconds: float = 1.0
    # Retention: an Idempotency-Key replays its answer this long; the steps of a finished
    # saga stay on its timeline this long.
    retention_idempotency_hours: float = 24.0
    retention_saga_steps_days: float = 30.0
    # Live updates resume from the events kept this long (Last-Event-ID).
    retention_order_events_days: float = 7.0


@lru_cache
def get_settings() -> Settings:
    return Settings()
