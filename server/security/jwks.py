"""The identity provider's signing keys, fetched from its JWKS URL and cached.

Keys are fetched on first use and again after `cache_seconds`. A token whose
`kid` is not among the cached keys triggers one more fetch, so a key rotation
at the provider works without a restart; such fetches are spaced at least
`min_refresh_seconds` apart, so tokens with made-up key ids cannot turn the
server into a load generator against the provider.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import jwt
import structlog

from .errors import AuthenticationError, KeysUnavailable

log = structlog.get_logger("csdp.security")

# A JWKS document holds a handful of keys; anything this large is not one.
MAX_JWKS_BYTES = 1024 * 1024


class JwksCache:
    """Looks up signing keys by `kid`, fetching the JWKS document when needed."""

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float,
        min_refresh_seconds: float,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._cache_seconds = cache_seconds
        self._min_refresh_seconds = min_refresh_seconds
        self._timeout = timeout
        self._clock = clock
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key(self, kid: str | None) -> jwt.PyJWK:
        """Return the key with this `kid`; without a `kid`, the provider's only key."""
        now = self._clock()
        if self._fetched_at is None or now - self._fetched_at >= self._cache_seconds:
            await self._refresh(stale_after=now)
        found = self._find(kid)
        if found is None and self._fetched_at is not None and self._clock() - self._fetched_at >= self._min_refresh_seconds:
            # An unknown kid may be a key the provider rotated in since the last fetch.
            await self._refresh(stale_after=self._clock())
            found = self._find(kid)
        if found is None:
            if kid is None:
                raise AuthenticationError(
                    "unknown_key", "invalid token: it names no kid and the identity provider publishes several keys"
                )
            raise AuthenticationError("unknown_key", f"invalid token: no key with kid {kid[:64]!r} is published by the identity provider")
        return found

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _refresh(self, *, stale_after: float) -> None:
        async with self._lock:
            if self._fetched_at is not None and self._fetched_at >= stale_after:
                return  # another request fetched while this one waited for the lock
            try:
                keys = await self._fetch()
            except KeysUnavailable as exc:
                if not self._keys:
                    raise
                # Keep serving with the keys already known; try again after the refresh interval.
                log.warning("jwks_refresh_failed", url=self.url, error=str(exc), cached_keys=len(self._keys))
                self._fetched_at = self._clock()
                return
            self._keys = keys
            self._fetched_at = self._clock()
            log.info("jwks_fetched", url=self.url, key_ids=[kid for kid in keys if kid is not None])

    async def _fetch(self) -> dict[str | None, jwt.PyJWK]:
        self.fetches += 1
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.get(self.url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise KeysUnavailable(f"fetching {self.url} failed: {exc.__class__.__name__}") from exc
        if response.status_code != 200:
            raise KeysUnavailable(f"fetching {self.url} returned HTTP {response.status_code}")
        if len(response.content) > MAX_JWKS_BYTES:
            raise KeysUnavailable(f"{self.url} returned {len(response.content)} bytes, more than a JWKS document holds")
        try:
            document = response.json()
            key_set = jwt.PyJWKSet.from_dict(document)
        except (ValueError, jwt.PyJWTError) as exc:
            raise KeysUnavailable(f"{self.url} did not return a usable JWKS document: {exc}") from exc
        return {key.key_id: key for key in key_set.keys if key.public_key_use in (None, "sig")}
