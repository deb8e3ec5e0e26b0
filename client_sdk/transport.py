"""HTTP calls to the sync server, retried with tenacity.

Connection errors, timeouts, 5xx and 429 are retried with exponential backoff
and full jitter; a `Retry-After` header from the server sets the wait
instead. Any other 4xx is final and raised at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import msgspec
import tenacity

from shared_schema import ChangesPage, DecisionBatch, EventBatch

from shared_schema.protocol import CURSOR_HEADER, EPOCH_HEADER, PROTOCOL_HEADER, SDK_HEADER

from . import version
from .errors import RequestRejected, ServerUnreachable, SyncError

log = logging.getLogger("client_sdk")

TokenProvider = Callable[[], str]
T = TypeVar("T")

_decode_decisions = msgspec.json.Decoder(DecisionBatch).decode
_decode_changes = msgspec.json.Decoder(ChangesPage).decode


class TransientResponse(Exception):
    """A 5xx or 429 response worth retrying."""

    def __init__(self, status_code: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.retry_after = retry_after


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, (TransientResponse, httpx.TransportError))


class _RetryAfterOrBackoff(tenacity.wait.wait_base):
    def __init__(self, initial: float, maximum: float) -> None:
        self._backoff = tenacity.wait_random_exponential(multiplier=initial, max=maximum)
        self._maximum = maximum

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, TransientResponse) and exc.retry_after is not None:
            return min(exc.retry_after, self._maximum)
        return self._backoff(retry_state)


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None  # an HTTP date; plain backoff is close enough


class Transport:
    """Sends the SDK's requests, refreshing the token once on 401."""

    def __init__(
        self,
        base_url: str,
        token_provider: TokenProvider,
        *,
        http: httpx.Client | None = None,
        max_attempts: int = 5,
        initial_backoff: float = 0.2,
        max_backoff: float = 30.0,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        device_id: str | None = None,
        token_refresher: TokenProvider | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be 1 or more, got {max_attempts}")
        if initial_backoff < 0:
            raise ValueError(f"initial_backoff must be 0 seconds or more, got {initial_backoff}")
        if max_backoff < 0:
            raise ValueError(f"max_backoff must be 0 seconds or more, got {max_backoff}")
        self._base_url = _checked_base_url(base_url)
        self._http = http or httpx.Client(timeout=timeout)
        self._owns_http = http is None
        self._token_provider = token_provider
        # Called after a 401 for a new token; the provider itself when the app gives none.
        self._token_refresher = token_refresher or token_provider
        self._max_attempts = max_attempts
        self._wait = _RetryAfterOrBackoff(initial_backoff, max_backoff)
        self._sleep = sleep
        self._device_id = device_id

    @property
    def base_url(self) -> str:
        """The server's URL without a trailing slash."""
        return self._base_url

    @property
    def token_provider(self) -> TokenProvider:
        return self._token_provider

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def push(
        self, batch: EventBatch, correlation_id: str, cursor: str | None = None, epoch: str | None = None
    ) -> tuple[DecisionBatch, str | None]:
        """Send a batch; return the decisions and the server's log epoch (None from a server without one)."""
        body = msgspec.json.encode(batch)
        headers = _sync_headers(cursor=cursor, epoch=epoch)
        response = self._send("POST", "/v1/events", correlation_id, content=body, extra_headers=headers)
        return _decode_body(response, _decode_decisions), response.headers.get(EPOCH_HEADER)

    def pull(
        self, since: str, limit: int, correlation_id: str, epoch: str | None = None
    ) -> tuple[ChangesPage, str | None]:
        """Fetch one page of changes; return it and the server's log epoch (None from a server without one)."""
        response = self._send(
            "GET", "/v1/sync/changes", correlation_id, params={"since": since, "limit": limit},
            extra_headers=_sync_headers(epoch=epoch),
        )
        return _decode_body(response, _decode_changes), response.headers.get(EPOCH_HEADER)

    def send(self, method: str, path: str, correlation_id: str, **kwargs: Any) -> httpx.Response:
        """Send one request with the retries, token refresh and error classes of push and pull.

        `headers` in `kwargs` are added to the SDK's own and win over them.
        """
        return self._send(method, path, correlation_id, **kwargs)

    def _send(self, method: str, path: str, correlation_id: str, **kwargs: Any) -> httpx.Response:
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_is_transient),
            wait=self._wait,
            stop=tenacity.stop_after_attempt(self._max_attempts),
            sleep=self._sleep,
            before_sleep=lambda state: log.info(
                "retrying %s %s after %s (attempt %d, correlation_id=%s)",
                method,
                path,
                state.outcome.exception() if state.outcome else None,
                state.attempt_number,
                correlation_id,
            ),
            reraise=True,
        )
        try:
            return retrying(self._send_once, method, path, correlation_id, **kwargs)
        except (TransientResponse, httpx.TransportError) as exc:
            raise ServerUnreachable(f"{method} {path} failed after {self._max_attempts} attempts: {exc!r}") from exc

    def _send_once(self, method: str, path: str, correlation_id: str, **kwargs: Any) -> httpx.Response:
        response = self._request(method, path, correlation_id, self._token_provider(), **kwargs)
        if response.status_code == 401:
            # The token may have expired while offline: refresh it once and send again.
            log.info("token rejected with HTTP 401, refreshing it once (correlation_id=%s)", correlation_id)
            response = self._request(method, path, correlation_id, self._token_refresher(), **kwargs)
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientResponse(response.status_code, _retry_after(response))
        if response.status_code >= 400:
            try:
                body: object = response.json()
            except ValueError:
                body = response.text[:500]
            raise RequestRejected(response.status_code, body)
        log.debug("%s %s -> %d (correlation_id=%s)", method, path, response.status_code, correlation_id)
        return response

    def _request(
        self,
        method: str,
        path: str,
        correlation_id: str,
        token: str,
        extra_headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {token}",
            "X-Correlation-ID": correlation_id,
            PROTOCOL_HEADER: str(version.PROTOCOL_VERSION),
            SDK_HEADER: version.sdk_header_value(),
        }
        if self._device_id:
            # Lets the server's audit name the device even for a request it denies before reading the body.
            headers["X-Device-ID"] = self._device_id
        if extra_headers:
            headers.update(extra_headers)
        if "content" in kwargs:
            headers["Content-Type"] = "application/json"
        headers.update(kwargs.pop("headers", None) or {})
        # An absolute URL, so a caller's httpx.Client works with or without its own base_url.
        return self._http.request(method, self._base_url + path, headers=headers, **kwargs)


def _sync_headers(*, cursor: str | None = None, epoch: str | None = None) -> dict[str, str] | None:
    headers = {}
    if cursor is not None:
        headers[CURSOR_HEADER] = cursor
    if epoch:
        headers[EPOCH_HEADER] = epoch
    return headers or None


def _checked_base_url(base_url: str) -> str:
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"base_url {base_url!r} is invalid: {exc}") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url {base_url!r} is invalid: expected http://HOST[:PORT] or https://HOST[:PORT]")
    return str(url).rstrip("/")


def _decode_body(response: httpx.Response, decode: Callable[[bytes], T]) -> T:
    """Decode a 2xx body, raising SyncError when it is not the expected JSON (a proxy's HTML page, a truncated body)."""
    try:
        return decode(response.content)
    except msgspec.DecodeError as exc:
        content_type = response.headers.get("content-type", "no content type")
        raise SyncError(
            f"{response.request.method} {response.request.url.path} returned HTTP {response.status_code}"
            f" ({content_type}) with a body that is not a valid sync response: {exc}"
        ) from exc
