"""Reinforcement fine-tuning on OpenAI's reinforcement format, through TRL's GRPOTrainer.

One line per prompt (catalog/formats/reinforcement.py): {"messages": [prompt...], ...fields}. For each
prompt the model itself samples `num_generations` answers (4 x compute_multiplier), the job's grader
(graders/) rewards each answer against the line (`item`), and GRPO raises the likelihood of the
answers that scored above their group's mean and lowers the others'. No reference model is kept
(TRL's default beta of 0): the group's own mean is the baseline.

The accuracy columns of the result file hold the mean reward; metrics events carry
train_reward_mean and train_reward_std, and valid_reward_mean every eval_interval steps, over the
first eval_samples prompts of the validation file. A grader that fails on an answer (a python
grader's exception or limit) gives it 0 and the first such error of each step becomes a warning
event: the job goes on. score_model and label_model graders ask their judge through Tunery's
inference backend, at the endpoints the worker resolved into the spec.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from catalog.formats import ReinforcementExample
from graders import Context, GradeResult, grade, parse_grader
from graders.embedding import embed_here
from graders.remote_judge import EndpointJudge
from graders.sandbox import Limits, Sandbox
from graders.types import model_graders
from worker.training import distributed
from worker.training.data import DatasetError, read_examples, template_message
from worker.training.methods import PreparedData, supervised_only_settings
from worker.training.progress import ProgressWriter
from worker.training.rollouts import detect as detect_rollouts
from worker.training.spec import TrainingSpec

JUDGE_CONCURRENCY = 8
"""Answers graded at once by model graders: the embedded backend lets 16 wait (INFERENCE_MAX_QUEUE)."""


def prepare(spec: TrainingSpec, tokenizer: Any, progress: ProgressWriter) -> PreparedData:
    for ignored in supervised_only_settings(spec):
        progress.message(f"{ignored} applies to supervised training only; {spec.method} ignores it", "warn")
    training = read_prompts(spec.training_file, "training")
    validation = read_prompts(spec.validation_file, "validation") if spec.validation_file else None
    if validation:
        validation = validation[: spec.eval_samples]
    lengths = [_n_tokens(tokenizer, row["prompt"]) for row in training]
    answer_tokens = _answer_length(spec, lengths)
    if answer_tokens < spec.max_completion_tokens:
        progress.message(
            f"answers grow to at most {answer_tokens} tokens: max_seq_length {spec.recipe.max_seq_length} "
            f"less the longest prompt's {max(lengths)}"
        )
    # Each prompt is read once per sampled answer, and each answer may grow to answer_tokens.
    tokens = (sum(lengths) + len(training) * answer_tokens) * spec.num_generations
    progress.message(
        f"{len(training)} training prompts, {spec.num_generations} answers sampled per prompt"
        + (f"; {len(validation)} validation prompts every {spec.eval_interval} step(s)" if validation else "")
    )
    return PreparedData(
        train_dataset=Dataset.from_list(training),
        eval_dataset=Dataset.from_list(validation) if validation else None,
        n_examples=len(training),
        tokens_per_epoch=tokens,
        task="CAUSAL_LM",
        accuracy_key="reward",
        reward=RewardFunction(spec, progress),
        max_completion_tokens=answer_tokens,
    )


def make_trainer(
    spec: TrainingSpec,
    model: Any,
    tokenizer: Any,
    data: PreparedData,
    args: dict[str, Any],
    callbacks: list,
    progress: ProgressWriter,
) -> GRPOTrainer:
    group = spec.num_generations
    rollouts = detect_rollouts(spec.recipe.type)
    progress.message(rollouts.reason)
    args = {
        **args,
        # batch_size counts the step's prompts (shared among the processes of a distributed run, as
        # every method's batch is); each prompt brings its group of sampled answers.
        "per_device_train_batch_size": -(-spec.batch_size // distributed.world_size()) * group,
        "per_device_eval_batch_size": group,
        "eval_strategy": "steps" if data.eval_dataset is not None else "no",
        "eval_steps": spec.eval_interval,
    }
    config = GRPOConfig(
        **args,
        num_generations=group,
        max_completion_length=data.max_completion_tokens or spec.max_completion_tokens,
        # The answers must differ for GRPO to learn anything: plain sampling from the model.
        temperature=1.0,
        top_k=0,
        shuffle_dataset=True,
        **rollouts.config(),
    )
    return GRPOTrainer(
        model=model,
        reward_funcs=data.reward,
        args=config,
        train_dataset=data.train_dataset,
        eval_dataset=data.eval_dataset,
        processing_class=tokenizer,
        callbacks=callbacks,
    )


class RewardFunction:
    """GRPO's reward function: the job's grader on each sampled answer of the step.

    Model graders ask their judge over HTTP (the spec's `judges`, resolved by the worker): the step's
    answers are graded JUDGE_CONCURRENCY at a time, so the inference backend batches them.
    """

    def __init__(self, spec: TrainingSpec, progress: ProgressWriter) -> None:
        assert spec.grader is not None  # the spec refuses a reinforcement run without one
        self.grader = parse_grader(spec.grader)
        self.__name__ = f"grader:{self.grader.name}"  # TRL names the reward's metrics after it
        sandbox = dict(spec.grader_sandbox or {})
        hidden = [Path(path) for path in sandbox.pop("hidden", [])]
        self.context = Context(
            judge=EndpointJudge.from_spec(spec.judges or {}),
            embed=embed_here,
            sandbox=Sandbox(Limits(**sandbox), hidden=hidden),
        )
        self.concurrency = JUDGE_CONCURRENCY if model_graders(self.grader) else 1
        self.progress = progress

    def __call__(self, prompts: list, completions: list, item: list[str], **_: Any) -> list[float]:
        def one(pair: tuple[Any, str]) -> GradeResult:
            return grade(self.grader, _answer_text(pair[0]), json.loads(pair[1]), self.context)

        pairs = list(zip(completions, item, strict=True))
        if self.concurrency > 1:
            with ThreadPoolExecutor(self.concurrency) as pool:
                results = list(pool.map(one, pairs))
        else:
            results = [one(pair) for pair in pairs]
        errors = [result.errors.details[0] for result in results if result.errors.any()]
        if errors:
            self.progress.message(
                f"grader error on {len(errors)} of {len(results)} answers (each scored 0): {errors[0]}",
                "warn",
            )
        return [result.reward for result in results]


def read_prompts(path: str, purpose: str) -> list[dict[str, Any]]:
    """Reinforcement lines -> TRL's conversational {"prompt": [...], "item": the line as JSON} rows."""
    try:
        return [_prompt(example) for _, example in read_examples(path, "reinforcement")]
    except DatasetError as error:
        error.purpose = purpose
        raise


def _prompt(example: Any) -> dict[str, Any]:
    assert isinstance(example, ReinforcementExample)  # what read_examples reads for reinforcement
    # The line as JSON text: lines differ in their fields, which a datasets column can't hold as dicts.
    return {
        "prompt": [template_message(message) for message in example.messages],
        "item": json.dumps(example.item),
    }


def _answer_length(spec: TrainingSpec, prompt_lengths: list[int]) -> int:
    """max_seq_length caps prompt and answer together, as it caps every example: the answers grow to
    what the longest prompt leaves of it, and to max_completion_tokens at most."""
    longest = max(prompt_lengths)
    left = spec.recipe.max_seq_length - longest
    if left < 1:
        line = prompt_lengths.index(longest) + 1
        raise DatasetError(
            f"the prompt is {longest} tokens, and max_seq_length {spec.recipe.max_seq_length} leaves no room "
            "for an answer: raise recipe.max_seq_length or shorten the prompt",
            line=line,
        )
    return min(spec.max_completion_tokens, left)


def _answer_text(completion: Any) -> str:
    if isinstance(completion, list):  # conversational: [{"role": "assistant", "content": ...}]
        return "".join(str(message.get("content") or "") for message in completion)
    return str(completion)


def _n_tokens(tokenizer: Any, prompt: list[dict[str, Any]]) -> int:
    return len(tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True)["input_ids"])
