"""Parameters of the tokenize stage (the ``tokenize:`` section of ``params.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from codec.config.prepare import CorpusFormat


@dataclass(frozen=True)
class TokenCorpus:
    """A corpus tokenized besides the prepared shards: read with ``codec.data.corpora``, cleaned and split
    like ``prepare`` does (its clean-up and split settings), never written as audio shards."""

    name: str  # the folder under data/tokens/ (letters, digits, ``-`` and ``_``)
    path: str  # corpus root folder
    format: CorpusFormat = "auto"

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "-_" for c in self.name):
            raise ValueError(f"tokenize corpus name {self.name!r} must be letters, digits, '-' or '_'")


@dataclass(frozen=True)
class TokenizeConfig:
    corpus_name: str = "shards"  # data/tokens/<corpus_name>/: the prepared shards' tokens
    corpora: list[TokenCorpus] = field(default_factory=list)  # more corpora, each its own data/tokens/<name>/
    levels: int = 0  # quantizer levels kept per row; 0 = all of the model's
    row_group_rows: int = 256
    workers: int = 0  # processes (one per shard at a time); 0 = one per core of the job
    min_frames: int = 1  # segments that give fewer code frames are skipped and listed

    def __post_init__(self) -> None:
        names = [self.corpus_name, *(c.name for c in self.corpora)]
        if len(set(names)) != len(names):
            raise ValueError(f"tokenize corpus names must be unique, got {names}")
        TokenCorpus(self.corpus_name, ".")  # the same naming rule
        for name, value in (("levels", self.levels), ("workers", self.workers)):
            if value < 0:
                raise ValueError(f"tokenize.{name} must be >= 0, got {value}")
        if self.row_group_rows < 1 or self.min_frames < 1:
            raise ValueError("tokenize.row_group_rows and tokenize.min_frames must be >= 1")
