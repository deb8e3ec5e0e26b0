"""Simulators that drive the real server and SDK at fleet scale."""
