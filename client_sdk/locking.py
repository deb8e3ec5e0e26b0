"""A lock shared by every process that syncs the same SQLite file.

Two processes that push the same pending batch at once would not apply it
twice, because the server deduplicates by client_event_id, but each would
send it and store the same decisions. The lock makes one sync run at a time
per file. It is an advisory `flock` on `<file>.sync-lock`, which the
operating system releases when the process dies, even by SIGKILL.

NOTE: `fcntl` exists on Linux, macOS and Android only. On other systems the
lock covers the threads of one process alone.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import TracebackType

from .errors import SyncError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class SyncLockTimeout(SyncError, TimeoutError):
    """Another thread or process kept the sync lock for longer than the wait allowed."""


class FileSyncLock:
    """Re-entrant within one object; exclusive between processes and between objects on the same file."""

    def __init__(self, database_path: Path, timeout: float = 60.0, poll_interval: float = 0.05) -> None:
        self.path = database_path.with_name(database_path.name + ".sync-lock")
        self.timeout = timeout
        self.poll_interval = poll_interval
        self._thread_lock = threading.Lock()
        self._handle = None

    def __enter__(self) -> FileSyncLock:
        if not self._thread_lock.acquire(timeout=self.timeout):
            raise SyncLockTimeout(f"another thread kept the sync lock of {self.path} for {self.timeout} s")
        try:
            self._acquire_file()
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            if self._handle is not None:
                if fcntl is not None:
                    fcntl.flock(self._handle, fcntl.LOCK_UN)
                self._handle.close()
                self._handle = None
        finally:
            self._thread_lock.release()

    def _acquire_file(self) -> None:
        handle = open(self.path, "a+b")  # noqa: SIM115 - closed in __exit__
        if fcntl is None:
            self._handle = handle
            return
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.close()
                    raise SyncLockTimeout(
                        f"another process kept the sync lock {self.path} for {self.timeout} s; "
                        "retry the sync later"
                    ) from None
                time.sleep(self.poll_interval)
                continue
            self._handle = handle
            return
