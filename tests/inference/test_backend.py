"""The embedded backend's generation on the tiny model, in-process: OpenAI's rules, one by one."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from api.config import Settings
from api.models.store import ModelStore
from tests.conftest import TINY_MODEL
from tests.inference.conftest import classifier_artifact, random_lora_artifact
from worker.inference.engine import Done
from worker.inference.generation import Cancelled, Piece, SamplingParams, generate_choice
from worker.inference.models import ModelPool
from worker.inference.server import create_inference_app

QUESTION = [{"role": "user", "content": "What colour is a lime?"}]


def chat(server: TestClient, **fields: Any) -> dict[str, Any]:
    response = server.post("/v1/chat/completions", json={"model": TINY_MODEL, "messages": QUESTION, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def stream(server: TestClient, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with server.stream("POST", path, json={**body, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: ") :] for line in response.iter_lines() if line]
    assert events[-1] == "[DONE]"
    return [json.loads(event) for event in events[:-1]]


def content(answer: dict[str, Any], index: int = 0) -> str:
    return answer["choices"][index]["message"]["content"]


class TestGreedy:
    def test_the_same_request_gives_the_same_answer(self, server: TestClient) -> None:
        first, second = (chat(server, temperature=0, max_tokens=12) for _ in range(2))
        assert content(first) == content(second) and content(first)

    def test_reaching_max_tokens_finishes_with_length(self, server: TestClient) -> None:
        answer = chat(server, temperature=0, max_completion_tokens=7)
        assert answer["choices"][0]["finish_reason"] == "length"
        assert answer["usage"]["completion_tokens"] == 7
        assert answer["usage"]["total_tokens"] == answer["usage"]["prompt_tokens"] + 7


class TestStopStrings:
    def test_text_ends_before_the_stop_string(self, server: TestClient) -> None:
        full = content(chat(server, temperature=0, max_tokens=20))
        stop = full[5:8]
        answer = chat(server, temperature=0, max_tokens=20, stop=[stop, "never-appears"])
        assert content(answer) == full[: full.index(stop)]
        assert answer["choices"][0]["finish_reason"] == "stop"

    def test_a_stop_string_split_across_tokens_is_never_streamed(self, server: TestClient) -> None:
        full = content(chat(server, temperature=0, max_tokens=20))
        stop = full[4:10]
        chunks = stream(
            server,
            "/v1/chat/completions",
            {"model": TINY_MODEL, "messages": QUESTION, "temperature": 0, "max_tokens": 20, "stop": stop},
        )
        streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        assert streamed == full[: full.index(stop)]


class TestEndOfTurn:
    def test_an_end_of_turn_token_stops_with_stop_and_is_not_in_the_text(self, tiny_model_dir: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
        prompt = tokenizer("What colour is a lime?")["input_ids"]
        params = SamplingParams(max_tokens=10, temperature=0)
        pieces: list[Piece] = []
        free = generate_choice(model, tokenizer, prompt, params, [0], threading.Event(), pieces.append)
        assert free.finish_reason == "length"
        free_text = "".join(piece.text for piece in pieces)
        # Declare the third greedy token an end of turn: generation stops there, leaving its text out.
        third = model.generate(input_ids=torch.tensor([prompt]), max_new_tokens=3, do_sample=False)[0, -1]
        pieces.clear()
        stopped = generate_choice(
            model, tokenizer, prompt, params, [int(third)], threading.Event(), pieces.append
        )
        assert stopped.finish_reason == "stop"
        assert stopped.completion_tokens == 3
        two_tokens = tokenizer.decode(
            model.generate(input_ids=torch.tensor([prompt]), max_new_tokens=2, do_sample=False)[
                0, len(prompt) :
            ]
        )
        assert "".join(piece.text for piece in pieces) == two_tokens
        assert free_text.startswith(two_tokens)


class TestStreaming:
    def test_chunks_add_up_to_the_whole_answer_with_usage_last(self, server: TestClient) -> None:
        whole = chat(server, temperature=0, max_tokens=15)
        chunks = stream(
            server,
            "/v1/chat/completions",
            {
                "model": TINY_MODEL,
                "messages": QUESTION,
                "temperature": 0,
                "max_tokens": 15,
                "stream_options": {"include_usage": True},
            },
        )
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        assert {c["id"] for c in chunks} == {chunks[0]["id"]}
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        assert text == content(whole)
        assert chunks[-2]["choices"][0]["finish_reason"] == "length"
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]
        assert all(c["usage"] is None for c in chunks[:-1])

    def test_legacy_completions_stream_the_same_text(self, server: TestClient) -> None:
        body = {"model": TINY_MODEL, "prompt": "The quick brown", "temperature": 0, "max_tokens": 10}
        whole = server.post("/v1/completions", json=body).json()
        chunks = stream(server, "/v1/completions", body)
        assert "".join(c["choices"][0]["text"] for c in chunks) == whole["choices"][0]["text"]
        assert whole["object"] == "text_completion" and whole["choices"][0]["finish_reason"] == "length"


class TestSampling:
    def test_the_same_seed_gives_the_same_answer(self, server: TestClient) -> None:
        answers = [content(chat(server, temperature=1.0, seed=seed, max_tokens=12)) for seed in (7, 7, 8)]
        assert answers[0] == answers[1]
        assert answers[0] != answers[2]

    def test_n_gives_n_choices_counted_in_usage(self, server: TestClient) -> None:
        answer = chat(server, n=3, seed=1, max_tokens=6)
        assert [c["index"] for c in answer["choices"]] == [0, 1, 2]
        assert len({content(answer, i) for i in range(3)}) > 1
        assert answer["usage"]["completion_tokens"] == 18


class TestLogprobs:
    def test_greedy_tokens_are_their_steps_most_likely(self, server: TestClient) -> None:
        answer = chat(server, temperature=0, max_tokens=5, logprobs=True, top_logprobs=3)
        tokens = answer["choices"][0]["logprobs"]["content"]
        assert len(tokens) == 5
        for token in tokens:
            assert len(token["top_logprobs"]) == 3
            assert token["logprob"] <= 0
            assert token["top_logprobs"][0]["logprob"] == pytest.approx(token["logprob"])
        assert "".join(t["token"] for t in tokens) == content(answer)


class TestCancel:
    def test_a_cancelled_generation_stops_between_tokens(self, tiny_model_dir: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
        cancelled = threading.Event()
        pieces: list[Piece] = []

        def emit(piece: Piece) -> None:
            pieces.append(piece)
            if len(pieces) == 3:
                cancelled.set()

        params = SamplingParams(max_tokens=200, temperature=0, top_logprobs=0)
        with pytest.raises(Cancelled):
            generate_choice(model, tokenizer, [5, 6, 7], params, [0], cancelled, emit)
        assert len(pieces) == 3


class TestCapacity:
    def test_past_the_queue_requests_get_429_with_retry_after(self, server: TestClient) -> None:
        engine = server.app.state.engine  # type: ignore[attr-defined]
        release = threading.Event()
        blocker = server.portal.call(lambda: _submit_blocking(engine, release))  # type: ignore[union-attr]
        try:
            response = server.post("/v1/chat/completions", json={"model": TINY_MODEL, "messages": QUESTION})
            assert response.status_code == 429
            assert response.headers["retry-after"] == "1"
            assert response.json()["error"]["type"] == "rate_limit_error"
        finally:
            release.set()
        assert isinstance(server.portal.call(blocker.get), Done)  # type: ignore[union-attr]
        assert chat(server, temperature=0, max_tokens=2)["choices"]


async def _submit_blocking(engine: Any, release: threading.Event) -> Any:
    return engine.submit(lambda pool, emit, cancelled: release.wait(10))


class TestFineTunedModels:
    def test_adapters_load_on_demand_and_again_after_eviction(
        self, server: TestClient, backend_settings: Settings, tiny_model_dir: Path
    ) -> None:
        pool = server.app.state.engine.pool  # type: ignore[attr-defined]
        first = random_lora_artifact(backend_settings, tiny_model_dir, "ftjob-first", seed=1)
        second = random_lora_artifact(backend_settings, tiny_model_dir, "ftjob-second", seed=2)

        def ask(artifact: Path | None) -> str:
            target = {"base_model": TINY_MODEL, "artifact_dir": str(artifact) if artifact else None}
            return content(chat(server, temperature=0, max_tokens=10, target=target))

        base = ask(None)
        loads = pool.loads
        with_first = ask(first)
        assert with_first != base
        assert ask(second) not in (base, with_first)
        assert pool.loaded() == [str(second)]  # TUNERY_INFERENCE_MAX_ADAPTERS=1: the first was evicted
        assert ask(first) == with_first
        assert pool.loads == loads + 3
        assert ask(None) == base  # the base model answers as itself beside its adapters

    def test_an_artifact_outside_the_data_directory_is_refused(
        self, server: TestClient, tmp_path: Path
    ) -> None:
        target = {"base_model": TINY_MODEL, "artifact_dir": str(tmp_path)}
        response = server.post(
            "/v1/chat/completions", json={"model": "ft:x", "messages": QUESTION, "target": target}
        )
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "model_not_found"

    def test_a_classifier_scores_every_label(
        self, server: TestClient, backend_settings: Settings, tiny_model_dir: Path
    ) -> None:
        artifact = classifier_artifact(backend_settings, tiny_model_dir, "ftjob-classifier")
        target = {"base_model": TINY_MODEL, "artifact_dir": str(artifact)}
        response = server.post(
            "/v1/classifications",
            json={"model": "ft:clf", "input": ["lime", "banana"], "target": target},
        )
        assert response.status_code == 200, response.text
        results = response.json()["data"]
        assert [r["index"] for r in results] == [0, 1]
        for result in results:
            assert set(result["scores"]) == {"sour", "sweet"}
            assert sum(result["scores"].values()) == pytest.approx(1, abs=1e-4)
            assert result["label"] == max(result["scores"], key=result["scores"].get)
        chat_response = server.post(
            "/v1/chat/completions", json={"model": "ft:clf", "messages": QUESTION, "target": target}
        )
        assert chat_response.status_code == 400


class _SlowPool(ModelPool):
    """A real pool whose load of one base model waits until the test lets it finish."""

    def __init__(self, slow_path: Path, *args: Any) -> None:
        super().__init__(*args)
        self.slow_path, self.loading, self.release = slow_path, threading.Event(), threading.Event()

    def _load_base_model(self, path: Path) -> Any:
        if path == self.slow_path:
            self.loading.set()
            assert self.release.wait(60)
        return super()._load_base_model(path)


class TestLoading:
    def test_a_loaded_model_answers_while_another_is_still_loading(
        self, tmp_path: Path, tiny_model_dir: Path
    ) -> None:
        settings = Settings(data_dir=tmp_path, inference_max_adapters=1, inference_max_queue=4)
        store = ModelStore(settings.models_path)
        store.import_directory(tiny_model_dir, TINY_MODEL)
        slow = store.import_directory(tiny_model_dir, "slow/model")
        pool = _SlowPool(slow.path, store, settings.artifacts_path, 1)
        with TestClient(create_inference_app(settings, pool)) as server:
            assert chat(server, temperature=0, max_tokens=2)["choices"]  # the tiny base is loaded
            answers: list[Any] = []
            slow_request = threading.Thread(
                target=lambda: answers.append(
                    server.post(
                        "/v1/chat/completions",
                        json={"model": "slow/model", "messages": QUESTION, "max_tokens": 2},
                    )
                )
            )
            slow_request.start()
            try:
                assert pool.loading.wait(30)
                assert chat(server, temperature=0, max_tokens=2)["choices"]  # not behind the load
                assert not answers
            finally:
                pool.release.set()
                slow_request.join(60)
            assert answers[0].status_code == 200, answers[0].text
