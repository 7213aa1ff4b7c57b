"""Corpus readers: every supported layout becomes a sorted list of :class:`Utterance`.

Formats (``read_corpus(root, format=...)``):

- ``folder``: any tree of wav/flac/ogg/mp3 files; id = relative path without extension.
- ``ulca``: Bhashini/ULCA asr-corpus, ``data.json`` (+ ``params.json``).
- ``slr66``: OpenSLR 66 (Telugu multi-speaker), ``line_index.tsv`` + ``<fileid>.wav``.
- ``commonvoice``: Mozilla Common Voice, ``validated.tsv`` + ``clips/*.mp3``.
- ``auto``: the first of ulca, slr66, commonvoice whose marker file exists, else folder.

Readers only parse metadata; they do not open audio, so a missing or broken audio file
surfaces later as a rejected row, not as a failed corpus.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

FORMATS = ("ulca", "slr66", "commonvoice", "folder")  # autodetection order; folder matches anything


class CorpusError(ValueError):
    """The corpus root or its metadata is unusable as a whole (missing, malformed, empty)."""


@dataclass(frozen=True)
class Utterance:
    """One source audio file and what the corpus says about it."""

    id: str  # unique within the corpus, stable across runs ("/" allowed)
    path: Path  # the audio file
    speaker: str | None = None  # speaker (or speaker-group) id; None = unknown
    gender: str | None = None  # "male" | "female" | "other" | None
    text: str | None = None  # transcript
    duration: float | None = None  # seconds, when the metadata states it
    meta: Mapping[str, Any] = field(default_factory=dict)  # format-specific extras


def normalize_gender(value: Any) -> str | None:
    """Map the many spellings of corpora ("M", "female_feminine", "") to male/female/other/None."""
    text = str(value or "").strip().lower()
    if text in ("", "none", "null", "unknown", "non-specified", "not-specified", "do_not_wish_to_say", "nan"):
        return None
    if text in ("m", "male", "man") or text.startswith("male"):
        return "male"
    if text in ("f", "female", "woman") or text.startswith("female"):
        return "female"
    return "other"


def detect_format(root: str | Path) -> str:
    """The format of the corpus at ``root`` (see module docstring for the order)."""
    root = Path(root)
    for name in FORMATS:
        if _reader(name).detect(root):
            return name
    raise AssertionError("the folder reader matches every directory")


def read_corpus(root: str | Path, format: str = "auto") -> list[Utterance]:
    """All utterances of the corpus at ``root``, sorted by id.

    Raises :class:`CorpusError` when ``root`` is not a directory, the format is unknown,
    the metadata is malformed, ids repeat, or nothing is found.
    """
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"corpus directory {root} does not exist")
    if format == "auto":
        format = detect_format(root)
    elif format not in FORMATS:
        raise CorpusError(f"unknown corpus format {format!r}; expected auto or one of {list(FORMATS)}")
    utterances = sorted(_reader(format).read(root), key=lambda u: u.id)
    if not utterances:
        raise CorpusError(f"no utterances found in {root} (format {format})")
    for a, b in zip(utterances, utterances[1:]):
        if a.id == b.id:
            raise CorpusError(f"{root}: utterance id {a.id!r} appears more than once ({a.path}, {b.path})")
    return utterances


def _reader(name: str) -> Any:
    # Imported lazily: the reader modules import Utterance from this package.
    module = {"commonvoice": "common_voice"}.get(name, name)
    return importlib.import_module(f"{__name__}.{module}")
