"""Rate limits per principal and per client IP, for failed sign-ins and for password reset mails
(the `limits` library)."""

import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.strategies import (
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.storage import storage_from_string

from bookstore_shared import metrics
from bookstore_shared.errors import DomainError
from bookstore_shared.identity import Principal
from gateway.config import Settings


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: int  # seconds until the window frees up a request

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_after),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(self.reset_after, 1))
        return headers


class TooManyRequests(DomainError):
    status, code, title = 429, "too_many_requests", "Too many requests"

    def __init__(self, detail: str, decision: Decision) -> None:
        super().__init__(detail)
        self.headers = decision.headers()


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        if settings.redis_url:
            uri = "async+" + settings.redis_url.removeprefix("async+")
            storage = storage_from_string(
                uri,
                key_prefix=f"{settings.broker_namespace}:ratelimit",
                implementation="coredis",
            )
        else:
            storage = storage_from_string("async+memory://")
        # Requests: a sliding window kept as two counters (the limits library's approximation,
        # which can let a request or two more through just after a window turns): constant cost
        # per request whatever the limit, where a moving window keeps every timestamp.
        self._limiter: RateLimiter = SlidingWindowCounterRateLimiter(storage)
        # Failed sign-ins and reset mails: an exact moving window. These limits are small and
        # guard against guessing, so "10 a minute" means 10 in any 60 seconds, never 11.
        self._exact: RateLimiter = MovingWindowRateLimiter(storage)
        self._per_principal = parse(settings.rate_limit_per_principal)
        self._per_ip = parse(settings.rate_limit_per_ip)
        self._failures_per_account = parse(settings.login_failures_per_account)
        self._failures_per_ip = parse(settings.login_failures_per_ip)
        self._resets_per_address = parse(settings.password_reset_per_address)
        self._resets_per_ip = parse(settings.password_reset_per_ip)

    @staticmethod
    async def _decide(limiter: RateLimiter, item: RateLimitItem, *key: str, hit: bool) -> Decision:
        allowed = await limiter.hit(item, *key) if hit else await limiter.test(item, *key)
        if not allowed:
            metrics.RATE_LIMIT_REJECTIONS.labels(key[0]).inc()
        stats = await limiter.get_window_stats(item, *key)
        return Decision(
            allowed=allowed,
            limit=item.amount,
            remaining=max(stats.remaining, 0),
            reset_after=max(int(stats.reset_time - time.time()) + 1, 0),
        )

    async def hit(self, principal: Principal, ip: str) -> Decision:
        """Count one request against the caller's limits; the tightest decision wins."""
        decisions = [await self._decide(self._limiter, self._per_ip, "ip", ip, hit=True)]
        if principal.user_id is not None:
            decisions.append(
                await self._decide(
                    self._limiter,
                    self._per_principal,
                    "principal",
                    str(principal.user_id),
                    hit=True,
                )
            )
        refused = [d for d in decisions if not d.allowed]
        return min(refused or decisions, key=lambda d: d.remaining)

    async def check_sign_in(self, email: str, ip: str) -> None:
        for item, key in (
            (self._failures_per_account, ("login-account", email.lower())),
            (self._failures_per_ip, ("login-ip", ip)),
        ):
            decision = await self._decide(self._exact, item, *key, hit=False)
            if not decision.allowed:
                raise TooManyRequests("Too many failed sign-ins; wait a minute.", decision)

    async def sign_in_failed(self, email: str, ip: str) -> None:
        await self._exact.hit(self._failures_per_account, "login-account", email.lower())
        await self._exact.hit(self._failures_per_ip, "login-ip", ip)

    async def hit_password_reset(self, email: str, ip: str) -> None:
        """Count a password reset asked for, whether the account exists or not (so a 429 tells
        nothing about it either); refused once the address or the IP is over its limit."""
        for item, key in (
            (self._resets_per_address, ("reset-address", email.lower())),
            (self._resets_per_ip, ("reset-ip", ip)),
        ):
            decision = await self._decide(self._exact, item, *key, hit=True)
            if not decision.allowed:
                raise TooManyRequests("Too many password resets asked for; try later.", decision)
