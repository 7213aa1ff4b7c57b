"""What every corpus reader returns: :class:`Utterance`, and :class:`CorpusError` for a corpus unusable as a whole."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
