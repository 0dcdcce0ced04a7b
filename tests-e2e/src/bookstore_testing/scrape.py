"""A /metrics page (Prometheus text format) read into numbers a test can compare."""

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(client: httpx.AsyncClient, url: str = "/metrics", **kwargs: object) -> Samples:
    reply = await client.get(url, **kwargs)  # type: ignore[arg-type]
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain"), reply.headers
    return parse(reply.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample with exactly these labels (0 when it was never counted)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}
