"""Dataset validation: OpenAI's JSONL training formats, checked line by line, as an upload and as a job.

The formats and their rules are catalog.formats's, which the trainer reads files through too, so a
line this accepts the trainer reads the same way, and one this refuses the trainer refuses in the
same words. Here: the report (counts, the first problems, the label set), the limits of an upload,
token counting, and the rules of a dataset as a whole (how many examples a method needs, of which
formats). Problems name the line and the field ("line 37: messages[2].role must be one of ...");
the first several are reported, not only the first, with the total count.

The file is read as a stream: one line is parsed and checked at a time, and the report keeps only
counts, the first problems and the label set, so a large file costs no more memory than its longest
line. Uploads bound that too: `read_lines` never holds more of a line than the line limit, and
check_lines refuses a longer line and stops at the line-count limit (TUNERY_MAX_LINE_BYTES,
TUNERY_MAX_LINES), so a hostile file (one 500 MB line, millions of empty lines) costs bounded memory
and time. Within a line, every check is linear in its size: parsing a line of JSON costs up to about
25 times its bytes in memory (a list of millions of empty objects), which the line limit bounds.

An example longer than the model's context is a warning, not an error: like OpenAI, the trainer
truncates it. Token counting is a hook (`count_tokens`), since the API side has no tokenizer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from catalog.formats import (
    CHAT,
    CLASSIFICATION,
    FORMAT_KEYS,
    FORMAT_NAMES,
    FORMATS_BY_METHOD,
    MAX_LABEL_CHARS,
    MAX_LABELS,
    MAX_REPORTED_PROBLEMS,
    MESSAGE_KEYS,
    PREFERENCE,
    PROMPT_COMPLETION,
    ROLES,
    UPLOAD_FORMATS,
    ClassificationExample,
    FileReader,
    Format,
    format_of,
    missing_item_fields,
    not_text,
)
from catalog.methods import METHODS

__all__ = [
    "CHAT",
    "CLASSIFICATION",
    "FORMATS_BY_METHOD",
    "FORMAT_KEYS",
    "FORMAT_NAMES",
    "MAX_LABELS",
    "MAX_LABEL_CHARS",
    "MAX_PROBLEM_CHARS",
    "MAX_REPORTED_PROBLEMS",
    "MESSAGE_KEYS",
    "MIN_EXAMPLES",
    "PREFERENCE",
    "PROMPT_COMPLETION",
    "ROLES",
    "DatasetIssue",
    "DatasetReport",
    "ExampleRejected",
    "TokenCounter",
    "check_dataset",
    "check_lines",
    "example_format",
    "read_lines",
]

MIN_EXAMPLES = 10
# A problem can quote a key of the example, which may be megabytes long: the report stays readable.
MAX_PROBLEM_CHARS = 500

TokenCounter = Callable[[dict[str, Any]], int]
"""Counts the tokens of one valid example as the trainer will see it (see worker/context_length.py)."""


class ExampleRejected(ValueError):
    """Raised by a token counter when the model can't render an example at all (its chat template
    refuses it); check_lines reports the message as a problem of that line."""


@dataclass
class DatasetReport:
    n_examples: int = 0
    formats: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # the first MAX_REPORTED_PROBLEMS, "line N: ..."
    n_bad_lines: int = 0
    n_problems: int = 0  # all problems found, reported or not
    # Classification: examples per label, keyed by str(label).
    labels: Counter[str] = field(default_factory=Counter)
    # Not errors: what training will change (examples it truncates). The first MAX_REPORTED_PROBLEMS.
    warnings: list[str] = field(default_factory=list)
    n_warnings: int = 0
    # Filled only when check_lines is given a token counter.
    n_tokens: int = 0  # all valid examples together, before truncation
    max_example_tokens: int = 0
    n_long_examples: int = 0  # longer than max_tokens
    # The file's format and the line that decided it: the first line whose format could be told.
    file_format: str | None = None
    file_format_line: int = 0

    @property
    def ok(self) -> bool:
        return self.n_bad_lines == 0

    @property
    def label_names(self) -> list[str]:
        """Classification: the distinct labels, sorted."""
        return sorted(self.labels)

    def add_problems(self, line_no: int, problems: list[str]) -> None:
        self.n_bad_lines += 1
        self.n_problems += len(problems)
        for problem in problems:
            if len(self.problems) < MAX_REPORTED_PROBLEMS:
                self.problems.append(_clip(f"line {line_no}: {problem}"))

    def add_warning(self, line_no: int, warning: str) -> None:
        self.n_warnings += 1
        if len(self.warnings) < MAX_REPORTED_PROBLEMS:
            self.warnings.append(f"line {line_no}: {warning}")

    def summary(self) -> str:
        """One message: how many lines are bad, then the first problems found."""
        return (
            f"{self.n_bad_lines} invalid line(s): "
            + "; ".join(self.problems)
            + _more(self.n_problems, len(self.problems), "problem")
        )

    def warning_summary(self) -> str | None:
        """One message for the job's events, or None when there is nothing to warn about."""
        if not self.n_warnings:
            return None
        return (
            f"{self.n_warnings} warning(s): "
            + "; ".join(self.warnings)
            + _more(self.n_warnings, len(self.warnings), "warning")
        )


@dataclass(frozen=True)
class DatasetIssue:
    """A dataset-level failure, with the error code OpenAI uses for it."""

    code: str
    message: str


def read_lines(stream: BinaryIO, max_line_bytes: int) -> Iterator[bytes]:
    """The stream's lines, newlines kept, in memory bounded by `max_line_bytes`.

    A line longer than the limit is yielded cut to max_line_bytes + 1 bytes (so check_lines, given the
    same limit, reports it) and the rest of it is read past in chunks, never held whole: iterating a
    file object instead would read a 500 MB line with no newline into memory at once.
    """
    while raw := stream.readline(max_line_bytes + 1):
        if not raw.endswith(b"\n"):  # cut at the limit, or the file's last line
            while (rest := stream.readline(_SKIP_CHUNK)) and not rest.endswith(b"\n"):
                pass
        yield raw


_SKIP_CHUNK = 1024 * 1024


def check_lines(
    lines: Iterable[bytes],
    *,
    count_tokens: TokenCounter | None = None,
    max_tokens: int | None = None,
    limit_name: str = "the model's context",
    max_line_bytes: int | None = None,
    max_lines: int | None = None,
    formats: tuple[Format, ...] = UPLOAD_FORMATS,
    item_fields: frozenset[str] = frozenset(),
) -> DatasetReport:
    """Check every line; blank lines (a trailing newline, CRLF leftovers) are skipped.

    With `count_tokens`, each valid example is counted (report.n_tokens, max_example_tokens), and one
    longer than `max_tokens` is a warning: "line N: example is X tokens, longer than {limit_name} of Y
    tokens". A counter that raises ExampleRejected makes that line a problem.

    A line longer than `max_line_bytes` (its newline included) is a problem, not parsed; past
    `max_lines` lines (blank ones included) reading stops with a problem. The messages name the settings
    the API takes these limits from. A file whose first bytes say it is not UTF-8 text at all (gzip,
    zip, UTF-16) is one problem, and the rest of it is not read.

    `formats`: what the lines are read as (a job's: catalog.formats.reading_formats of its method).
    `item_fields`: the fields the job's grader reads as item.<field>; a line without one is a problem.
    """
    report = DatasetReport()
    reader = FileReader(formats)
    for line_no, raw in enumerate(lines, start=1):
        if max_lines is not None and line_no > max_lines:
            report.add_problems(
                line_no, [f"the file has more than {max_lines} lines, the limit (TUNERY_MAX_LINES)"]
            )
            break
        # Before the length limit: a compressed file's first "line" can be longer, and is one problem.
        if line_no == 1 and (problem := not_text(raw)) is not None:
            report.add_problems(line_no, [problem])
            break
        if max_line_bytes is not None and len(raw) > max_line_bytes:
            report.add_problems(
                line_no,
                [f"is longer than {max_line_bytes} bytes, the limit of a line (TUNERY_MAX_LINE_BYTES)"],
            )
            continue
        line = reader.read(line_no, raw)
        if line is None:
            continue
        problems = line.problems
        if item_fields and line.json is not None and not problems:
            problems.extend(missing_item_fields(line.json, set(item_fields)))
        if count_tokens is not None and not problems:
            assert line.json is not None
            try:
                n_tokens = count_tokens(line.json)
            except ExampleRejected as exc:
                problems.append(str(exc))
            else:
                report.n_tokens += n_tokens
                report.max_example_tokens = max(report.max_example_tokens, n_tokens)
                if max_tokens is not None and n_tokens > max_tokens:
                    report.n_long_examples += 1
                    report.add_warning(
                        line_no,
                        f"example is {n_tokens} tokens, longer than {limit_name} of {max_tokens} tokens "
                        "(training truncates it)",
                    )
        if problems:
            report.add_problems(line_no, problems)
            continue
        assert line.format is not None
        report.n_examples += 1
        report.formats[line.format] += 1
        if isinstance(line.example, ClassificationExample):
            report.labels[line.example.label_name] += 1
    report.file_format, report.file_format_line = reader.file_format, reader.file_format_line
    return report


def check_dataset(
    report: DatasetReport,
    method: str,
    *,
    purpose: str = "training",
    training: DatasetReport | None = None,
) -> DatasetIssue | None:
    """Dataset-level rules, applied when a job is validated.

    `purpose` is "training" or "validation": it picks the error code (invalid_training_file,
    invalid_validation_file) and the minimum number of examples (10 for training, 1 for validation).
    For a validation file, pass the training file's report as `training`: a classification label that
    no training example has is an error.
    """
    code = f"invalid_{purpose}_file"
    if not report.ok:
        return DatasetIssue(code, report.summary())
    if purpose == "training" and report.n_examples < MIN_EXAMPLES:
        return DatasetIssue(
            "invalid_n_examples",
            f"Training file has {report.n_examples} example(s), "
            f"but must have at least {MIN_EXAMPLES} examples",
        )
    if report.n_examples == 0:
        return DatasetIssue(code, f"The {purpose} file has no examples")
    wanted = FORMATS_BY_METHOD[method]
    wrong = {fmt: n for fmt, n in report.formats.items() if fmt not in wanted}
    if wrong:
        found = ", ".join(f"{n} {FORMAT_NAMES[fmt]}" for fmt, n in wrong.items())
        return DatasetIssue(
            code,
            f"The {method} method trains on {' or '.join(FORMAT_NAMES[fmt] for fmt in wanted)} examples, "
            f"but the {purpose} file has {found} example(s)",
        )
    if METHODS[method].labels:
        if purpose == "training" and len(report.labels) < 2:
            found = f"only the label {report.label_names[0]!r}" if report.labels else "no labels"
            return DatasetIssue(
                code, f"The {method} method needs at least 2 distinct labels, but the file has {found}"
            )
        if training is not None:
            unseen = sorted(set(report.labels) - set(training.labels))
            if unseen:
                return DatasetIssue(
                    code,
                    f"The validation file has {len(unseen)} label(s) that no training example has: "
                    + ", ".join(repr(label) for label in unseen[:MAX_REPORTED_PROBLEMS]),
                )
    return None


def example_format(example: dict[str, Any]) -> str:
    """The format of a valid example (one that check_lines accepted)."""
    fmt = format_of(example)
    if fmt is None:
        raise ValueError("the example has the keys of no one format")
    return fmt


def _clip(problem: str) -> str:
    return problem if len(problem) <= MAX_PROBLEM_CHARS else problem[:MAX_PROBLEM_CHARS] + "…"


def _more(total: int, shown: int, noun: str) -> str:
    return f"; and {total - shown} more {noun}(s)" if total > shown else ""
