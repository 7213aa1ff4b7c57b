"""Corpus readers: every supported layout becomes a sorted list of :class:`Utterance`.

Formats (``read_corpus(root, format=...)``):

- ``folder``: any tree of audio files (``codec.data.audio.AUDIO_SUFFIXES``); id = relative path without extension.
- ``ulca``: Bhashini/ULCA asr-corpus, ``data.json`` (+ ``params.json``).
- ``slr66``: OpenSLR 66 (Telugu multi-speaker), ``line_index.tsv`` + ``<fileid>.wav``.
- ``commonvoice``: Mozilla Common Voice, ``validated.tsv`` + ``clips/*.mp3``.
- ``auto``: the first of ulca, slr66, commonvoice whose marker file exists, else folder.

Readers only parse metadata; they do not open audio, so a missing or broken audio file
surfaces later as a rejected row, not as a failed corpus.
"""

from __future__ import annotations

from pathlib import Path

from codec.data.corpora import common_voice, folder, slr66, ulca
from codec.data.corpora.base import CorpusError, Utterance

# Format name -> reader module (``detect(root)``, ``read(root)``), in autodetection order: folder matches anything.
# The one list of formats: params' CorpusFormat (codec/config/prepare.py) is checked against it by a test.
READERS = {"ulca": ulca, "slr66": slr66, "commonvoice": common_voice, "folder": folder}
FORMATS = tuple(READERS)


def detect_format(root: str | Path) -> str:
    """The format of the corpus at ``root`` (see module docstring for the order)."""
    root = Path(root)
    for name in FORMATS:
        if READERS[name].detect(root):
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
    utterances = sorted(READERS[format].read(root), key=lambda u: u.id)
    if not utterances:
        raise CorpusError(f"no utterances found in {root} (format {format})")
    for a, b in zip(utterances, utterances[1:]):
        if a.id == b.id:
            raise CorpusError(f"{root}: utterance id {a.id!r} appears more than once ({a.path}, {b.path})")
    return utterances
