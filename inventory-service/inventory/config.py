from functools import lru_cache

from bookstore_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    # How long stock stays set aside for an order that is not yet paid and scheduled.
    reservation_lease_seconds: float = 900.0
    reservation_sweep_seconds: float = 1.0


@lru_cache
def get_settings() -> Settings:
    return Settings()
