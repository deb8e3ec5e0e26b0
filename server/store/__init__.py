"""Stores for the event log, decisions, projections and reference data."""

from .errors import SchemaOutdated, StoreError, StoreUnavailable
from .sqlite import SQLiteStore, decode_cursor, encode_cursor

__all__ = ["SQLiteStore", "SchemaOutdated", "StoreError", "StoreUnavailable", "decode_cursor", "encode_cursor"]
