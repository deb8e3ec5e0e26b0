"""Opaque page cursors of the work-order list."""

from __future__ import annotations

import base64
import re


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


_CURSOR_RE = re.compile(r"[A-Za-z0-9_-]+")


def decode_cursor(cursor: str) -> str:
    """Decode an opaque page cursor, raising ValueError when this server did not make it.

    The check is strict because `urlsafe_b64decode` drops characters outside
    the alphabet, which would turn garbage into a cursor at the first page.
    """
    if not _CURSOR_RE.fullmatch(cursor):
        raise ValueError(f"cursor {cursor!r} is not unpadded URL-safe base64")
    padded = cursor + "=" * (-len(cursor) % 4)
    return base64.urlsafe_b64decode(padded.encode()).decode()
