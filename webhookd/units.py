"""Durations and sizes in the config file's formats (SPEC §5).

Durations: ``<integer>(ms|s|m|h|d)``. Sizes: integer bytes or
``<integer>(B|KB|MB|GB|KiB|MiB|GiB)`` with KB = 1000 and KiB = 1024.
"""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}


def parse_duration(value: object) -> float:
    """Return seconds for a duration string such as ``"250ms"`` or ``"2h"``."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected a duration string like \"30s\", got {value!r}")
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"invalid duration {value!r}: use <integer>(ms|s|m|h|d), e.g. \"30s\"")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of ``seconds`` in the config's duration format."""
    millis = round(seconds * 1000)
    for unit, factor in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis and millis % factor == 0:
            return f"{millis // factor}{unit}"
    return f"{millis}ms"


def parse_size(value: object) -> int:
    """Return bytes for an integer or a size string such as ``"900KiB"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size must not be negative, got {value}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a size like \"900KiB\" or a number of bytes, got {value!r}")
    match = _SIZE.match(value)
    if match is None:
        raise ValueError(
            f"invalid size {value!r}: use bytes or <integer>(B|KB|MB|GB|KiB|MiB|GiB)"
        )
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


def format_size(size: int) -> str:
    """The shortest exact spelling of ``size`` bytes, binary units first."""
    for unit in ("GiB", "MiB", "KiB", "GB", "MB", "KB"):
        factor = _SIZE_UNITS[unit]
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)
