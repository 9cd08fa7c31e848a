"""The formats, one row each, and which of them each fine-tuning method trains on.

An example's format is told by its top-level keys: a line with 'messages' is a chat example whatever
else is wrong with it, so its problems can be named in its format's terms. A new format is a row and
a module. One whose keys another's overlap (reinforcement fine-tuning's: a 'messages' prompt and any
other fields) is not told by keys alone: it is read when the job's method names it, by passing the
method's formats to parse_line / read_example instead of the formats told at upload.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from catalog.formats import chat, classification, preference, prompt_completion, reinforcement
from catalog.formats.chat import ChatExample
from catalog.formats.classification import ClassificationExample
from catalog.formats.preference import PreferenceExample
from catalog.formats.prompt_completion import PromptCompletionExample
from catalog.formats.reinforcement import ReinforcementExample
from catalog.methods import METHODS

Example = (
    ChatExample | PromptCompletionExample | PreferenceExample | ClassificationExample | ReinforcementExample
)

CHAT = "chat"
PROMPT_COMPLETION = "prompt_completion"
PREFERENCE = "preference"
CLASSIFICATION = "classification"
REINFORCEMENT = "reinforcement"


@dataclass(frozen=True)
class Format:
    name: str
    """How reports and job errors count it: "prompt_completion"."""
    title: str
    """How messages name it: "prompt/completion"."""
    keys: tuple[str, ...]
    """The top-level keys that tell an example is in this format (any one of them)."""
    needs: str
    """What an example of it has, for a message to a method that wants it."""
    read: Callable[[dict[str, Any]], tuple[Any, list[str]]]
    """A JSON object of this format -> (the typed example, or None, and the problems)."""


FORMATS: dict[str, Format] = {
    row.name: row
    for row in (
        Format(CHAT, "chat", chat.KEYS, "a 'messages' list", chat.read_chat),
        Format(
            PROMPT_COMPLETION,
            "prompt/completion",
            prompt_completion.KEYS,
            "'prompt' and 'completion' strings",
            prompt_completion.read_prompt_completion,
        ),
        Format(
            PREFERENCE,
            "preference",
            preference.KEYS,
            "an 'input' object, 'preferred_output' and 'non_preferred_output'",
            preference.read_preference,
        ),
        Format(
            CLASSIFICATION,
            "classification",
            classification.KEYS,
            "'text' and 'label'",
            classification.read_classification,
        ),
        Format(
            REINFORCEMENT,
            "reinforcement",
            reinforcement.KEYS,
            "a 'messages' prompt (and the fields its grader reads)",
            reinforcement.read_reinforcement,
        ),
    )
}
# The formats told apart by their keys when a file is uploaded, before any method is known; the
# reinforcement format shares the chat format's keys (see read_example).
UPLOAD_FORMATS = tuple(row for row in FORMATS.values() if row.name != REINFORCEMENT)
FORMAT_NAMES = {name: row.title for name, row in FORMATS.items()}
FORMAT_KEYS = {name: row.keys for name, row in FORMATS.items()}

# Which formats each fine-tuning method trains on: the methods' registry says.
FORMATS_BY_METHOD: dict[str, tuple[str, ...]] = {name: row.formats for name, row in METHODS.items()}
assert all(name in FORMATS for formats in FORMATS_BY_METHOD.values() for name in formats)


def read_example(
    value: dict[str, Any], formats: tuple[Format, ...] = UPLOAD_FORMATS
) -> tuple[Example | None, str | None, list[str]]:
    """(the typed example or None, its format or None when it can't be told, the problems)."""
    present = [row for row in formats if not value.keys().isdisjoint(row.keys)]
    if len(present) == 1:
        example, problems = present[0].read(value)
        if problems == [reinforcement.NO_ASSISTANT] and formats == UPLOAD_FORMATS:
            # A chat line with nothing to learn from is a reinforcement prompt, as far as an upload can tell.
            prompt, prompt_problems = FORMATS[REINFORCEMENT].read(value)
            if not prompt_problems:
                return prompt, REINFORCEMENT, []
        return example, present[0].name, problems
    if not present:
        return None, None, [_unknown_format(formats)]
    keys = " and ".join(
        f"{row.title} key(s) {', '.join(repr(key) for key in row.keys if key in value)}" for row in present
    )
    return None, None, [f"mixes {keys}: an example is in one format"]


def reading_formats(method: str) -> tuple[Format, ...]:
    """The formats a job's files are read in: the upload formats, or the method's own where one of them
    is not told by its keys (reinforcement)."""
    own = FORMATS_BY_METHOD[method]
    if all(FORMATS[name] in UPLOAD_FORMATS for name in own):
        return UPLOAD_FORMATS
    return tuple(FORMATS[name] for name in own)


def format_of(value: dict[str, Any], formats: tuple[Format, ...] = UPLOAD_FORMATS) -> str | None:
    """The format an object's keys tell, or None (no format's keys, or several formats' keys)."""
    present = [row.name for row in formats if not value.keys().isdisjoint(row.keys)]
    return present[0] if len(present) == 1 else None


def wrong_format(method: str, fmt: str) -> str:
    """The problem of an example of format `fmt` in a file that `method` reads."""
    if fmt == REINFORCEMENT and CHAT in FORMATS_BY_METHOD[method]:
        return f"{reinforcement.NO_ASSISTANT}: a prompt with no answer trains with the reinforcement method"
    needs = " or ".join(FORMATS[name].needs for name in FORMATS_BY_METHOD[method])
    return f"is a {FORMAT_NAMES[fmt]} example, but the {method} method needs {needs}"


@cache
def _unknown_format(formats: tuple[Format, ...]) -> str:
    described = [f"{_quoted(row.keys)} ({row.title} format)" for row in formats]
    if len(described) == 1:
        return f"must have {described[0]}"
    return f"must have {', '.join(described[:-1])}, or {described[-1]}"


def _quoted(keys: tuple[str, ...]) -> str:
    names = [repr(key) for key in keys]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
