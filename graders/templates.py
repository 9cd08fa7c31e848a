"""Grader templates: `{{item.field}}`, `{{sample.output_text}}`, `{{sample.output_json.key}}`.

A template names a value by a dotted path from one of two namespaces: `item` (the dataset line) and
`sample` (the model's answer: `output_text`, and `output_json` when that text is JSON). A string
value is put in as it is; any other value as JSON. A path that leads nowhere is a TemplateError, so a
grader never silently compares against an empty string.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

NAMESPACES = ("item", "sample")
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_-]+)*$")


class TemplateError(ValueError):
    """A placeholder that is malformed or names a value that is not there."""


def placeholders(template: str) -> Iterator[list[str]]:
    """The paths a template names, each split at its dots: ["item", "answer"]."""
    for match in _PLACEHOLDER.finditer(template):
        path = match.group(1)
        if not _PATH.match(path) or path.split(".")[0] not in NAMESPACES:
            raise TemplateError(
                f"template placeholder {{{{{path}}}}} must be item.<field> or sample.<field> "
                "(sample.output_text, sample.output_json...)"
            )
        yield path.split(".")


def render(template: str, namespaces: Mapping[str, Any]) -> str:
    """The template with each placeholder replaced by its value."""
    list(placeholders(template))  # malformed placeholders first, with their own message

    def value_of(match: re.Match[str]) -> str:
        value = lookup(namespaces, match.group(1).split("."))
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    return _PLACEHOLDER.sub(value_of, template)


def lookup(namespaces: Mapping[str, Any], path: list[str]) -> Any:
    value: Any = namespaces
    for depth, key in enumerate(path):
        if isinstance(value, Mapping) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            where = ".".join(path[: depth + 1])
            raise TemplateError(f"template names {'.'.join(path)}, but {where} is not there")
    return value


def sample_of(output_text: str) -> dict[str, Any]:
    """The `sample` namespace of a model's answer: `output_json` is the text parsed, if it is JSON."""
    sample: dict[str, Any] = {"output_text": output_text}
    with contextlib.suppress(ValueError):
        sample["output_json"] = json.loads(output_text)
    return sample
