"""Ctrl-C and SIGTERM for the simulators' command lines: one line on stderr and the usual exit status, no traceback.

SIGTERM is turned into an exception like Ctrl-C, so the `finally` blocks of a
run stop its server and remove its temporary folder in both cases.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM."""


def _raise_terminated(signal_number: int, frame: FrameType | None) -> None:
    raise Terminated()


def raise_on_sigterm() -> None:
    """Turn SIGTERM into `Terminated`, so a terminated run cleans up as an interrupted one does."""
    signal.signal(signal.SIGTERM, _raise_terminated)


def interrupted_status(exc: KeyboardInterrupt, program: str) -> int:
    """Print one line naming what stopped `program` and return the shell's status: 143 for SIGTERM, 130 for Ctrl-C."""
    if isinstance(exc, Terminated):
        print(f"{program}: stopped by SIGTERM; the run was abandoned and its files removed", file=sys.stderr)
        return 128 + signal.SIGTERM
    print(f"{program}: interrupted (Ctrl-C); the run was abandoned and its files removed", file=sys.stderr)
    return 128 + signal.SIGINT
