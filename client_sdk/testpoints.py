"""Named points of a push where a test can stop the process, to prove the outbox survives a kill there.

When the environment variable CSDP_SDK_PAUSE_AT names a point, the SDK
writes the file named by CSDP_SDK_PAUSE_FILE when it reaches that point
and then sleeps, so the test can kill the process with SIGKILL exactly
there. Without the variable, `reach` does nothing. Apps never set it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_AT_ENV = "CSDP_SDK_PAUSE_AT"
PAUSE_FILE_ENV = "CSDP_SDK_PAUSE_FILE"

# The batch is read from the outbox and the request is not sent yet.
BEFORE_SEND = "before_send"
# The server has decided the batch and the response is read, but the decisions are not stored.
AFTER_SEND = "after_send"
# The decisions are stored in the outbox, and the pull has not started.
AFTER_STORE = "after_store"
POINTS = (BEFORE_SEND, AFTER_SEND, AFTER_STORE)


def reach(point: str) -> None:
    """Pause forever at `point` when CSDP_SDK_PAUSE_AT names it; otherwise return at once."""
    if os.environ.get(PAUSE_AT_ENV) != point:
        return
    marker = os.environ.get(PAUSE_FILE_ENV)
    if marker:
        Path(marker).write_text(f"{os.getpid()} {point}\n")
    while True:
        time.sleep(3600)
