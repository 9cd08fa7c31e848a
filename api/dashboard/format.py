"""How the dashboard writes durations, times and sizes (Jinja filters)."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from catalog.sizes import format_bytes

NOTHING = "\u2013"  # an en dash: no value


def duration(seconds: int | None) -> str:
    if seconds is None:
        return NOTHING
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def when(unix: int | None) -> str:
    if unix is None:
        return NOTHING
    return datetime.datetime.fromtimestamp(unix, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def size(count: int | None) -> str:
    return format_bytes(count or 0)


FILTERS: dict[str, Callable[..., Any]] = {"duration": duration, "when": when, "size": size}
