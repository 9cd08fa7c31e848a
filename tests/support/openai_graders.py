"""OpenAI's documented grader examples (the API reference's request and the graders guide's graders),
defined once for the tests that grade them through the library (tests/graders) and the API (tests/api)."""

from __future__ import annotations

from typing import Any

# The API reference's example request: "input" is not "reference", so the reward is 0.
REFERENCE_EXAMPLE = {
    "input": "input",
    "name": "name",
    "operation": "eq",
    "reference": "reference",
    "type": "string_check",
}
GUIDE_STRING_CHECK = {
    "type": "string_check",
    "name": "Example string check grader",
    "input": "{{sample.output_text}}",
    "reference": "{{item.label}}",
    "operation": "eq",
}
GUIDE_PYTHON = {
    "type": "python",
    "name": "Example python grader",
    "source": (
        "from rapidfuzz import fuzz, utils\n\n"
        "def grade(sample, item) -> float:\n"
        "    output_text = sample['output_text']\n"
        "    reference_answer = item['reference_answer']\n"
        "    return fuzz.WRatio(output_text, reference_answer, processor=utils.default_process) / 100.0\n"
    ),
}
GUIDE_MULTI: dict[str, Any] = {
    "type": "multi",
    "name": "example multi grader",
    "graders": {
        "name": {
            "name": "name",
            "type": "text_similarity",
            "input": "{{sample.output_json.name}}",
            "reference": "{{item.name}}",
            "evaluation_metric": "fuzzy_match",
        },
        "email": {
            "name": "email",
            "type": "string_check",
            "input": "{{sample.output_json.email}}",
            "reference": "{{item.email}}",
            "operation": "eq",
        },
    },
    "calculate_output": "(name + email) / 2",
}
