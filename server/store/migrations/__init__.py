"""Versioned schema migrations, one SQL file per version."""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"postgres_(\d{4})_\w+\.sql")


def postgres_migrations() -> list[tuple[int, str]]:
    """Return (version, script) pairs of the PostgreSQL migrations, in version order."""
    found = []
    for entry in resources.files(__name__).iterdir():
        match = _NAME.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text()))
    return sorted(found)


def latest_version() -> int:
    return postgres_migrations()[-1][0]
