"""A run's items: read from a file or inline content, checked against the eval's item_schema, and
turned into what graders and models read. Pure functions, shared by the API and the worker.

A line of a file is OpenAI's {"item": {...}, "sample": {...}} or, without an `item` key, the item
itself. A line that is not a JSON object, or an item that does not match the schema, becomes an
errored output item that says why, never a failed run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jsonschema

from graders.templates import TemplateError, lookup, sample_of


@dataclass(frozen=True)
class SourceItem:
    index: int
    """datasource_item_id: the item's place in the data source, from 0."""
    item: dict[str, Any]
    sample: dict[str, Any] | None = None
    problem: str | None = None
    """Why the item can't be graded (its line is not a JSON object), or None."""


def from_content(rows: Iterable[dict[str, Any]]) -> list[SourceItem]:
    return [SourceItem(index, row["item"], row.get("sample")) for index, row in enumerate(rows)]


def from_lines(lines: Iterable[bytes]) -> list[SourceItem]:
    items: list[SourceItem] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        index = len(items)
        try:
            value = json.loads(line)
        except ValueError as error:
            items.append(SourceItem(index, {}, problem=f"line {number} is not JSON: {error}"))
            continue
        if not isinstance(value, dict):
            items.append(SourceItem(index, {}, problem=f"line {number} is not a JSON object"))
        elif isinstance(value.get("item"), dict):
            sample = value.get("sample")
            items.append(SourceItem(index, value["item"], sample if isinstance(sample, dict) else None))
        else:
            items.append(SourceItem(index, value))
    return items


def schema_problem(schema: dict[str, Any], item: dict[str, Any]) -> str | None:
    """Why `item` does not match the eval's item_schema, naming the field; None when it matches."""
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(item))
    if error is None:
        return None
    path = ".".join(["item", *(str(part) for part in error.absolute_path)])
    return f"{path}: {error.message}"


def sample_namespace(sample: dict[str, Any]) -> dict[str, Any]:
    """A sample given with an item, as graders read it: `output_json` parsed from `output_text`."""
    text = sample.get("output_text")
    if isinstance(text, str) and "output_json" not in sample:
        return {**sample_of(text), **sample}
    return sample


def referenced_messages(item: dict[str, Any], reference: str) -> list[dict[str, str]]:
    """The messages an `item_reference` ("item.messages") points at; TemplateError when they are not
    a list of {role, content}."""
    value = lookup({"item": item}, reference.split("."))
    if not isinstance(value, list) or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in value
    ):
        raise TemplateError(f"{reference} is not a list of messages with a role and a content")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def infer_schema(items: list[SourceItem]) -> dict[str, Any]:
    """Tunery's `file` config: the schema of a file's items, each key with the JSON type it has, the
    keys every item has required."""
    types: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    good = [source.item for source in items if source.problem is None]
    for item in good:
        for key, value in item.items():
            types.setdefault(key, set()).add(_json_type(value))
            counts[key] = counts.get(key, 0) + 1
    properties = {
        key: {"type": sorted(kinds)[0] if len(kinds) == 1 else sorted(kinds)} for key, kinds in types.items()
    }
    required = sorted(key for key, count in counts.items() if count == len(good))
    return {"type": "object", "properties": properties, "required": required}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"
