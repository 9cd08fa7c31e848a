"""Eval runs through real `tunery api` and `tunery worker` processes, driven by the official SDK: jsonl
runs give the documented results of OpenAI's documented grader examples, with no model; items that
do not match the schema are errored items naming the field; a canceled run stops; a run whose worker
is killed is finished by another, each item graded once."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from api.config import Settings
from tests.support.evals import DOCUMENTED, LABEL_SCHEMA, custom, row, wait_for_run
from tests.support.openai_graders import GUIDE_STRING_CHECK
from tests.support.processes import Cluster, LiveService, live_service

pytestmark = pytest.mark.e2e
SLOW_GRADER = {
    "type": "python",
    "name": "slow",
    "source": "import time\n\ndef grade(sample, item) -> float:\n    time.sleep(1.0)\n    return 1.0\n",
}


@pytest.fixture
def backend() -> str:
    # The runs' rows are the subject, not the database's dialect: once, on the production one.
    return "postgres"


@pytest.fixture
def service(settings: Settings, tmp_path: Path) -> Iterator[LiveService]:
    with live_service(settings, tmp_path / "logs") as running:
        yield running


def sdk(service: LiveService) -> OpenAI:
    return OpenAI(base_url=service.base_url, api_key=service.api_key, max_retries=0)


def test_jsonl_runs_give_the_documented_results_of_each_grader(service: LiveService) -> None:
    client = sdk(service)
    runs = {}
    for name, (criterion, schema, rows, _) in DOCUMENTED.items():
        made = client.evals.create(name=name, data_source_config=custom(schema), testing_criteria=[criterion])  # type: ignore[arg-type, list-item]
        source = {"type": "file_content", "content": rows}
        runs[name] = (
            made.id,
            client.evals.runs.create(made.id, data_source={"type": "jsonl", "source": source}).id,
        )  # type: ignore[arg-type]
    for name, (eval_id, run_id) in runs.items():
        expected = DOCUMENTED[name][3]
        run = wait_for_run(client, eval_id, run_id, log=service.log_tail)
        assert run.status == "completed", (name, run.error, service.log_tail())
        assert run.model == "" and run.error.code == ""
        counts = run.result_counts
        assert (counts.total, counts.passed, counts.failed, counts.errored) == (
            len(expected),
            expected.count("pass"),
            expected.count("fail"),
            0,
        ), name
        criterion = run.per_testing_criteria_results[0]
        assert (criterion.passed, criterion.failed) == (expected.count("pass"), expected.count("fail")), name
        output = list(client.evals.runs.output_items.list(run_id, eval_id=eval_id, limit=1))
        assert [item.status for item in output] == expected, name
        assert [item.datasource_item_id for item in output] == list(range(len(expected)))
        assert output[0].sample.output[0].content == DOCUMENTED[name][2][0]["sample"]["output_text"]
        assert output[0].results[0].name == DOCUMENTED[name][0]["name"]
        passing = list(client.evals.runs.output_items.list(run_id, eval_id=eval_id, status="pass"))
        assert len(passing) == expected.count("pass")
        retrieved = client.evals.runs.output_items.retrieve(output[-1].id, eval_id=eval_id, run_id=run_id)
        assert retrieved.datasource_item == DOCUMENTED[name][2][-1]["item"]
    # The documented scores themselves: the python grader's fuzzy ratio and the multi grader's mean.
    python_items = list(client.evals.runs.output_items.list(runs["python"][1], eval_id=runs["python"][0]))
    assert (
        python_items[0].results[0].score == pytest.approx(1.0)
        and 0.5 < python_items[1].results[0].score < 1.0
    )
    multi_items = list(client.evals.runs.output_items.list(runs["multi"][1], eval_id=runs["multi"][0]))
    assert [item.results[0].score for item in multi_items] == [pytest.approx(1.0), pytest.approx(0.5)]


def test_items_that_do_not_match_the_schema_are_errored_items_naming_the_field(
    service: LiveService, tmp_path: Path
) -> None:
    client = sdk(service)
    made = client.evals.create(data_source_config=custom(LABEL_SCHEMA), testing_criteria=[GUIDE_STRING_CHECK])  # type: ignore[arg-type, list-item]
    lines = [
        json.dumps(row({"label": "positive"}, "positive")),
        json.dumps(row({"label": 3}, "positive")),
        "not json",
        json.dumps(
            {"label": "positive"}
        ),  # an item without a sample: the grader can't read sample.output_text
    ]
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(lines) + "\n")
    uploaded = client.files.create(file=path.open("rb"), purpose="evals")
    run = client.evals.runs.create(
        made.id, data_source={"type": "jsonl", "source": {"type": "file_id", "id": uploaded.id}}
    )  # type: ignore[arg-type]
    run = wait_for_run(client, made.id, run.id, log=service.log_tail)
    assert run.status == "completed", (run.error, service.log_tail())
    counts = run.result_counts
    assert (counts.total, counts.passed, counts.failed, counts.errored) == (4, 1, 0, 3)
    output = list(client.evals.runs.output_items.list(run.id, eval_id=made.id))
    assert [item.status for item in output] == ["pass", "errored", "errored", "errored"]
    assert output[1].sample.error.code == "invalid_item"
    assert output[1].sample.error.message.startswith("item.label: 3 is not of type 'string'")
    assert "line 3" in output[2].sample.error.message
    assert "sample.output_text" in output[3].results[0].error  # type: ignore[attr-defined]


def test_a_canceled_run_stops(service: LiveService) -> None:
    client = sdk(service)
    made = client.evals.create(data_source_config=custom(), testing_criteria=[SLOW_GRADER])  # type: ignore[arg-type, list-item]
    content = [row({"n": n}, "x") for n in range(160)]  # 10 batches of 16, a second each at the least
    run = client.evals.runs.create(
        made.id, data_source={"type": "jsonl", "source": {"type": "file_content", "content": content}}
    )  # type: ignore[arg-type]
    deadline = time.monotonic() + 60
    while client.evals.runs.retrieve(run.id, eval_id=made.id).status == "queued":
        assert time.monotonic() < deadline, service.log_tail()
        time.sleep(0.2)
    assert client.evals.runs.cancel(run.id, eval_id=made.id).status == "canceled"
    time.sleep(4)  # longer than a batch takes: an unstopped run would have recorded more by now
    recorded = len(list(client.evals.runs.output_items.list(run.id, eval_id=made.id, limit=100)))
    time.sleep(4)
    again = client.evals.runs.retrieve(run.id, eval_id=made.id)
    assert again.status == "canceled"
    assert (
        len(list(client.evals.runs.output_items.list(run.id, eval_id=made.id, limit=100))) == recorded < 160
    )
    assert again.result_counts.passed == recorded


def test_a_run_whose_worker_is_killed_is_finished_by_another(settings: Settings, tmp_path: Path) -> None:
    cluster = Cluster(
        settings,
        tmp_path / "logs",
        {"TUNERY_LEASE_SECONDS": "4", "TUNERY_HEARTBEAT_SECONDS": "1", "TUNERY_RECONCILE_SECONDS": "1"},
    )
    try:
        cluster.start_api()
        first = cluster.start_worker()
        client = OpenAI(base_url=cluster.base_url, api_key=cluster.api_key, max_retries=0)
        made = client.evals.create(data_source_config=custom(), testing_criteria=[SLOW_GRADER])  # type: ignore[arg-type, list-item]
        content = [row({"n": n}, "x") for n in range(64)]
        run = client.evals.runs.create(
            made.id, data_source={"type": "jsonl", "source": {"type": "file_content", "content": content}}
        )  # type: ignore[arg-type]
        deadline = time.monotonic() + 90
        while client.evals.runs.retrieve(run.id, eval_id=made.id).result_counts.passed == 0:
            assert time.monotonic() < deadline, cluster.log_tail()
            time.sleep(0.2)
        first.send_signal(signal.SIGKILL)  # lost mid-run: no hand-back, only its lease running out
        first.wait()
        cluster.start_worker()
        done = wait_for_run(client, made.id, run.id, timeout=180, log=cluster.log_tail)
        assert done.status == "completed", (done.error, cluster.log_tail())
        assert done.result_counts.total == done.result_counts.passed == 64
        ids = [
            item.datasource_item_id
            for item in client.evals.runs.output_items.list(run.id, eval_id=made.id, limit=100)
        ]
        assert ids == list(range(64))  # every item once
    finally:
        cluster.stop_all()
