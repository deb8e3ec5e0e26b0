"""Versioned schema migrations, one SQL file per version and database kind."""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"(postgres|sqlite)_(\d{4})_\w+\.sql")


def migrations(kind: str) -> list[tuple[int, str]]:
    """Return (version, script) pairs for `kind` ("postgres" or "sqlite"), in version order."""
    found = []
    for entry in resources.files(__name__).iterdir():
        match = _NAME.fullmatch(entry.name)
        if match and match.group(1) == kind:
            found.append((int(match.group(2)), entry.read_text()))
    return sorted(found)


def postgres_migrations() -> list[tuple[int, str]]:
    return migrations("postgres")


def latest_version(kind: str = "postgres") -> int:
    return migrations(kind)[-1][0]
