"""The identity provider's signing keys, fetched from its JWKS URL and cached.

Keys are fetched on first use and again after `cache_seconds`. A token whose
`kid` is not among the cached keys triggers one more fetch, so a key rotation
at the provider works without a restart. Such fetches are spaced at least
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

from ..config import IDENTITY_PROVIDER_ALGORITHMS, redact_url
from .errors import AuthenticationError, KeysUnavailable

log = structlog.get_logger("csdp.security")

# A JWKS document contains a handful of keys, so a response this large is not one.
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
        self.shown_url = redact_url(url, hide_bare_user=True)
        self._cache_seconds = cache_seconds
        self._min_refresh_seconds = min_refresh_seconds
        self._timeout = timeout
        self._clock = clock
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at = float("-inf")
        self._last_error: str | None = None
        self._background: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key(self, kid: str | None) -> jwt.PyJWK:
        """Return the key with this `kid`; without a `kid`, the provider's only key."""
        now = self._clock()
        if self._fetched_at is None or now - self._fetched_at >= self._cache_seconds:
            if self._keys:
                # Serve with the cached keys while a background task fetches new ones, so a
                # slow provider delays no request. A retired key works until that fetch ends.
                self._refresh_in_background(now)
            else:
                await self._refresh(stale_after=now)
        found = self._find(kid)
        if found is None and self._keys and self._clock() - self._attempted_at >= self._min_refresh_seconds:
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

    def _refresh_in_background(self, stale_after: float) -> None:
        if self._background is not None and not self._background.done():
            return

        async def refresh() -> None:
            try:
                await self._refresh(stale_after=stale_after)
            except KeysUnavailable:
                pass  # _refresh logged it, and the cached keys stay in use

        self._background = asyncio.create_task(refresh(), name="jwks-refresh")

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _refresh(self, *, stale_after: float) -> None:
        """Fetch the keys unless another request did since `stale_after`.

        After a failed fetch the next one waits `min_refresh_seconds`, and
        requests meanwhile use the cached keys or fail at once, so an outage
        at the provider does not queue every request behind a fetch.
        """
        async with self._lock:
            if self._attempted_at >= stale_after:
                if not self._keys and self._last_error is not None:
                    raise KeysUnavailable(self._last_error)
                return  # another request fetched while this one waited for the lock
            if not self._keys and self._last_error is not None and self._clock() - self._attempted_at < self._min_refresh_seconds:
                raise KeysUnavailable(self._last_error)
            try:
                keys = await asyncio.wait_for(self._fetch(), self._timeout)
            except (KeysUnavailable, asyncio.TimeoutError) as exc:
                self._attempted_at = self._clock()
                self._last_error = str(exc) or f"fetching {self.shown_url} timed out after {self._timeout:g} s"
                log.warning(
                    "jwks_refresh_failed", url=self.shown_url, error=self._last_error, cached_keys=len(self._keys)
                )
                if not self._keys:
                    raise KeysUnavailable(self._last_error) from None
                # Keep serving with the keys already known; try again after the cache lifetime.
                self._fetched_at = self._attempted_at
                return
            self._keys = keys
            self._fetched_at = self._attempted_at = self._clock()
            self._last_error = None
            log.info("jwks_fetched", url=self.shown_url, key_ids=[kid for kid in keys if kid is not None])

    async def _fetch(self) -> dict[str | None, jwt.PyJWK]:
        self.fetches += 1
        url = self.shown_url
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.get(self.url, headers={"Accept": "application/json"})
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise KeysUnavailable(f"fetching {url} failed: {exc.__class__.__name__}") from exc
        if response.status_code != 200:
            raise KeysUnavailable(f"fetching {url} returned HTTP {response.status_code}")
        if len(response.content) > MAX_JWKS_BYTES:
            raise KeysUnavailable(f"{url} returned {len(response.content)} bytes, more than the limit of {MAX_JWKS_BYTES} for a JWKS document")
        try:
            document = response.json()
        except ValueError as exc:
            raise KeysUnavailable(f"{url} did not return JSON: {exc}") from exc
        return _signing_keys(document, url)


def _signing_keys(document: object, url: str) -> dict[str | None, jwt.PyJWK]:
    """Parse the usable signing keys of a JWKS document, skipping keys that cannot verify tokens here.

    A key is skipped when pyjwt cannot load it, when its `use` or `key_ops`
    do not allow verifying signatures, or when its algorithm is not an asymmetric one (an `oct`
    key or `alg: none` must never verify a provider token).
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeysUnavailable(f"{url} did not return a JWKS document: expected an object with a keys list")
    keys: dict[str | None, jwt.PyJWK] = {}
    skipped = 0
    for entry in document["keys"]:
        try:
            key = jwt.PyJWK(entry)
        except Exception:  # noqa: BLE001 - pyjwt raises several types for malformed or unsupported keys
            skipped += 1
            continue
        operations = entry.get("key_ops") if isinstance(entry, dict) else None
        if (
            key.public_key_use not in (None, "sig")
            or (operations is not None and (not isinstance(operations, list) or "verify" not in operations))
            or key.algorithm_name not in IDENTITY_PROVIDER_ALGORITHMS
        ):
            skipped += 1
            continue
        keys[key.key_id] = key
    if skipped:
        log.warning("jwks_keys_skipped", url=url, skipped=skipped, usable=len(keys))
    if not keys:
        raise KeysUnavailable(f"{url} publishes no usable signing key")
    return keys
