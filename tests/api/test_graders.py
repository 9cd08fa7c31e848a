"""/v1/fine_tuning/alpha/graders/run and /validate through the official openai SDK.

The graders are OpenAI's documented examples (the API reference's and the graders guide's), with the
rewards those documents give; the python grader runs in the real sandbox.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from fastapi.testclient import TestClient
from openai.types.fine_tuning.alpha import GraderRunResponse

from api.config import Settings
from tests.api.test_openai_types import strict
from tests.support.openai_graders import GUIDE_MULTI, GUIDE_PYTHON, GUIDE_STRING_CHECK, REFERENCE_EXAMPLE


@pytest.fixture
def sdk(client: TestClient) -> Iterator[openai.OpenAI]:
    key = client.headers["Authorization"].removeprefix("Bearer ")
    with openai.OpenAI(
        base_url="http://testserver/v1", api_key=key, http_client=client, max_retries=0
    ) as sdk:
        yield sdk


def run(client: TestClient, grader: dict, sample: str, item: dict | None = None) -> dict:
    body: dict = {"grader": grader, "model_sample": sample}
    if item is not None:
        body["item"] = item
    response = client.post("/v1/fine_tuning/alpha/graders/run", json=body)
    assert response.status_code == 200, response.text
    strict(GraderRunResponse, response.json())
    return response.json()


class TestRun:
    def test_reference_example_through_the_sdk(self, sdk: openai.OpenAI) -> None:
        answer = sdk.fine_tuning.alpha.graders.run(grader=REFERENCE_EXAMPLE, model_sample="model_sample")  # type: ignore[arg-type]
        assert answer.reward == 0.0
        assert answer.metadata.name == "name" and answer.metadata.type == "string_check"
        assert not any(v for v in answer.metadata.errors.model_dump().values() if isinstance(v, bool))

    def test_string_check_with_item(self, sdk: openai.OpenAI) -> None:
        graders = sdk.fine_tuning.alpha.graders
        assert (
            graders.run(grader=GUIDE_STRING_CHECK, model_sample="positive", item={"label": "positive"}).reward
            == 1.0
        )  # type: ignore[arg-type]
        assert (
            graders.run(grader=GUIDE_STRING_CHECK, model_sample="negative", item={"label": "positive"}).reward
            == 0.0
        )  # type: ignore[arg-type]

    def test_python_grader_in_the_sandbox(self, client: TestClient) -> None:
        answer = run(client, GUIDE_PYTHON, "Paris", {"reference_answer": "Paris"})
        assert answer["reward"] == pytest.approx(1.0)
        partial = run(client, GUIDE_PYTHON, "Paris, France", {"reference_answer": "Paris"})
        assert 0.5 < partial["reward"] < 1.0

    def test_multi_grader_documented_example(self, client: TestClient) -> None:
        sample = json.dumps({"name": "Jane Doe", "email": "jane@example.com"})
        answer = run(client, GUIDE_MULTI, sample, {"name": "Jane Doe", "email": "jane@example.com"})
        assert answer["reward"] == pytest.approx(1.0)
        assert answer["sub_rewards"] == {"name": pytest.approx(1.0), "email": 1.0}
        half = run(client, GUIDE_MULTI, sample, {"name": "Jane Doe", "email": "other@example.com"})
        assert half["reward"] == pytest.approx(0.5)

    def test_text_similarity_metrics(self, client: TestClient) -> None:
        for metric in ("fuzzy_match", "bleu", "gleu", "meteor", "rouge_1", "rouge_l"):
            grader = {
                "type": "text_similarity",
                "name": metric,
                "input": "{{sample.output_text}}",
                "reference": "{{item.reference}}",
                "evaluation_metric": metric,
            }
            text = "the cat sat on the mat by the door"
            assert run(client, grader, text, {"reference": text})["reward"] == pytest.approx(1.0, abs=1e-3)

    def test_a_failing_sample_is_an_error_in_metadata_not_a_failed_request(self, client: TestClient) -> None:
        answer = run(client, GUIDE_STRING_CHECK, "positive", {"other": "x"})
        assert answer["reward"] == 0.0
        assert answer["metadata"]["errors"]["invalid_variable_error"] is True

    def test_score_model_without_a_backend_is_a_model_grader_server_error(self, client: TestClient) -> None:
        grader = {
            "type": "score_model",
            "name": "judge",
            "model": "tiny-llama",
            "input": [{"role": "user", "content": "Grade: {{sample.output_text}}"}],
        }
        answer = run(client, grader, "Paris")
        assert answer["metadata"]["errors"]["model_grader_server_error"] is True
        assert "inference backend" in answer["metadata"]["errors"]["model_grader_server_error_details"]

    def test_a_judge_the_project_cannot_see_is_named(self, client: TestClient) -> None:
        grader = {
            "type": "label_model",
            "name": "judge",
            "model": "ft:someone-else",
            "labels": ["a", "b"],
            "passing_labels": ["a"],
            "input": [{"role": "user", "content": "x"}],
        }
        errors = run(client, grader, "Paris")["metadata"]["errors"]
        assert errors["model_grader_server_error"] is True
        assert "does not exist" in errors["model_grader_server_error_details"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox confines graders only when run as root")
def test_python_grader_cannot_read_another_projects_upload(
    client: TestClient, other_client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    uploaded = other_client.post(
        "/v1/files",
        files={
            "file": (
                "secret.jsonl",
                json.dumps(
                    {
                        "messages": [
                            {"role": "user", "content": "hi"},
                            {"role": "assistant", "content": "secret"},
                        ]
                    }
                ),
            )
        },
        data={"purpose": "fine-tune"},
    )
    assert uploaded.status_code == 200, uploaded.text
    stored = [p for p in settings.files_path.rglob("*") if p.is_file() and b"secret" in p.read_bytes()]
    assert stored, "the upload is on disk"
    for parent in [stored[0], *stored[0].parents]:  # readable by anyone: only the sandbox stands in the way
        parent.chmod(parent.stat().st_mode | 0o005)
    source = f"def grade(sample, item):\n    return float(len(open({str(stored[0])!r}).read()))\n"
    answer = run(client, {"type": "python", "name": "thief", "source": source}, "x")
    assert answer["reward"] == 0.0
    assert answer["metadata"]["errors"]["python_grader_runtime_error"] is True
    assert "PermissionError" in answer["metadata"]["errors"]["python_grader_runtime_error_details"]
    assert run(client, GUIDE_PYTHON, "Paris", {"reference_answer": "Paris"})["reward"] == pytest.approx(1.0)


class TestValidate:
    def test_valid_grader_comes_back(self, sdk: openai.OpenAI) -> None:
        answer = sdk.fine_tuning.alpha.graders.validate(grader=GUIDE_MULTI)  # type: ignore[arg-type]
        assert answer.grader is not None

    @pytest.mark.parametrize(
        ("grader", "param", "words"),
        [
            ({**GUIDE_STRING_CHECK, "operation": "contains"}, "grader.operation", "operation"),
            ({**GUIDE_STRING_CHECK, "colour": "red"}, "grader.colour", "Unrecognized"),
            ({"type": "nonsense", "name": "x"}, "grader", "type"),
            ({**GUIDE_MULTI, "calculate_output": "name + phone"}, "grader", "'phone'"),
            ({**GUIDE_MULTI, "calculate_output": "__import__('os')"}, "grader", "calculate_output"),
            ({**GUIDE_STRING_CHECK, "input": "{{output_text}}"}, "grader", "item.<field>"),
            ({"type": "python", "name": "p", "source": "def grade(:"}, "grader", "compile"),
            ({**GUIDE_PYTHON, "image_tag": "2025-05-08"}, "grader", "image_tag"),
        ],
    )
    def test_bad_grader_is_a_400_naming_the_field(
        self, sdk: openai.OpenAI, grader: dict, param: str, words: str
    ) -> None:
        with pytest.raises(openai.BadRequestError) as raised:
            sdk.fine_tuning.alpha.graders.validate(grader=grader)  # type: ignore[arg-type]
        error: dict = raised.value.body  # type: ignore[assignment]
        assert error["param"] == param, error
        assert words in error["message"]
        with pytest.raises(openai.BadRequestError):
            sdk.fine_tuning.alpha.graders.run(grader=grader, model_sample="x")  # type: ignore[arg-type]
