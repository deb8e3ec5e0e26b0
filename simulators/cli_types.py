"""Argument types shared by the simulators' command lines; each names the value at fault."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def whole_number(minimum: int) -> Callable[[str], int]:
    """Return an argparse type that accepts whole numbers of `minimum` or more."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number of {minimum} or more, got {raw!r}")
        return value

    return parse


def probability(raw: str) -> float:
    """Parse a probability from 0 to 1 for argparse."""
    try:
        value = float(raw)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a probability from 0 to 1, got {raw!r}")
    return value


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help formatter that shows "(default: ...)" only for options with a default of their own.

    An option without one, such as an override of a scenario value, names the source of its value in its help.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text
