"""Object ids: the prefix, then `length` characters drawn evenly from letters and digits."""

from __future__ import annotations

import string
from collections import Counter

from api.ids import new_id

ALPHABET = string.ascii_letters + string.digits


def test_an_id_is_its_prefix_then_length_letters_and_digits() -> None:
    for length in (1, 8, 24, 64):
        made = new_id("ftjob-", length)
        assert made.startswith("ftjob-") and len(made) == len("ftjob-") + length
        assert set(made[len("ftjob-") :]) <= set(ALPHABET)


def test_ids_do_not_repeat_and_every_character_is_about_as_likely() -> None:
    ids = [new_id("", 24) for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    counts = Counter("".join(ids))
    assert set(counts) == set(ALPHABET)
    # 240,000 draws: about 3,871 each, give or take 62 (one standard deviation). A byte taken modulo
    # 62 would make the first 8 characters a quarter more likely (5/256 against 4/256).
    expected = 240_000 / len(ALPHABET)
    assert max(counts.values()) < expected * 1.08 and min(counts.values()) > expected * 0.92, counts
