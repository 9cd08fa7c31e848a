"""The written rules that resolve "auto" hyperparameters."""

import pytest

from api.fine_tuning.hyperparameters import auto_batch_size, auto_epochs, learning_rate, resolve


@pytest.mark.parametrize(
    ("n_examples", "epochs"),
    [(10, 10), (16, 7), (33, 4), (34, 3), (1000, 3), (8333, 3), (8334, 2), (30000, 1), (2, 25)],
)
def test_auto_epochs_aims_at_100_to_25000_examples_seen(n_examples: int, epochs: int) -> None:
    assert auto_epochs(n_examples) == epochs


@pytest.mark.parametrize(("n_examples", "batch"), [(10, 1), (1000, 2), (50_000, 100), (1_000_000, 256)])
def test_auto_batch_size_is_about_two_per_thousand(n_examples: int, batch: int) -> None:
    assert auto_batch_size(n_examples) == batch


def test_given_values_win_and_auto_is_filled() -> None:
    resolved = resolve({"n_epochs": 2, "batch_size": "auto", "learning_rate_multiplier": 0.5}, 500)
    assert resolved == {"n_epochs": 2, "batch_size": 1, "learning_rate_multiplier": 0.5}


def test_batch_size_never_exceeds_the_dataset() -> None:
    assert resolve({"batch_size": 64}, 12)["batch_size"] == 12


def test_learning_rate_is_the_recipe_base_times_the_multiplier() -> None:
    assert learning_rate("lora", "supervised", 2.0) == pytest.approx(4e-4)


def test_dpo_gets_a_beta_and_supervised_does_not() -> None:
    assert resolve({}, 100, "dpo")["beta"] == 0.1
    assert resolve({"beta": 0.5}, 100, "dpo")["beta"] == 0.5
    assert "beta" not in resolve({}, 100, "supervised")
