from functools import lru_cache

from bookstore_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    # ISO 3166-1 alpha-2 codes of the countries we deliver to, comma-separated.
    delivery_countries: str = "GB,IE,FR,DE,NL,BE,ES,IT,US,CA"

    @property
    def served_countries(self) -> frozenset[str]:
        return frozenset(c.strip().upper() for c in self.delivery_countries.split(",") if c.strip())


@lru_cache
def get_settings() -> Settings:
    return Settings()
