"""Who is calling: an API key names a partner council, no key is the public; rate limits per caller.

A key is sent as ``Authorization: Bearer cpk_<id>_<secret>`` (or ``X-API-Key``). Its argon2
check is done once per process and key (argon2 is slow on purpose); whether the key is still
active is asked of the database on every request, so a revocation refuses the next request.
A refusal says why in one line and nothing about what exists: an unknown, wrong or revoked
key all get the same 401.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Final

from fastapi import HTTPException, Request
from psycopg_pool import AsyncConnectionPool

from api.reader import PUBLIC_CALLER, Caller
from storage.registry_store import verify_secret
from storage.sharing_store import split_key

INVALID_KEY: Final = "invalid or revoked API key (ask the council that issued it for a new one)"
PUBLIC_RATE_PER_MINUTE: Final = 600


@dataclass(slots=True)
class _Bucket:
    """A token bucket: ``rate`` tokens a minute, at most ``rate`` held."""

    rate: int
    tokens: float
    at: float

    def take(self, now: float) -> float:
        """0 if a request may go now, else the seconds until one may."""
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate / 60.0)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) * 60.0 / self.rate


@dataclass(slots=True)
class Access:
    """Callers from request headers, with per-key (or per-address) rate limits."""

    pool: AsyncConnectionPool[Any]
    public_rate: int = PUBLIC_RATE_PER_MINUTE
    _verified: dict[str, int] = field(default_factory=dict)  # sha256(key) → key id
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    async def caller(self, request: Request) -> Caller:
        key = _key_of(request)
        if key is None:
            self._limit(f"ip:{request.client.host if request.client else '?'}", self.public_rate)
            return PUBLIC_CALLER
        parts = split_key(key)
        if parts is None:
            raise _refused()
        key_id, secret = parts
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT council, rate_per_minute, secret_hash FROM api_keys"
                " WHERE id = %s AND revoked_at IS NULL",
                (key_id,),
            )
            row = await cur.fetchone()
        if row is None:
            raise _refused()
        council, rate, secret_hash = row
        digest = hashlib.sha256(key.encode()).hexdigest()
        if self._verified.get(digest) != key_id:
            if not await asyncio.to_thread(verify_secret, secret_hash, secret):
                raise _refused()
            self._verified[digest] = key_id
        self._limit(f"key:{key_id}", rate)
        return Caller(council=council, key_id=key_id)

    def _limit(self, who: str, rate: int) -> None:
        now = time.monotonic()
        bucket = self._buckets.get(who)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[who] = _Bucket(rate, float(rate), now)
        wait = bucket.take(now)
        if wait > 0:
            raise HTTPException(
                status_code=429,
                detail=f"rate limit of {rate} requests a minute reached; retry in"
                f" {math.ceil(wait)} s",
                headers={"Retry-After": str(math.ceil(wait))},
            )


def _key_of(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return request.headers.get("x-api-key") or None


def _refused() -> HTTPException:
    return HTTPException(
        status_code=401, detail=INVALID_KEY, headers={"WWW-Authenticate": "Bearer"}
    )


async def current_caller(request: Request) -> Caller:
    """FastAPI dependency: the caller of this request (public when the app has no Access)."""
    access: Access | None = getattr(request.app.state, "access", None)
    if access is None:
        return PUBLIC_CALLER
    return await access.caller(request)
