"""A plain tree of audio files: no speakers, no transcripts; id = relative path sans extension."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from codec.data.audio import AUDIO_SUFFIXES
from codec.data.corpora.base import Utterance


def detect(root: Path) -> bool:
    return root.is_dir()


def read(root: Path) -> list[Utterance]:
    """Every path under ``root`` (recursively) with an audio extension, hidden paths skipped. A folder named
    like an audio file is listed too, so that `prepare` rejects it with a reason instead of dropping it."""
    files = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in AUDIO_SUFFIXES and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    stems = Counter(p.relative_to(root).with_suffix("").as_posix() for p in files)
    utterances = []
    for p in files:
        rel = p.relative_to(root)
        stem = rel.with_suffix("").as_posix()
        # "a.wav" and "a.flac" side by side keep their extension so ids stay unique.
        utterances.append(Utterance(id=stem if stems[stem] == 1 else rel.as_posix(), path=p))
    return utterances
