"""client.evals, every call, with a default and a strict client (`_strict_response_validation`): the
objects Tunery answers with are the SDK's own, field for field."""

from __future__ import annotations

import pytest
from openai import OpenAI

from tests.support.evals import DOCUMENTED, LABEL_SCHEMA, custom, row, wait_for_run
from tests.support.processes import LiveService

pytestmark = pytest.mark.e2e


def test_every_evals_call_answers_the_sdks_own_objects(client: OpenAI, live: LiveService) -> None:
    criterion = DOCUMENTED["string_check"][0]
    made = client.evals.create(
        name="conformance", data_source_config=custom(LABEL_SCHEMA), testing_criteria=[criterion]
    )  # type: ignore[arg-type, list-item]
    similar = client.evals.create(
        data_source_config=custom(), testing_criteria=[DOCUMENTED["text_similarity"][0]]
    )  # type: ignore[arg-type, list-item]
    assert similar.testing_criteria[0].pass_threshold == 0.9  # type: ignore[union-attr]
    assert client.evals.retrieve(made.id).data_source_config.type == "custom"
    assert made.id in [e.id for e in client.evals.list(limit=1)]
    assert client.evals.update(made.id, metadata={"k": "v"}).metadata == {"k": "v"}
    content = [row({"label": "a"}, "a"), row({"label": 1}, "a")]
    run = client.evals.runs.create(
        made.id,
        name="r",
        data_source={"type": "jsonl", "source": {"type": "file_content", "content": content}},
    )  # type: ignore[arg-type]
    done = wait_for_run(client, made.id, run.id, log=live.log_tail)
    assert done.status == "completed" and done.result_counts.errored == 1
    assert [r.id for r in client.evals.runs.list(made.id, status="completed")] == [run.id]
    items = list(client.evals.runs.output_items.list(run.id, eval_id=made.id))
    assert [item.status for item in items] == ["pass", "errored"]
    assert items[0].results[0].passed and items[0].sample.usage.total_tokens == 0
    one = client.evals.runs.output_items.retrieve(items[1].id, eval_id=made.id, run_id=run.id)
    assert one.sample.error.code == "invalid_item"
    queued = client.evals.runs.create(
        made.id, data_source={"type": "jsonl", "source": {"type": "file_content", "content": content}}
    )  # type: ignore[arg-type]
    assert queued.error.code == "" and queued.report_url.endswith(queued.id)
    assert client.evals.runs.delete(run.id, eval_id=made.id).run_id == run.id
    assert client.evals.delete(made.id).deleted
    assert client.evals.delete(similar.id).eval_id == similar.id
