"""Every recipe type on the tiny model: it trains only what it promises, the loss falls, and the
artifact loads and generates. What a recipe builds is checked on the model it returns; training runs
in-process (the protocol itself is tested through the child process in test_trainer_process.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.support.tiny_model import toy_chat_examples
from tests.training.trainer_runs import InProcessRun, toy_spec, train_in_process
from worker.training.artifacts import TrainingOutcome
from worker.training.base_model import BaseModel
from worker.training.precision import resolve_precision
from worker.training.recipes import get_recipe
from worker.training.spec import Recipe, RecipeError, TrainingSpec

# Learning rates at which each type visibly learns the toy table in 12 steps on the tiny random model.
LEARNING_RATES = {
    "lora": 5e-3,
    "dora": 5e-3,
    "qlora": 5e-3,
    "lora_int8": 5e-3,
    "ia3": 5e-2,
    "prompt_tuning": 5e-2,
    "prefix_tuning": 3e-2,
    "bitfit": 2e-2,
    "freeze": 2e-3,
    "full": 1e-3,
}
PEFT_TYPES = ("lora", "dora", "qlora", "lora_int8", "ia3", "prompt_tuning", "prefix_tuning")


def base_dir_for(recipe_type: str, model_dir: Path, biased_model_dir: Path) -> Path:
    return biased_model_dir if recipe_type == "bitfit" else model_dir


def spec_for(directory: Path, base_dir: Path, recipe: Recipe, **overrides) -> TrainingSpec:
    return toy_spec(
        directory,
        base_dir,
        n_train=16,
        n_epochs=3,
        learning_rate=LEARNING_RATES[recipe.type],
        recipe=recipe,
        **overrides,
    )


def build(recipe: Recipe, base_dir: Path, tmp_path: Path):
    spec = toy_spec(tmp_path, base_dir, n_train=4, n_epochs=1, recipe=recipe)
    base = BaseModel(str(base_dir), "CAUSAL_LM", resolve_precision("auto"))
    return get_recipe(recipe.type).build(spec, base)


def trainable(model) -> dict[str, torch.Tensor]:
    return {name: parameter for name, parameter in model.named_parameters() if parameter.requires_grad}


def base_linears(model) -> dict[str, torch.nn.Module]:
    # The Linear layers of the base that "all-linear" targets: every one but the LM head.
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head")
    }


class TestWhatEachRecipeTrains:
    def test_lora_trains_exactly_rank_r_matrices_on_every_linear_layer(self, model_dir, tmp_path):
        from transformers import AutoModelForCausalLM

        model = build(Recipe(type="lora", lora_r=4), model_dir, tmp_path)

        linears = base_linears(AutoModelForCausalLM.from_pretrained(model_dir))
        expected = sum(4 * (layer.in_features + layer.out_features) for layer in linears.values())
        assert all("lora_A" in name or "lora_B" in name for name in trainable(model))
        assert sum(p.numel() for p in trainable(model).values()) == expected

    def test_dora_adds_one_magnitude_per_output_feature(self, model_dir, tmp_path):
        lora = build(Recipe(type="lora"), model_dir, tmp_path / "lora")
        dora = build(Recipe(type="dora"), model_dir, tmp_path / "dora")

        magnitudes = {name: p for name, p in trainable(dora).items() if "lora_magnitude_vector" in name}
        lora_count = sum(p.numel() for p in trainable(lora).values())
        assert magnitudes
        assert sum(p.numel() for p in trainable(dora).values()) == lora_count + sum(
            p.numel() for p in magnitudes.values()
        )

    @pytest.mark.parametrize(
        ("recipe_type", "layer_class"), [("qlora", "Linear4bit"), ("lora_int8", "Linear8bitLt")]
    )
    def test_quantized_recipes_put_lora_on_a_quantized_frozen_base(
        self, recipe_type, layer_class, model_dir, tmp_path
    ):
        model = build(Recipe(type=recipe_type), model_dir, tmp_path)

        classes = {type(module).__name__ for module in model.modules()}
        assert layer_class in classes
        assert all("lora_A" in name or "lora_B" in name for name in trainable(model))

    def test_ia3_trains_only_scaling_vectors(self, model_dir, tmp_path):
        model = build(Recipe(type="ia3"), model_dir, tmp_path)

        assert trainable(model) and all("ia3_l" in name for name in trainable(model))
        assert all(p.dim() <= 2 and 1 in p.shape for p in trainable(model).values())

    @pytest.mark.parametrize("recipe_type", ["prompt_tuning", "prefix_tuning"])
    def test_soft_prompts_train_only_the_virtual_tokens(self, recipe_type, model_dir, tmp_path):
        model = build(Recipe(type=recipe_type, num_virtual_tokens=5), model_dir, tmp_path)

        names = list(trainable(model))
        assert names and all(name.startswith("prompt_encoder.") for name in names)
        embedding = next(iter(trainable(model).values()))
        assert embedding.shape[0] == 5

    def test_bitfit_trains_only_biases(self, biased_model_dir, tmp_path):
        model = build(Recipe(type="bitfit"), biased_model_dir, tmp_path)

        biases = {name for name, _ in model.named_parameters() if name.endswith(".bias")}
        assert set(trainable(model)) == biases

    def test_bitfit_refuses_a_model_without_biases(self, model_dir, tmp_path):
        with pytest.raises(RecipeError, match="bitfit trains only bias terms, and the base model"):
            build(Recipe(type="bitfit"), model_dir, tmp_path)

    def test_freeze_trains_the_top_blocks_and_head_only(self, model_dir, tmp_path):
        model = build(Recipe(type="freeze", trainable_layers=1), model_dir, tmp_path)

        names = set(trainable(model))
        assert names and all(
            name.startswith(("model.layers.1.", "model.norm.", "lm_head.")) for name in names
        )
        assert {"model.norm.weight", "lm_head.weight"} <= names

    def test_freeze_with_no_layers_trains_the_head_alone(self, model_dir, tmp_path):
        model = build(Recipe(type="freeze", trainable_layers=0), model_dir, tmp_path)
        assert set(trainable(model)) == {"model.norm.weight", "lm_head.weight"}

    def test_freeze_refuses_more_layers_than_the_model_has(self, model_dir, tmp_path):
        with pytest.raises(RecipeError, match="only 2 layers"):
            build(Recipe(type="freeze", trainable_layers=3), model_dir, tmp_path)

    def test_full_trains_everything(self, model_dir, tmp_path):
        model = build(Recipe(type="full"), model_dir, tmp_path)
        assert all(parameter.requires_grad for parameter in model.parameters())


@pytest.fixture(scope="module")
def runs(tmp_path_factory, model_dir, biased_model_dir) -> dict[str, InProcessRun]:
    """One short run per recipe type, shared by the tests below."""
    results = {}
    for recipe_type in LEARNING_RATES:
        directory = tmp_path_factory.mktemp(f"run-{recipe_type}")
        recipe = Recipe(type=recipe_type, max_seq_length=64, trainable_layers=1, num_virtual_tokens=8)
        base_dir = base_dir_for(recipe_type, model_dir, biased_model_dir)
        results[recipe_type] = train_in_process(spec_for(directory, base_dir, recipe))
    return results


def generate(model, artifact_dir: Path) -> torch.Tensor:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(artifact_dir)
    inputs = tokenizer.apply_chat_template(
        toy_chat_examples(1)[0]["messages"][:2], add_generation_prompt=True, return_tensors="pt"
    )
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]
    return output


@pytest.mark.parametrize("recipe_type", list(LEARNING_RATES))
class TestTrainingEachRecipe:
    def test_loss_falls(self, runs, recipe_type):
        losses = runs[recipe_type].losses()
        assert len(losses) == 12
        first_epoch, last_epoch = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
        assert last_epoch < 0.92 * first_epoch, losses

    def test_artifact_loads_and_generates(self, runs, recipe_type, model_dir, biased_model_dir):
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        run = runs[recipe_type]
        assert isinstance(run.outcome, TrainingOutcome)
        artifact_dir = run.outcome.artifact_dir
        record = json.loads((artifact_dir / "tunery.json").read_text())
        assert record["recipe"]["type"] == recipe_type
        if recipe_type in PEFT_TYPES:
            assert run.outcome.artifact_format == record["artifact_format"] == "peft"
            # On an unquantized base, also for qlora and lora_int8.
            base = AutoModelForCausalLM.from_pretrained(
                base_dir_for(recipe_type, model_dir, biased_model_dir)
            )
            model = PeftModel.from_pretrained(base, artifact_dir)
        else:
            assert run.outcome.artifact_format == record["artifact_format"] == "model"
            assert (artifact_dir / "model.safetensors").is_file()
            model = AutoModelForCausalLM.from_pretrained(artifact_dir)
        generate(model, artifact_dir)


class TestWeightsThatMustNotMove:
    def test_freeze_leaves_lower_blocks_and_embeddings_bit_identical(self, runs, model_dir):
        from safetensors.torch import load_file

        base = load_file(model_dir / "model.safetensors")
        trained = load_file(runs["freeze"].outcome.artifact_dir / "model.safetensors")

        for name, tensor in base.items():
            if name.startswith(("model.layers.0.", "model.embed_tokens.")):
                assert torch.equal(trained[name], tensor), name
        assert not torch.equal(
            trained["model.layers.1.mlp.down_proj.weight"], base["model.layers.1.mlp.down_proj.weight"]
        )

    def test_bitfit_changes_biases_and_nothing_else(self, runs, biased_model_dir):
        from safetensors.torch import load_file

        base = load_file(biased_model_dir / "model.safetensors")
        trained = load_file(runs["bitfit"].outcome.artifact_dir / "model.safetensors")

        changed = {name for name, tensor in base.items() if not torch.equal(trained[name], tensor)}
        assert changed and all(name.endswith(".bias") for name in changed)


def test_prefix_tuning_reaches_a_sequence_classifier(tmp_path, model_dir):
    # peft hands a classifier its prefix only through `past_key_values`, which transformers 5 calls
    # `cache`: without the recipe's bridge the forward raises, or the prefix is silently dropped.
    recipe = Recipe(type="prefix_tuning", max_seq_length=64, num_virtual_tokens=4)
    spec = toy_spec(tmp_path, model_dir, n_train=4, n_epochs=1, recipe=recipe, method="classification")
    labels = {"num_labels": 2, "id2label": {0: "a", 1: "b"}, "label2id": {"a": 0, "b": 1}}
    base = BaseModel(str(model_dir), "SEQ_CLS", resolve_precision("auto"), labels)
    model = get_recipe("prefix_tuning").build(spec, base)
    model.eval()
    inputs = {"input_ids": torch.tensor([[5, 6, 7, 8]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    with torch.no_grad():
        before = model(**inputs).logits.clone()
        for parameter in model.prompt_encoder.parameters():
            parameter.add_(torch.randn_like(parameter))
        after = model(**inputs).logits
    assert not torch.allclose(before, after), "the prefix does not change the classifier's output"
