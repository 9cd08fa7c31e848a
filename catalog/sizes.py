"""Byte sizes as people write them (`80GiB`, `24GB`, `512MiB`) and as we print them, for flags,
settings, tables, the dashboard and the trainer's events: torch-free, so every side reads one definition."""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_bytes(text: str) -> int:
    """`80GiB` -> 85899345920; a bare number is bytes. Raises ValueError naming what it could not read."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"{text!r} is not a size: write a number and a unit such as 80GiB, 24GB or 512MiB")
    return int(float(match.group(1)) * _UNITS[unit])


def format_bytes(size: int) -> str:
    """The binary unit that keeps the number short: 85899345920 -> '80.0 GiB'."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" or value >= 100 else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
