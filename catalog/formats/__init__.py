"""OpenAI's JSONL training formats (and Tunery's classification format), each defined once.

    chat               {"messages": [...], "tools": [...]?, "parallel_tool_calls": bool?}
    prompt/completion  {"prompt": str, "completion": str}
    preference (DPO)   {"input": {"messages": [...], "tools": [...]?},
                        "preferred_output": [assistant message], "non_preferred_output": [assistant message]}
    classification     {"text": str, "label": str | int | bool}
    reinforcement      {"messages": [prompt], "tools": [...]?, ...the fields its grader reads}

A line of bytes goes through parse_line (in a file, FileReader.read) and comes out as a typed example
or as its problems, in the words the user sees: the API's upload and job validation and the trainer's
loaders read lines only this way. Decisions beyond OpenAI's published rules, each because the trainer
would otherwise fail later or train on something else than the author meant:

  - strict JSON: NaN and Infinity, duplicated keys, unpaired surrogate escapes and a byte-order mark
    after line 1 are refused (json_lines.py);
  - content may be a string or a list of text parts, which the trainer joins; other parts (images,
    audio) are refused, as only text is trained here;
  - a tool message must answer a tool call made earlier in the example;
  - a preference input can't end with an assistant message (preference.py);
  - a file holds examples of one format, and a classification file at most MAX_LABELS labels.

Module by concern: json_lines (bytes -> JSON object), messages (messages, tool calls, tools), one
module per format (its typed model and its checks), registry (the formats and the methods that train
on them), lines (a line, and a file's lines).
"""

from catalog.formats.chat import ChatExample
from catalog.formats.classification import MAX_LABEL_CHARS, MAX_LABELS, ClassificationExample
from catalog.formats.json_lines import MAX_REPORTED_PROBLEMS, not_an_object, not_text
from catalog.formats.lines import FileReader, ParsedLine, parse_line
from catalog.formats.messages import (
    MESSAGE_KEYS,
    ROLES,
    FunctionCall,
    Message,
    TextPart,
    Tool,
    ToolCall,
)
from catalog.formats.preference import PreferenceExample, PreferenceInput
from catalog.formats.prompt_completion import PromptCompletionExample
from catalog.formats.registry import (
    CHAT,
    CLASSIFICATION,
    FORMAT_KEYS,
    FORMAT_NAMES,
    FORMATS,
    FORMATS_BY_METHOD,
    PREFERENCE,
    PROMPT_COMPLETION,
    REINFORCEMENT,
    UPLOAD_FORMATS,
    Example,
    Format,
    format_of,
    read_example,
    reading_formats,
    wrong_format,
)
from catalog.formats.reinforcement import ReinforcementExample, missing_item_fields

__all__ = [
    "CHAT",
    "CLASSIFICATION",
    "FORMATS",
    "FORMATS_BY_METHOD",
    "FORMAT_KEYS",
    "FORMAT_NAMES",
    "MAX_LABELS",
    "MAX_LABEL_CHARS",
    "MAX_REPORTED_PROBLEMS",
    "MESSAGE_KEYS",
    "PREFERENCE",
    "PROMPT_COMPLETION",
    "REINFORCEMENT",
    "ROLES",
    "UPLOAD_FORMATS",
    "ChatExample",
    "ClassificationExample",
    "Example",
    "FileReader",
    "Format",
    "FunctionCall",
    "Message",
    "ParsedLine",
    "PreferenceExample",
    "PreferenceInput",
    "PromptCompletionExample",
    "ReinforcementExample",
    "TextPart",
    "Tool",
    "ToolCall",
    "format_of",
    "missing_item_fields",
    "not_an_object",
    "not_text",
    "parse_line",
    "read_example",
    "reading_formats",
    "wrong_format",
]
