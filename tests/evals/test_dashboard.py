"""The ops dashboard shows an eval's runs side by side: each run's pass rate per criterion, and the
items where two runs differ. The runs are graded by the worker's own code, in this process; each
run's end is owed to the project's webhook endpoints as OpenAI's `eval.run.succeeded`."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.auth.service import create_key
from api.db import session_scope
from api.tables import WebhookDelivery
from tests.support.evals import LABEL_SCHEMA, custom, row
from tests.support.openai_graders import GUIDE_STRING_CHECK
from worker.evals.run import run_eval
from worker.runtime import Runtime

pytestmark = pytest.mark.integration


def grade_on_this_worker(app: Any, run_id: str) -> None:
    state = app.state
    run_eval(Runtime(state.settings, state.sessionmaker, state.file_storage, state.model_store), run_id)


def test_the_dashboard_shows_two_runs_side_by_side(app: Any, client: TestClient, sdk: openai.OpenAI) -> None:
    # A literal public address: registering it resolves nothing over the network.
    hook = {"url": "https://8.8.8.8/tunery", "events": ["eval.run.succeeded", "eval.run.canceled"]}
    assert client.post("/v1/webhooks", json=hook).status_code == 200
    made = sdk.evals.create(
        name="labels", data_source_config=custom(LABEL_SCHEMA), testing_criteria=[GUIDE_STRING_CHECK]
    )  # type: ignore[arg-type, list-item]
    items = [{"label": "positive"}, {"label": "negative"}, {"label": "positive"}]
    runs = []
    for name, answers in (
        ("base", ["positive", "positive", "negative"]),
        ("tuned", ["positive", "negative", "positive"]),
    ):
        content = [row(item, answer) for item, answer in zip(items, answers, strict=True)]
        source = {"type": "file_content", "content": content}
        runs.append(
            sdk.evals.runs.create(made.id, name=name, data_source={"type": "jsonl", "source": source})
        )  # type: ignore[arg-type]
    for run in runs:
        grade_on_this_worker(app, run.id)
        assert sdk.evals.runs.retrieve(run.id, eval_id=made.id).status == "completed"

    with session_scope(app.state.sessionmaker) as session:
        owed = session.scalars(select(WebhookDelivery.payload).order_by(WebhookDelivery.pk)).all()
        admin = create_key(session, is_admin=True)
    assert [(event["type"], event["data"]["id"]) for event in owed] == [
        ("eval.run.succeeded", runs[0].id),
        ("eval.run.succeeded", runs[1].id),
    ]
    with TestClient(app) as browser:
        assert (
            browser.post("/dashboard/sign-in", data={"key": admin}, follow_redirects=False).status_code == 303
        )
        listing = browser.get("/dashboard/evals")
        assert listing.status_code == 200 and made.id in listing.text
        page = browser.get(f"/dashboard/evals/{made.id}", params=[("run", runs[0].id), ("run", runs[1].id)])
    assert page.status_code == 200
    html = page.text
    base_row = html[html.index(f'data-run="{runs[0].id}"') :].split("</tr>")[0]
    tuned_row = html[html.index(f'data-run="{runs[1].id}"') :].split("</tr>")[0]
    assert '<td class="rate">33%</td>' in base_row and '<td class="rate">100%</td>' in tuned_row
    differences = html[html.index('id="differences"') :]
    assert "(2 items)" in html  # items 1 and 2 differ, item 0 does not
    assert (
        'data-item="1"' in differences
        and 'data-item="2"' in differences
        and 'data-item="0"' not in differences
    )
