"""Turn a corpus (any supported reader format) into speaker-disjoint Parquet shards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class SplitFractions:
    valid: float = 0.1
    test: float = 0.1


@dataclass(frozen=True)
class PrepareConfig:
    corpus: str  # corpus root folder
    format: Literal["auto", "folder", "ulca", "slr66", "commonvoice"] = "auto"
    num_shards: int = 4
    split: SplitFractions = field(default_factory=SplitFractions)
    trim_silence: bool = True
    trim_top_db: float = 40.0  # frames quieter than peak - top_db at the ends are trimmed
    min_seconds: float = 0.5  # shorter segments are rejected
    max_seconds: float = 15.0  # longer files are split into segments of at most this
    row_group_rows: int = 256
    workers: int = 0  # processes per shard job; 0 = all cores
