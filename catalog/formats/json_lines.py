"""Strict JSON Lines: one line of bytes -> one JSON object, or the problems that make it no JSON.

Stricter than Python's json, as the other end of a file (OpenAI, another parser, a tokenizer) is:
NaN and Infinity are not JSON; a key twice in one object means different things to different parsers
(which value wins); an unpaired surrogate escape ("\\ud800") is no Unicode that a tokenizer can
encode; a byte-order mark belongs only at the start of a file (FileReader strips that one). Every
check is linear in the line's size: a line is bounded by the upload limit, not trusted.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

# How many problems of one line (and of one report) are listed; the rest are counted.
MAX_REPORTED_PROBLEMS = 10

BOM = b"\xef\xbb\xbf"

# What a file uploaded as JSONL by mistake starts with. Reading such a file line by line would report
# pages of invalid UTF-8 and say nothing useful; its first bytes say what it is.
_NOT_TEXT = (
    ((b"\xff\xfe", b"\xfe\xff"), "the file is UTF-16 text; save it as UTF-8"),
    ((b"\x1f\x8b",), "the file is gzip-compressed; upload the uncompressed JSONL file"),
    ((b"PK\x03\x04", b"PK\x05\x06"), "the file is a zip archive; upload the JSONL file it holds"),
    ((b"BZh",), "the file is bzip2-compressed; upload the uncompressed JSONL file"),
    ((b"\xfd7zXZ\x00",), "the file is xz-compressed; upload the uncompressed JSONL file"),
    ((b"\x28\xb5\x2f\xfd",), "the file is zstd-compressed; upload the uncompressed JSONL file"),
    ((b"7z\xbc\xaf\x27\x1c",), "the file is a 7z archive; upload the JSONL file it holds"),
)

# A JSON string escape of a UTF-16 surrogate; only when the raw line has one is the parsed object
# searched for an unpaired one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def not_text(first_line: bytes) -> str | None:
    """The problem with a file whose first bytes show it is not UTF-8 text, or None."""
    for signatures, problem in _NOT_TEXT:
        if first_line.startswith(signatures):
            return problem
    return None


def parse_json_line(raw: bytes) -> tuple[dict[str, Any] | None, list[str]]:
    """The line's JSON object and the problems found in it as JSON (not yet as an example).

    The object is None when the line is no JSON object at all. It is returned beside problems that
    leave it readable (a duplicated key, an unpaired surrogate), so that its format can still be told.
    """
    if b"\x00" in raw:
        # JSON has no place for a raw NUL byte; text with them is binary or UTF-16 without a BOM.
        return None, [
            f"has a NUL byte (byte {raw.index(0)}): the file is binary, or UTF-16 without a byte-order "
            "mark; upload UTF-8 JSON Lines"
        ]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [f"is not valid UTF-8 (byte {exc.start})"]
    if text.startswith("\ufeff"):
        return None, ["starts with a byte-order mark (U+FEFF); only the file's first line may"]
    duplicated: list[str] = []

    def build_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            # Counted in one pass: list.count per key is quadratic, and a line can hold 500,000 keys.
            counts = Counter(key for key, _ in pairs)
            duplicated.extend(key for key, n in counts.items() if n > 1)
        return obj

    try:
        value = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=build_object)
    except _NotJSON as exc:
        return None, [f"is not valid JSON ({exc} is not a JSON value; write a number, a string or null)"]
    except json.JSONDecodeError as exc:
        return None, [f"is not valid JSON ({exc.msg} at column {exc.colno})" + _layout_hint(text)]
    except RecursionError:
        return None, ["is nested too deeply (arrays and objects more than about 1,000 levels deep)"]
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        return None, [f"is not valid JSON ({exc})"]
    if not isinstance(value, dict):
        return None, [not_an_object(value)]
    problems = [f"has the key {key!r} more than once in one object" for key in dict.fromkeys(duplicated)]
    if _SURROGATE_ESCAPE.search(raw) and not _encodable_json(value):
        problems += _unpaired_surrogates(value)
    return value, problems


def not_an_object(value: Any) -> str:
    """The problem with a line whose JSON value is not an object."""
    hint = ""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        hint = " (write one example per line, not an array of examples)"
    return f"must be a JSON object, not {_json_type(value)}" + hint


def json_text_problem(text: Any, where: str) -> str | None:
    """The problem with a string field that must hold JSON (a tool call's arguments), or None."""
    if not isinstance(text, str):
        return f"{where} must be a string of JSON"
    try:
        json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        return f"{where} is nested too deeply"
    except ValueError:  # JSONDecodeError, NaN, an integer too long to convert
        return f"{where} is not valid JSON"
    return None


class _NotJSON(ValueError):
    """A literal that Python's json accepts but JSON does not (NaN, Infinity)."""


def _reject_constant(name: str) -> Any:
    raise _NotJSON(name)


def _layout_hint(text: str) -> str:
    stripped = text.strip()
    if stripped == "[":
        return "; the file looks like one JSON array: write one example per line (JSON Lines)"
    if stripped == "{":
        return "; the file looks like pretty-printed JSON: write each example on one line (JSON Lines)"
    return ""


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _encodable_json(value: dict[str, Any]) -> bool:
    """Whether no string of the object holds an unpaired surrogate: json joins the escapes of a pair
    into one character, so what is left of a surrogate is unpaired. Written out by json's C encoder,
    many times faster than the walk below, which is left to find the ones there are (emoji escaped as
    pairs, as json.dumps writes them by default, are common; unpaired surrogates are not)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):  # RecursionError: nested as deep as json.loads allows
        return False
    return True


def _unpaired_surrogates(obj: dict[str, Any]) -> list[str]:
    """The first MAX_REPORTED_PROBLEMS values (and keys) with an unpaired surrogate, in document order.

    Iterative, as the object may be nested as deeply as json allows. The path is a stack of parts,
    rendered only for a problem: a path string made for every value would cost the number of values
    times the path's length (a 2 MB key over a list of a million numbers: terabytes).
    """
    problems: list[str] = []
    n_more = 0

    def found(parts: list[str], problem: str) -> None:
        nonlocal n_more
        if len(problems) < MAX_REPORTED_PROBLEMS:
            problems.append(f"{_path(parts)} {problem}")
        else:
            n_more += 1

    if not all(_encodable(key) for key in obj):
        found([], "has a key with an unpaired surrogate escape")
    path: list[str] = []  # the part of each container entered, one fewer than the iterators below
    members: list[Iterator[tuple[str, Any]]] = [_members(obj)]
    while members:
        member = next(members[-1], None)
        if member is None:
            members.pop()
            if path:
                path.pop()
            continue
        part, value = member
        if isinstance(value, dict | list):
            path.append(part)
            if isinstance(value, dict) and not all(_encodable(key) for key in value):
                found(path, "has a key with an unpaired surrogate escape")
            members.append(_members(value))
        elif isinstance(value, str) and not _encodable(value):
            found([*path, part], "has an unpaired surrogate escape (\\ud800-\\udfff): not valid Unicode")
    if n_more:
        problems.append(f"{n_more} more value(s) have an unpaired surrogate escape")
    return problems


def _members(value: dict[str, Any] | list[Any]) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        return ((f".{key}", item) for key, item in value.items())
    return ((f"[{index}]", item) for index, item in enumerate(value))


def _path(parts: list[str]) -> str:
    return "".join(parts).removeprefix(".") or "the example"


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
