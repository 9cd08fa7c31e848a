"""The metrics of text_similarity graders, each from a well-kept library, each from 0 to 1.

fuzzy_match: rapidfuzz's WRatio on default-processed text (the one OpenAI's guide shows), over 100.
bleu: sacrebleu's sentence BLEU, over 100. gleu: nltk's sentence GLEU. meteor: nltk's METEOR with
WordNet (graders/wordnet.py). rouge_1..rouge_5, rouge_l: Google's rouge-score, F-measure, stemmed.
cosine: cosine similarity of the two texts' embeddings (all-MiniLM-L6-v2, graders/embedding.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

Embed = Callable[[Sequence[str]], list[list[float]]]


def fuzzy_match(text: str, reference: str) -> float:
    from rapidfuzz import fuzz, utils

    return float(fuzz.WRatio(text, reference, processor=utils.default_process)) / 100.0


def bleu(text: str, reference: str) -> float:
    import sacrebleu

    return float(sacrebleu.sentence_bleu(text, [reference]).score) / 100.0


def gleu(text: str, reference: str) -> float:
    from nltk.translate.gleu_score import sentence_gleu

    return float(sentence_gleu([_words(reference)], _words(text)))


def meteor(text: str, reference: str) -> float:
    from nltk.translate.meteor_score import meteor_score

    from graders.wordnet import wordnet

    return float(meteor_score([_words(reference)], _words(text), wordnet=wordnet()))


def rouge(kind: str, text: str, reference: str) -> float:
    return float(_rouge_scorer(kind).score(reference, text)[kind].fmeasure)


def cosine(text: str, reference: str, embed: Embed) -> float:
    import math

    first, second = embed([text, reference])
    dot = sum(a * b for a, b in zip(first, second, strict=True))
    norm = math.sqrt(sum(a * a for a in first)) * math.sqrt(sum(b * b for b in second))
    return dot / norm if norm else 0.0


def score(metric: str, text: str, reference: str, embed: Embed) -> float:
    if metric == "cosine":
        return cosine(text, reference, embed)
    if metric.startswith("rouge_"):
        return rouge("rougeL" if metric == "rouge_l" else f"rouge{metric[-1]}", text, reference)
    return float(_PLAIN[metric](text, reference))


_PLAIN: dict[str, Callable[[str, str], float]] = {
    "fuzzy_match": fuzzy_match,
    "bleu": bleu,
    "gleu": gleu,
    "meteor": meteor,
}


def _words(text: str) -> list[str]:
    # nltk's word_tokenize needs the punkt model, another download: sacrebleu's 13a tokenizer is
    # the standard one of machine translation metrics and ships with the library.
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return str(_tokenizer13a(Tokenizer13a)(text)).split()


@cache
def _tokenizer13a(kind: Any) -> Any:
    return kind()


@cache
def _rouge_scorer(kind: str) -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([kind], use_stemmer=True)
