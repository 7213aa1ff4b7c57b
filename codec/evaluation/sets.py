"""The audio an evaluation scores: the prepared test split and optional extra corpora.

Everything comes out as float32 mono at the codec's rate. The test split is read from the Parquet
shards (already cleaned by ``prepare``); an extra corpus is read with ``codec.data.corpora`` and cleaned
by :func:`codec.data.audio.process_file` with the options ``prepare`` used, so both see the same
resampling, DC removal, trimming and segmentation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from codec.config.evaluate import ExtraCorpus
from codec.config.prepare import AudioOptions
from codec.data.audio import AudioRejected, pcm16_to_float, process_file, resample
from codec.data.corpora import read_corpus
from codec.data.corpora.base import CorpusError
from codec.data.shards import iter_segments, read_table, split_files

TEST = "test"


class EvaluationError(RuntimeError):
    """The evaluation cannot run (no test data, unusable model); the message says what to fix."""


@dataclass(frozen=True)
class EvalUtterance:
    id: str
    speaker: str | None
    audio: np.ndarray  # float32 [T] in [-1, 1] at the codec's rate

    def seconds(self, sample_rate: int) -> float:
        return self.audio.shape[0] / sample_rate


@dataclass(frozen=True)
class EvalSet:
    name: str  # "test" or the extra corpus' name
    utterances: list[EvalUtterance]
    available: int  # utterances (segments) or source files there were before the cap
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"id", "reason"}: rejected inputs
    unavailable: str | None = None  # why the whole set was skipped (missing corpus), else None


def spread(count: int, limit: int) -> list[int]:
    """``min(count, limit)`` indices evenly spread over ``range(count)`` (all when ``limit`` is 0).

    Evenly spread rather than the first ``limit``: ids sort by speaker or source, so a prefix would
    score only a few of them.
    """
    if limit <= 0 or limit >= count:
        return list(range(count))
    return sorted({int(round(i * (count - 1) / (limit - 1))) for i in range(limit)}) if limit > 1 else [0]


def load_test_split(shards_dir: str | Path, sample_rate: int, max_utterances: int) -> EvalSet:
    """Up to ``max_utterances`` segments of the test split (0 = all), resampled to ``sample_rate``."""
    try:
        paths = split_files(shards_dir, TEST)
    except FileNotFoundError:
        raise EvaluationError(f"{shards_dir}: no manifest.json (run the prepare stage first)") from None
    except KeyError:
        raise EvaluationError(f"{shards_dir}: the manifest lists no '{TEST}' split") from None
    ids = sorted(read_table(paths, columns=["id"]).column("id").to_pylist())
    if not ids:
        raise EvaluationError(
            f"{shards_dir}: the '{TEST}' split is empty; nothing to evaluate (give prepare a "
            "non-zero split.test and enough speakers)"
        )
    chosen = {ids[i] for i in spread(len(ids), max_utterances)}
    utterances = []
    for row in iter_segments(paths):
        if row.id in chosen:
            audio = resample(pcm16_to_float(row.audio), row.sample_rate, sample_rate)
            utterances.append(EvalUtterance(row.id, row.speaker, np.ascontiguousarray(audio, dtype=np.float32)))
    utterances.sort(key=lambda u: u.id)
    return EvalSet(TEST, utterances, available=len(ids))


def load_extra_corpus(corpus: ExtraCorpus, options: AudioOptions) -> EvalSet:
    """Up to ``corpus.max_utterances`` cleaned segments of an extra corpus (files evenly spread).

    A missing corpus gives an empty set with ``unavailable`` set (the run goes on); unusable files
    are listed in ``skipped``.
    """
    try:
        sources = read_corpus(corpus.path, corpus.format)
    except CorpusError as exc:
        return EvalSet(corpus.name, [], available=0, unavailable=str(exc))
    utterances: list[EvalUtterance] = []
    skipped: list[dict[str, str]] = []
    for index in spread(len(sources), corpus.max_utterances):
        source = sources[index]
        try:
            processed = process_file(source.path, options)
        except AudioRejected as exc:
            skipped.append({"id": source.id, "reason": str(exc)})
            continue
        for segment in processed.segments:
            utterances.append(
                EvalUtterance(f"{source.id}-{segment.index:03d}", source.speaker, pcm16_to_float(segment.pcm))
            )
    limit = corpus.max_utterances or len(utterances)
    return EvalSet(corpus.name, utterances[:limit], available=len(sources), skipped=skipped)
