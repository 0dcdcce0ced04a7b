"""A short shared cache for public answers (RFC 9111): an app's answer to a GET marked
`Cache-Control: public, max-age=N` is kept N seconds and given to every caller who would get
the same answer, that is anyone but staff (the apps mark only such answers public). It
honours `If-None-Match` against the kept `ETag`. Catalog reads are what it is for: a book
page read a thousand times a second reaches inventory about once a second.
"""

import re
import time
from dataclasses import dataclass

from cachetools import TLRUCache
from starlette.responses import Response

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age=(\d+)")


def public_max_age(cache_control: str | None) -> int:
    """Seconds a shared cache may keep the answer; 0 if it may not keep it at all."""
    if not cache_control:
        return 0
    directives = {d.strip().split("=", 1)[0].lower() for d in cache_control.split(",")}
    if "public" not in directives or directives & {"private", "no-store", "no-cache"}:
        return 0
    match = _MAX_AGE.search(cache_control.lower())
    return int(match.group(1)) if match else 0


@dataclass(frozen=True)
class Kept:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    etag: str | None
    stored_at: float
    expires: float

    def response(self, if_none_match: str | None) -> Response:
        """The kept answer, or a 304 if the client holds it already."""
        age = str(int(time.monotonic() - self.stored_at))
        if self.etag and if_none_match and self.etag in _etags(if_none_match):
            response = Response(status_code=304)
            response.raw_headers = [
                (k, v) for k, v in self.headers if k in (b"etag", b"cache-control")
            ]
        else:
            response = Response(self.body, status_code=self.status)
            response.raw_headers = list(self.headers)
        response.raw_headers.append((b"age", age.encode()))
        return response


def _etags(if_none_match: str) -> set[str]:
    return {tag.strip() for tag in if_none_match.split(",")}


class PublicCache:
    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: TLRUCache[str, Kept] = TLRUCache(
            maxsize=max_entries, ttu=lambda _key, kept, _now: kept.expires, timer=time.monotonic
        )

    def get(self, key: str) -> Kept | None:
        return self._entries.get(key)

    def keep(
        self, key: str, *, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Kept | None:
        """Keep an answer its headers allow a shared cache to keep; the kept entry, if so."""
        named = dict(headers)
        max_age = public_max_age(named.get(b"cache-control", b"").decode("latin-1"))
        if status != 200 or max_age <= 0:
            return None
        etag = named.get(b"etag")
        now = time.monotonic()
        kept = Kept(
            status=status,
            headers=headers,
            body=body,
            etag=etag.decode("latin-1") if etag else None,
            stored_at=now,
            expires=now + max_age,
        )
        self._entries[key] = kept
        return kept
