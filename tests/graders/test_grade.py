"""graders.grade: each type on OpenAI's documented examples, templates, formulas, errors as results."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from graders import Context, grade, item_fields, parse_grader, validate
from graders.formula import FormulaError, evaluate
from graders.judges import JudgeAnswer
from graders.templates import TemplateError, render, sample_of
from tests.support.openai_graders import GUIDE_MULTI, GUIDE_PYTHON, GUIDE_STRING_CHECK

STRING_CHECK = GUIDE_STRING_CHECK
PYTHON_SOURCE = GUIDE_PYTHON["source"]
MULTI = GUIDE_MULTI


def run(grader: dict, sample: str, item: dict, context: Context | None = None):
    return grade(parse_grader(grader), sample, item, context)


class TestStringCheck:
    @pytest.mark.parametrize(
        ("operation", "output", "reward"),
        [
            ("eq", "Paris", 1.0),
            ("eq", "paris", 0.0),
            ("ne", "Rome", 1.0),
            ("ne", "Paris", 0.0),
            ("like", "It is Paris.", 1.0),
            ("like", "It is paris.", 0.0),
            ("ilike", "It is PARIS.", 1.0),
            ("ilike", "It is Rome.", 0.0),
        ],
    )
    def test_operations(self, operation: str, output: str, reward: float) -> None:
        result = run({**STRING_CHECK, "operation": operation}, output, {"label": "Paris"})
        assert result.reward == reward
        assert not result.errors.any()

    def test_missing_item_field_is_an_invalid_variable_error_not_a_crash(self) -> None:
        result = run(STRING_CHECK, "Paris", {"answer": "Paris"})
        assert result.reward == 0.0
        assert result.errors.invalid_variable_error
        assert "item.label" in result.errors.details[0]


class TestTextSimilarity:
    @pytest.mark.parametrize(
        "metric",
        [
            "fuzzy_match",
            "bleu",
            "gleu",
            "meteor",
            "rouge_1",
            "rouge_2",
            "rouge_3",
            "rouge_4",
            "rouge_5",
            "rouge_l",
        ],
    )
    def test_identical_text_scores_one_and_unrelated_text_scores_low(self, metric: str) -> None:
        grader = {
            "type": "text_similarity",
            "name": "similar",
            "input": "{{sample.output_text}}",
            "reference": "{{item.reference}}",
            "evaluation_metric": metric,
        }
        reference = "the quick brown fox jumps over the lazy dog near the river bank today"
        same = run(grader, reference, {"reference": reference})
        other = run(grader, "completely unrelated words appear here instead", {"reference": reference})
        assert same.reward == pytest.approx(1.0, abs=1e-3), same
        assert other.reward < 0.5
        assert not same.errors.any()

    def test_meteor_matches_synonyms_through_wordnet(self) -> None:
        grader = {
            "type": "text_similarity",
            "name": "m",
            "input": "{{sample.output_text}}",
            "reference": "{{item.r}}",
            "evaluation_metric": "meteor",
        }
        synonym = run(grader, "the auto is red", {"r": "the car is red"}).reward
        unrelated = run(grader, "the banana is red", {"r": "the car is red"}).reward
        assert synonym > unrelated

    def test_pass_threshold_decides_passed(self) -> None:
        grader = {
            "type": "text_similarity",
            "name": "f",
            "input": "{{sample.output_text}}",
            "reference": "hello world",
            "evaluation_metric": "fuzzy_match",
            "pass_threshold": 0.8,
        }
        assert run(grader, "hello world", {}).passed is True
        assert run(grader, "goodbye", {}).passed is False

    def test_cosine_uses_the_embedding_it_is_given(self) -> None:
        vectors = {"a": [1.0, 0.0], "b": [0.6, 0.8]}
        context = Context(embed=lambda texts: [vectors[t] for t in texts])
        grader = {
            "type": "text_similarity",
            "name": "c",
            "input": "{{sample.output_text}}",
            "reference": "b",
            "evaluation_metric": "cosine",
        }
        assert run(grader, "a", {}, context).reward == pytest.approx(0.6)


class TestMulti:
    def test_documented_example_averages_its_graders(self) -> None:
        sample = json.dumps({"name": "Jane Doe", "email": "jane@example.com"})
        result = run(MULTI, sample, {"name": "Jane Doe", "email": "jane@example.com"})
        assert result.reward == pytest.approx(1.0)
        assert result.sub_rewards == {"name": pytest.approx(1.0), "email": 1.0}
        wrong_email = run(MULTI, sample, {"name": "Jane Doe", "email": "john@example.com"})
        assert wrong_email.reward == pytest.approx(0.5)

    def test_multi_with_python_and_text_similarity_parts(self) -> None:
        grader = {
            "type": "multi",
            "name": "both",
            "graders": {
                "exact": {"type": "python", "name": "exact", "source": PYTHON_SOURCE},
                "rouge": {
                    "type": "text_similarity",
                    "name": "rouge",
                    "input": "{{sample.output_text}}",
                    "reference": "{{item.reference_answer}}",
                    "evaluation_metric": "rouge_1",
                },
            },
            "calculate_output": "0.5 * exact + 0.5 * rouge",
        }
        result = run(grader, "Paris", {"reference_answer": "Paris"})
        assert result.reward == pytest.approx(1.0), result.errors.details
        assert set(result.sub_rewards) == {"exact", "rouge"}

    def test_sdk_shape_one_grader_stands_under_its_name(self) -> None:
        grader = parse_grader(
            {**MULTI, "graders": MULTI["graders"]["email"], "calculate_output": "email * 2"}
        )
        assert list(grader.graders) == ["email"]

    def test_formula_naming_no_grader_is_refused(self) -> None:
        with pytest.raises(FormulaError, match="'phone'"):
            validate(parse_grader({**MULTI, "calculate_output": "name + phone"}))


class TestFormula:
    @pytest.mark.parametrize(
        ("formula", "value"),
        [
            ("a + b", 3.0),
            ("(a + b) / 2", 1.5),
            ("max(a, b) - min(a, b)", 1.0),
            ("a if b > 1 else 0", 1.0),
            ("-a ** 2", -1.0),
            ("a > 0 and b > 0", 1.0),
        ],
    )
    def test_arithmetic(self, formula: str, value: float) -> None:
        assert evaluate(formula, {"a": 1.0, "b": 2.0}) == value

    @pytest.mark.parametrize(
        "formula",
        [
            "__import__('os').system('true')",
            "a.__class__",
            "[a][0]",
            "(lambda: 1)()",
            "open('x')",
            "a ** 10000",
            "1 / 0",
        ],
    )
    def test_refuses_everything_but_arithmetic(self, formula: str) -> None:
        with pytest.raises(FormulaError):
            evaluate(formula, {"a": 2.0})


class TestModelGraders:
    def judge(self, reply: str, seen: list):
        def answer(model: str, messages: list[dict[str, str]], sampling: dict) -> JudgeAnswer:
            seen.append((model, messages, sampling))
            return JudgeAnswer(reply, {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12})

        return Context(judge=answer)

    def test_score_model_reads_the_number_within_range(self) -> None:
        seen: list = []
        grader = {
            "type": "score_model",
            "name": "s",
            "model": "tiny",
            "range": [0, 10],
            "input": [{"role": "user", "content": "Rate {{sample.output_text}} against {{item.ref}}"}],
            "sampling_params": {"temperature": 0.5, "max_completions_tokens": 5},
        }
        result = run(grader, "Paris", {"ref": "Paris"}, self.judge("Score: 7.5", seen))
        assert result.reward == 7.5
        assert result.token_usage == {
            "tiny": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
        }
        _model, messages, sampling = seen[0]
        assert messages[-1]["content"] == "Rate Paris against Paris"
        assert sampling == {"temperature": 0.5, "max_tokens": 5}

    def test_a_sample_with_nul_reaches_the_judge_as_a_body_the_chat_route_takes(self) -> None:
        # A random model's answer can hold NUL; the chat route refuses NUL in any body, so the
        # judge must be sent the sample with NUL replaced, or every such answer errors.
        from api.inference.schemas import ChatCompletionRequest

        seen: list = []
        grader = {
            "type": "score_model",
            "name": "s",
            "model": "tiny",
            "input": [{"role": "user", "content": "Rate {{sample.output_text}}"}],
        }
        result = run(grader, "a\x00b", {}, self.judge("1", seen))
        assert result.reward == 1.0
        _model, messages, _sampling = seen[0]
        assert messages[-1]["content"] == "Rate a\ufffdb"
        ChatCompletionRequest.model_validate({"model": "tiny", "messages": messages})

    def test_label_model_rewards_passing_labels(self) -> None:
        grader = {
            "type": "label_model",
            "name": "l",
            "model": "tiny",
            "labels": ["good", "bad"],
            "passing_labels": ["good"],
            "input": [{"role": "user", "content": "{{sample.output_text}}"}],
        }
        assert run(grader, "x", {}, self.judge("good", [])).reward == 1.0
        assert run(grader, "x", {}, self.judge("Bad.", [])).reward == 0.0
        unreadable = run(grader, "x", {}, self.judge("no idea", []))
        assert unreadable.errors.model_grader_parse_error

    def test_no_judge_is_a_server_error(self) -> None:
        grader = {
            "type": "score_model",
            "name": "s",
            "model": "tiny",
            "input": [{"role": "user", "content": "x"}],
        }
        result = run(grader, "x", {})
        assert result.errors.model_grader_server_error


class TestValidation:
    def test_unknown_field_and_bad_operation_are_refused(self) -> None:
        with pytest.raises(ValidationError, match="operation"):
            parse_grader({**STRING_CHECK, "operation": "contains"})
        with pytest.raises(ValidationError, match="extra"):
            parse_grader({**STRING_CHECK, "extra": 1})

    def test_passing_labels_must_be_labels(self) -> None:
        with pytest.raises(ValidationError, match="passing_labels"):
            parse_grader(
                {
                    "type": "label_model",
                    "name": "l",
                    "model": "m",
                    "labels": ["a"],
                    "passing_labels": ["b"],
                    "input": [{"role": "user", "content": "x"}],
                }
            )

    def test_malformed_template_is_refused(self) -> None:
        with pytest.raises(TemplateError, match="item"):
            validate(parse_grader({**STRING_CHECK, "input": "{{ output_text }}"}))

    def test_python_source_must_compile(self) -> None:
        with pytest.raises(ValueError, match="compile"):
            validate(parse_grader({"type": "python", "name": "p", "source": "def grade(:"}))

    def test_item_fields_lists_what_the_lines_need(self) -> None:
        assert item_fields(parse_grader(MULTI)) == {"name", "email"}
        nested = {**STRING_CHECK, "reference": "{{item.fruit.colours.0}}"}
        assert item_fields(parse_grader(nested)) == {"fruit.colours.0"}


class TestTemplates:
    def test_values_render_as_text_or_json(self) -> None:
        namespaces = {"item": {"n": 3, "tags": ["a"], "s": "x"}, "sample": sample_of('{"k": 1}')}
        assert (
            render("{{ item.n }}/{{item.tags}}/{{item.s}}/{{sample.output_json.k}}", namespaces)
            == '3/["a"]/x/1'
        )

    def test_non_json_sample_has_no_output_json(self) -> None:
        assert "output_json" not in sample_of("plain")


@pytest.mark.slow
def test_cosine_with_the_embedding_model_the_package_ships() -> None:
    grader = {
        "type": "text_similarity",
        "name": "c",
        "input": "{{sample.output_text}}",
        "reference": "{{item.r}}",
        "evaluation_metric": "cosine",
    }
    close = run(grader, "A cat was sitting on a mat", {"r": "The cat sat on the mat"})
    far = run(grader, "Quarterly revenue rose by four percent", {"r": "The cat sat on the mat"})
    assert not close.errors.any(), close.errors.details
    assert close.reward > 0.8 > far.reward
