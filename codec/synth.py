"""Synthesize the embedded default Telugu corpus with eSpeak NG (libespeak-ng via ctypes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class SpeakerVariant:
    """One synthetic speaker: an eSpeak NG voice variant with its own pitch and rate."""

    name: str
    variant: str  # eSpeak NG variant file name, e.g. "m3" or "f2"
    gender: Literal["male", "female"]
    pitch: int  # 0..99, eSpeak's base pitch
    rate: int  # words per minute (80..450)
    range: int = 50  # 0..99, pitch range (intonation)


@dataclass(frozen=True)
class SynthConfig:
    sentences: str  # UTF-8 text file, one Telugu sentence per line
    sentences_per_speaker: int
    speakers: list[SpeakerVariant] = field(default_factory=list)
