"""WordNet for METEOR, read from Debian's `wordnet-base` package instead of nltk's downloader.

METEOR matches synonyms through WordNet. nltk's own copy is fetched at run time from the internet,
which Tunery may not do; Debian ships the same WordNet 3.0 database (`apt-get install wordnet-base`,
/usr/share/wordnet), lacking only the `lexnames` table that nltk's reader opens first. That table is
fixed by WordNet 3.0 (lexnames(5WN)), so it is written here, beside a copy of the database files
(once per process, 28 MB: nltk refuses symlinks and hard links out of its corpus root).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from functools import cache
from pathlib import Path
from typing import Any

DEBIAN_WORDNET = Path(os.environ.get("TUNERY_WORDNET_DIR", "/usr/share/wordnet"))
_LEXNAMES = [
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
]
_POS_NUMBER = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
_FILES = [f"{kind}.{pos}" for kind in ("data", "index") for pos in ("noun", "verb", "adj", "adv")] + [
    f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv")
]


class WordNetMissing(RuntimeError):
    """METEOR cannot run: no WordNet database on this machine."""


def lexnames() -> str:
    return "".join(
        f"{number:02d}\t{name}\t{_POS_NUMBER[name.split('.')[0]]}\n" for number, name in enumerate(_LEXNAMES)
    )


@cache
def wordnet() -> Any:
    """nltk's WordNet reader over Debian's database files."""
    if not all((DEBIAN_WORDNET / name).is_file() for name in _FILES):
        raise WordNetMissing(
            f"METEOR needs WordNet 3.0 in {DEBIAN_WORDNET} (Debian: apt-get install wordnet-base; "
            "elsewhere set TUNERY_WORDNET_DIR)"
        )
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class _Reader(WordNetCorpusReader):  # type: ignore[misc]
        def map_wn(self, version: str = "wordnet") -> None:
            # The map to nltk's own WordNet copy serves only the Open Multilingual WordNet, which
            # METEOR does not use, and would read that copy (the download this module avoids).
            return None

    root = Path(tempfile.mkdtemp(prefix="tunery-wordnet-"))
    for name in _FILES:
        # Copied: nltk refuses a symlink out of the corpus root and a hard-linked file alike.
        shutil.copyfile(DEBIAN_WORDNET / name, root / name)
    (root / "lexnames").write_text(lexnames())
    # nltk reads corpora only under the roots of its data path (nltk.pathsec).
    nltk.data.path.append(str(root))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": METEOR needs none
        return _Reader(str(root), None)
