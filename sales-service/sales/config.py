from functools import lru_cache

from bookstore_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    pass


@lru_cache
def get_settings() -> Settings:
    return Settings()
