"""The language-neutral SDK contract: JSON Schemas, tables and conformance vectors, and their export."""

from .export import export_contract

__all__ = ["export_contract"]
