"""Settings of the `prepare` stage (``prepare:`` in params.yaml) and the per-file clean-up they ask for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# Corpus layouts read by codec.data.corpora (its READERS; a test keeps the two equal), or "auto" to detect.
CorpusFormat = Literal["auto", "folder", "ulca", "slr66", "commonvoice"]
SILENCE_PEAK_DBFS = -60.0  # a file whose peak (after DC removal) is below this is "silent"


@dataclass(frozen=True)
class AudioOptions:
    """What :func:`codec.data.audio.process_file` does; rates in Hz, durations in seconds."""

    sample_rate: int
    trim_silence: bool = True
    trim_top_db: float = 40.0
    min_seconds: float = 0.5
    max_seconds: float = 15.0
    quality: Literal["HQ", "VHQ"] = "HQ"
    silence_dbfs: float = SILENCE_PEAK_DBFS


@dataclass(frozen=True)
class SplitFractions:
    valid: float = 0.1
    test: float = 0.1

    def __post_init__(self) -> None:
        if not (0 <= self.valid < 1 and 0 <= self.test < 1 and self.valid + self.test < 1):
            raise ValueError(f"split fractions must be >= 0 and sum to < 1, got valid={self.valid} test={self.test}")


@dataclass(frozen=True)
class PrepareConfig:
    corpus: str  # corpus root folder
    format: CorpusFormat = "auto"
    num_shards: int = 4
    split: SplitFractions = field(default_factory=SplitFractions)
    trim_silence: bool = True
    trim_top_db: float = 40.0  # frames quieter than peak - top_db at the ends are trimmed
    min_seconds: float = 0.5  # shorter segments are rejected
    max_seconds: float = 15.0  # longer files are split into segments of at most this
    row_group_rows: int = 256
    workers: int = 0  # processes per shard job; 0 = all cores
    resample_quality: Literal["HQ", "VHQ"] = "HQ"  # soxr quality preset
    silence_dbfs: float = SILENCE_PEAK_DBFS  # files whose peak is below this are rejected as silent

    def __post_init__(self) -> None:
        problems = [
            msg
            for bad, msg in (
                (self.num_shards < 1, f"num_shards must be >= 1, got {self.num_shards}"),
                (self.trim_top_db <= 0, f"trim_top_db must be > 0, got {self.trim_top_db}"),
                (self.min_seconds < 0, f"min_seconds must be >= 0, got {self.min_seconds}"),
                (
                    self.max_seconds <= self.min_seconds,
                    f"max_seconds ({self.max_seconds}) must exceed min_seconds ({self.min_seconds})",
                ),
                (self.row_group_rows < 1, f"row_group_rows must be >= 1, got {self.row_group_rows}"),
                (self.workers < 0, f"workers must be >= 0, got {self.workers}"),
            )
            if bad
        ]
        if problems:
            raise ValueError("; ".join(problems))

    def audio_options(self, sample_rate: int) -> AudioOptions:
        """The per-file clean-up these settings ask for, targeting ``sample_rate`` (also used by evaluate)."""
        return AudioOptions(
            sample_rate=sample_rate,
            trim_silence=self.trim_silence,
            trim_top_db=self.trim_top_db,
            min_seconds=self.min_seconds,
            max_seconds=self.max_seconds,
            quality=self.resample_quality,
            silence_dbfs=self.silence_dbfs,
        )
