"""Tunery's classification format: {"text": str, "label": str | int | bool}.

Labels are compared and reported as str(label): 1 and "1" are one label, true is "True".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KEYS = ("text", "label")
# A classifier gets one output per label: thousands of labels are a mistake (a free-text column used as
# the label), and the cap keeps a file's label set, which the reader keeps, bounded.
MAX_LABELS = 1000
MAX_LABEL_CHARS = 256


@dataclass(slots=True, kw_only=True)
class ClassificationExample:
    """One line of a classification file."""

    text: str
    """What is classified; not blank."""
    label: str | int | bool
    """Its class, as written."""

    @property
    def label_name(self) -> str:
        """The label as the classifier names it (its id2label entry)."""
        return str(self.label)


def read_classification(value: dict[str, Any]) -> tuple[ClassificationExample | None, list[str]]:
    """The example, or None and the problems of the line."""
    problems = []
    text = value.get("text")
    if "text" not in value:
        problems.append("text is missing")
    elif not isinstance(text, str):
        problems.append("text must be a string")
    elif not text.strip():
        problems.append("text is empty")
    label = value.get("label")
    if "label" not in value:
        problems.append("label is missing")
    elif isinstance(label, str):
        if not label.strip():
            problems.append("label is empty")
        elif len(label) > MAX_LABEL_CHARS:
            problems.append(f"label is {len(label)} characters long; a label has at most {MAX_LABEL_CHARS}")
    elif not isinstance(label, int):  # bool is an int
        problems.append("label must be a string, an integer or true/false")
    if problems:
        return None, problems
    return ClassificationExample(text=value["text"], label=value["label"]), problems
