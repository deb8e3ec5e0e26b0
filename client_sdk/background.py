"""Background sync: a thread that calls `SyncClient.sync()` when there is reason to.

A sync runs when the interval timer fires, soon after the app records an
event, and when the app reports that the network is back. After a failed
sync the loop waits with exponential backoff and equal jitter (half the
delay fixed, half random), so a device that stays offline makes a bounded
number of attempts and records made meanwhile do not cause extra ones.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from .client import SyncClient
from .errors import SyncError, UpgradeRequired
from .store import OutboxEntry

log = logging.getLogger("client_sdk")


class SyncLoop:
    """Runs `client.sync()` on a daemon thread between `start()` and `stop()`.

    `interval` is the time between syncs while they succeed, in seconds.
    `initial_backoff` and `max_backoff` bound the wait after failures, in
    seconds. `record_delay` batches a burst of records into one sync. The
    client's own retries run inside each sync, so a loop usually pairs with
    a client built with a small `max_attempts`.
    """

    def __init__(
        self,
        client: SyncClient,
        *,
        interval: float = 60.0,
        initial_backoff: float = 1.0,
        max_backoff: float = 300.0,
        record_delay: float = 0.5,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        for name, value in (("interval", interval), ("initial_backoff", initial_backoff), ("max_backoff", max_backoff)):
            if value <= 0:
                raise ValueError(f"{name} must be more than 0 seconds, got {value}")
        if record_delay < 0:
            raise ValueError(f"record_delay must be 0 seconds or more, got {record_delay}")
        if max_backoff < initial_backoff:
            raise ValueError(f"max_backoff ({max_backoff} s) must not be less than initial_backoff ({initial_backoff} s)")
        self.client = client
        self.interval = interval
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.record_delay = record_delay
        self._jitter = jitter
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._online = True
        self._next_attempt = 0.0
        self.attempts = 0
        self.last_exception: BaseException | None = None
        client.on_record(self._on_record)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread; the first sync runs at once. Raises RuntimeError when already running."""
        if self.running:
            raise RuntimeError("the sync loop is already running; call stop() first")
        self._stopping.clear()
        self._wake.clear()
        with self._lock:
            self._next_attempt = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"csdp-sync-{self.client.device_id}", daemon=True)
        self._thread.start()
        log.info("sync loop started (device_id=%s, interval=%s s)", self.client.device_id, self.interval)

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the thread after the sync in progress, if any; return False when it did not end within `timeout` s."""
        thread = self._thread
        if thread is None:
            return True
        self._stopping.set()
        self._wake.set()
        thread.join(timeout)
        stopped = not thread.is_alive()
        if stopped:
            self._thread = None
            log.info("sync loop stopped (device_id=%s, attempts=%d)", self.client.device_id, self.attempts)
        else:
            log.warning("sync loop did not stop within %s s (device_id=%s)", timeout, self.client.device_id)
        return stopped

    def trigger(self) -> None:
        """Ask for a sync now, unless the loop is waiting out a backoff or the network is down."""
        with self._lock:
            if self._failures or not self._online:
                return
            self._next_attempt = min(self._next_attempt, time.monotonic())
        self._wake.set()

    def connectivity_changed(self, online: bool) -> None:
        """Tell the loop that the network went down or came back; coming back syncs at once and resets the backoff."""
        with self._lock:
            was_online = self._online
            self._online = online
            if online and not was_online:
                self._failures = 0
                self._next_attempt = time.monotonic()
        log.info("connectivity %s (device_id=%s)", "regained" if online else "lost", self.client.device_id)
        self._wake.set()

    def _on_record(self, entry: OutboxEntry) -> None:
        if not self.running:
            return
        with self._lock:
            if self._failures or not self._online:
                return
            self._next_attempt = min(self._next_attempt, time.monotonic() + self.record_delay)
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                due = self._next_attempt if self._online else time.monotonic() + self.max_backoff
                wait = due - time.monotonic()
            if wait > 0:
                self._wake.wait(wait)
                self._wake.clear()
                continue
            self._attempt()

    def _attempt(self) -> None:
        self.attempts += 1
        try:
            self.client.sync()
        except UpgradeRequired as exc:
            self.last_exception = exc
            # Nothing can change until the app is updated, so try rarely.
            self._schedule(self.max_backoff, failed=True)
        except SyncError as exc:
            self.last_exception = exc
            self._schedule(self._backoff(), failed=True)
        except Exception as exc:  # noqa: BLE001 - the loop must survive any failure of one sync
            self.last_exception = exc
            log.exception("sync loop caught an unexpected error (device_id=%s)", self.client.device_id)
            self._schedule(self._backoff(), failed=True)
        else:
            self.last_exception = None
            self._schedule(self.interval, failed=False)

    def _backoff(self) -> float:
        with self._lock:
            failures = self._failures + 1
        delay = min(self.max_backoff, self.initial_backoff * 2 ** (failures - 1))
        return delay / 2 + self._jitter(0, delay / 2)

    def _schedule(self, delay: float, *, failed: bool) -> None:
        with self._lock:
            self._failures = self._failures + 1 if failed else 0
            self._next_attempt = time.monotonic() + delay
        if failed:
            log.info(
                "sync loop retries in %.2f s after %d failures (device_id=%s): %s",
                delay,
                self._failures,
                self.client.device_id,
                self.last_exception,
            )
