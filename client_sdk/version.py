"""Versions that the SDK sends with every request."""

from __future__ import annotations

from shared_schema.protocol import PROTOCOL_VERSION

SDK_NAME = "csdp-python"
SDK_VERSION = "0.2.0"


def sdk_header_value() -> str:
    """Return the value of the SDK version header, such as `csdp-python/0.2.0`."""
    return f"{SDK_NAME}/{SDK_VERSION}"


__all__ = ["PROTOCOL_VERSION", "SDK_NAME", "SDK_VERSION", "sdk_header_value"]
