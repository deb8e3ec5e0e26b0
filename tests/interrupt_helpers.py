"""Interrupting a simulator run the way a terminal or a process manager does, once its files exist."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def interrupt_run(
    arguments: list[str], environment: dict[str, str], started: Path, pattern: str, signal_number: int
) -> subprocess.CompletedProcess[str]:
    """Run `python -m ARGUMENTS`, wait until `started` contains files matching `pattern`, send the signal and wait.

    Ctrl-C in a terminal reaches the whole process group, the server
    included, so SIGINT goes to the group; SIGTERM goes to the main process only.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=environment,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(started.glob(pattern)):
        time.sleep(0.2)
    # A moment more, so the run is past its start-up and inside the work an operator would interrupt.
    time.sleep(2)
    if signal_number == signal.SIGINT:
        os.killpg(process.pid, signal_number)
    else:
        process.send_signal(signal_number)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
