"""A JSONL dataset file, line by line: each line parsed into a typed example or its problems.

parse_line is the one way from bytes to an example: the API's upload and job validation and the
trainer's loaders all read lines through it (via FileReader, which adds the rules that span lines),
so that a line means the same to all of them and is refused by all of them in the same words.
Problems name the field ("messages[2].role must be one of ..."); the caller adds the line number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from catalog.formats.classification import MAX_LABELS, ClassificationExample
from catalog.formats.json_lines import BOM, not_text, parse_json_line
from catalog.formats.registry import (
    CHAT,
    FORMAT_NAMES,
    REINFORCEMENT,
    UPLOAD_FORMATS,
    Example,
    Format,
    read_example,
)
from catalog.formats.reinforcement import NO_ASSISTANT


@dataclass(slots=True)
class ParsedLine:
    """What one line holds. `example` is set exactly when `problems` is empty."""

    json: dict[str, Any] | None
    """The JSON object as parsed (what a token counter is given); None when the line is no object."""
    format: str | None
    """The format its keys tell, even when it has problems; None when that can't be told."""
    example: Example | None
    problems: list[str]

    def refuse(self, problem: str) -> None:
        self.problems.append(problem)
        self.example = None


def parse_line(raw: bytes, formats: tuple[Format, ...] = UPLOAD_FORMATS) -> ParsedLine:
    """One line (no byte-order mark; its newline may be kept) read as an example of one of `formats`."""
    value, problems = parse_json_line(raw)
    if value is None:
        return ParsedLine(None, None, None, problems)
    example, fmt, format_problems = read_example(value, formats)
    if problems:
        # Problems of the JSON (a duplicated key, an unpaired surrogate) come first; the format's
        # problems are still named, so that one upload reports them all.
        return ParsedLine(value, fmt, None, problems + format_problems)
    return ParsedLine(value, fmt, example, format_problems)


class FileReader:
    """Reads one file's lines in order, adding the rules of a file to those of each line:

    - a file whose first bytes show it is no text (gzip, zip, UTF-16) is one problem of line 1;
    - a UTF-8 byte-order mark is allowed on line 1 only (editors on Windows write one);
    - blank lines (a trailing newline, CRLF leftovers, whitespace) are skipped;
    - a file holds examples of one format: the first line whose format can be told decides it;
    - a classification file has at most MAX_LABELS distinct labels.

    It keeps only the file's format and its label set, so reading costs the memory of one line.
    """

    def __init__(self, formats: tuple[Format, ...] = UPLOAD_FORMATS) -> None:
        self.formats = formats
        self.file_format: str | None = None
        """The file's format, once a line has told it."""
        self.file_format_line = 0
        """The line that told it."""
        self.labels: set[str] = set()
        """The labels of the valid classification examples so far."""

    def read(self, number: int, raw: bytes) -> ParsedLine | None:
        """Line `number` (1-based, counting every line) of the file; None when it is blank."""
        if number == 1:
            problem = not_text(raw)
            if problem is not None:
                return ParsedLine(None, None, None, [problem])
            if raw.startswith(BOM):
                raw = raw[len(BOM) :]
        if not raw.strip():
            return None
        line = parse_line(raw, self.formats)
        fmt = line.format
        if fmt is not None:
            if self.file_format is None:
                self.file_format, self.file_format_line = fmt, number
            elif fmt == REINFORCEMENT and self.file_format == CHAT:
                # In a chat file, a line without an answer is a chat example with nothing to learn.
                line.refuse(NO_ASSISTANT)
            elif fmt != self.file_format:
                line.refuse(
                    f"is a {FORMAT_NAMES[fmt]} example, but line {self.file_format_line} is a "
                    f"{FORMAT_NAMES[self.file_format]} example: a file holds examples of one format"
                )
        if isinstance(line.example, ClassificationExample):
            label = line.example.label_name
            if label not in self.labels:
                if len(self.labels) >= MAX_LABELS:
                    line.refuse(
                        f"label {label!r} is one more than the {MAX_LABELS} distinct labels a classifier "
                        "can have"
                    )
                else:
                    self.labels.add(label)
        return line
