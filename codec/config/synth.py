"""Settings of the `synth` stage (``synth:`` in params.yaml): the eSpeak NG speakers and the sentences they read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

LANGUAGE = "te"  # eSpeak NG voice and ULCA language code


@dataclass(frozen=True)
class SpeakerVariant:
    """One synthetic speaker: an eSpeak NG voice variant with its own pitch and rate."""

    name: str
    variant: str  # eSpeak NG variant file name, e.g. "m3" or "f2"
    gender: Literal["male", "female"]
    pitch: int  # 0..99, eSpeak's base pitch
    rate: int  # words per minute (80..450)
    range: int = 50  # 0..99, pitch range (intonation)

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "_-" for c in self.name):
            raise ValueError(f"speaker name {self.name!r} must be non-empty letters, digits, '_' or '-'")
        if not self.variant or not all(c.isalnum() for c in self.variant):
            raise ValueError(f"speaker {self.name}: variant {self.variant!r} must be a voices/!v file name")
        for key, low, high in (("pitch", 0, 99), ("range", 0, 99), ("rate", 80, 450)):
            if not low <= getattr(self, key) <= high:
                raise ValueError(f"speaker {self.name}: {key}={getattr(self, key)} outside {low}..{high}")

    @property
    def voice(self) -> str:
        """eSpeak NG voice name: language plus variant, e.g. ``"te+m3"``."""
        return f"{LANGUAGE}+{self.variant}"


@dataclass(frozen=True)
class SynthConfig:
    sentences: str  # UTF-8 text file, one Telugu sentence per line
    sentences_per_speaker: int
    speakers: list[SpeakerVariant] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.sentences_per_speaker < 1:
            raise ValueError(f"sentences_per_speaker must be >= 1, got {self.sentences_per_speaker}")
        names = [s.name for s in self.speakers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"speaker names must be unique; repeated: {duplicates}")
