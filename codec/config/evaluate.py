"""Parameters of the evaluation stage (the ``evaluate:`` section of ``params.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from codec.config.prepare import CorpusFormat


@dataclass(frozen=True)
class ExtraCorpus:
    """A corpus scored besides the test split: read with ``codec.data.corpora``, cleaned like ``prepare``."""

    name: str  # label in the report and the metrics (letters, digits, ``-`` and ``_``)
    path: str  # corpus root folder
    format: CorpusFormat = "auto"
    max_utterances: int = 50  # segments scored (evenly spread over the sorted files); 0 = all

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "-_" for c in self.name) or self.name == "test":
            raise ValueError(f"extra corpus name {self.name!r} must be letters, digits, '-' or '_' and not 'test'")
        if self.max_utterances < 0:
            raise ValueError(f"max_utterances must be >= 0, got {self.max_utterances}")


@dataclass(frozen=True)
class EvaluateConfig:
    levels: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 12])  # level counts (clipped to the model's)
    opus_kbps: list[float] = field(default_factory=lambda: [6.0, 8.0, 12.0, 24.0])  # Opus baseline bitrates
    max_utterances: int = 50  # test-split segments scored (evenly spread over the sorted ids); 0 = all
    extra_corpora: list[ExtraCorpus] = field(default_factory=list)
    examples: int = 3  # utterances per corpus with spectrograms and audio players in the report
    device: Literal["auto", "cpu", "cuda"] = "auto"
    opus_jobs: int = 0  # concurrent opusenc/opusdec processes; 0 = one per core
    # DNSMOS (no reference) on this many scored utterances per set, evenly spread, every system and the
    # original: about 2.5 s of one core per clip under 9 s (7 windows of its repetition); 0 = off.
    dnsmos_utterances: int = 10
    # Speaker similarity of every system to the original on every scored utterance (cosine of Resemblyzer's GE2E
    # speaker embeddings, codec/evaluation/speaker.py); False leaves it NaN (null in metrics.json). Off by default:
    # on 2 cores it adds about a third to evaluate's time (a 3-layer LSTM over 1.6 s windows of every version).
    speaker_similarity: bool = False

    def __post_init__(self) -> None:
        problems = [
            msg
            for bad, msg in (
                (
                    not self.levels or min(self.levels) < 1,
                    f"levels must be a non-empty list of ints >= 1, got {self.levels}",
                ),
                (
                    any(not 6.0 <= k <= 256.0 for k in self.opus_kbps),
                    f"opus_kbps must lie in [6, 256] (opusenc's range for mono), got {self.opus_kbps}",
                ),
                (self.max_utterances < 0, f"max_utterances must be >= 0, got {self.max_utterances}"),
                (self.examples < 0, f"examples must be >= 0, got {self.examples}"),
                (self.opus_jobs < 0, f"opus_jobs must be >= 0, got {self.opus_jobs}"),
                (self.dnsmos_utterances < 0, f"dnsmos_utterances must be >= 0, got {self.dnsmos_utterances}"),
                (
                    len({c.name for c in self.extra_corpora}) != len(self.extra_corpora),
                    "extra_corpora names must be unique",
                ),
            )
            if bad
        ]
        if problems:
            raise ValueError("; ".join(problems))

    def levels_for(self, num_levels: int) -> list[int]:
        """The configured level counts clipped to a model with ``num_levels`` levels, sorted, unique."""
        return sorted({min(level, num_levels) for level in self.levels})
