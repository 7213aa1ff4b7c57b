"""Turn a corpus (any supported reader format) into speaker-disjoint Parquet shards.

Three entry points, all deterministic (same corpus + config -> byte-identical shards):

- :func:`prepare_shard` processes the utterances whose ``stable_hash(id) % num_shards`` is
  ``shard`` and writes ``<out>/<split>/part-<shard>.parquet`` plus ``<out>/parts/part-<shard>.json``;
- :func:`merge_shards` checks every part, writes ``<out>/manifest.json``, the stats json and
  the rejected csv;
- :func:`run_prepare` does all shards in one process pool, then the merge.

The layout, the parts, the pool and the Parquet writer are :mod:`codec.runtime.sharded`'s, shared with
``tokenize``. A part's fingerprint is the plan's (settings and corpus index): ``prepare`` keeps no finished
shard, every run makes the shards it is asked for.

Every job reads the whole corpus index and computes the split for every utterance, so shard
jobs need no communication and the split never depends on which shard a file landed in.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

from codec.config.convert import ConfigError, from_dict, to_dict
from codec.config.prepare import AudioOptions, PrepareConfig
from codec.data.audio import AudioRejected, Segment, process_file
from codec.data.corpora import detect_format, read_corpus
from codec.data.corpora.base import Utterance
from codec.data.shards import MANIFEST, SCHEMA_VERSION, SegmentRow, ShardWriter, shard_path
from codec.data.splits import SPLITS, assign_splits, stable_hash
from codec.runtime.cpus import available_cpus
from codec.runtime.io import file_sha256, write_csv_atomic, write_json_atomic
from codec.runtime.sharded import RUN_KEYS, part_path, pool_map, read_part, write_part

MIN_FILES_PER_WORKER = 16


class PrepareError(RuntimeError):
    """The stage cannot produce a usable dataset (nothing usable, missing or mismatched parts)."""


@dataclass(frozen=True)
class Plan:
    """The corpus index and the split of every utterance: identical in every shard job."""

    root: Path
    format: str  # resolved reader format (never "auto")
    utterances: list[Utterance]  # sorted by id
    splits: dict[str, str]  # utterance id -> split
    fingerprint: str  # sha256 over config (bar paths and workers) + index; parts of different plans never merge

    def shard_utterances(self, shard: int, num_shards: int) -> list[Utterance]:
        return [u for u in self.utterances if shard_of(u.id, num_shards) == shard]


@dataclass(frozen=True)
class SplitSummary:
    rows: int
    seconds: float
    source_utterances: int  # utterances with at least one kept segment
    speakers: list[str]


@dataclass(frozen=True)
class ShardSummary:
    shard: int
    source_files: int
    source_seconds: float  # decoded duration of the files that gave at least one segment
    splits: dict[str, SplitSummary]
    rejected: list[dict[str, str]]  # {"id", "source_path", "reason"}, sorted by id
    clipped_files: int = 0  # kept files with samples beyond full scale (clipped to +-1)
    clipped_samples: int = 0
    wall_seconds: float = 0.0  # not written to disk: timings would break byte-identical outputs


@dataclass(frozen=True)
class PrepareStats:
    """What the merge reports (also written as the stats json)."""

    sample_rate: int
    source_files: int
    splits: dict[str, dict[str, Any]]  # split -> hours, seconds, utterances, source_utterances, speakers
    rejected: int
    rejected_by_reason: dict[str, int]
    clipped_files: int  # kept files with samples beyond full scale, clipped to +-1
    clipped_samples: int


def shard_of(utterance_id: str, num_shards: int) -> int:
    """The shard an utterance belongs to: stable across runs, machines and corpus edits."""
    return stable_hash(utterance_id) % num_shards


def make_plan(cfg: PrepareConfig, sample_rate: int) -> Plan:
    """Read the corpus index and assign splits (no audio is opened)."""
    root = Path(cfg.corpus)
    fmt = detect_format(root) if cfg.format == "auto" and root.is_dir() else cfg.format
    utterances = read_corpus(root, fmt)
    splits = assign_splits(utterances, cfg.split.valid, cfg.split.test)
    digest = hashlib.sha256()
    # The corpus location is left out: the index below pins the content, and a moved
    # checkout must not change the parts' json.
    params = _params(cfg, sample_rate)
    params["prepare"].pop("corpus")
    digest.update(json.dumps([params, fmt], sort_keys=True).encode())
    for u in utterances:
        digest.update(json.dumps([u.id, _relative(u.path, root), u.speaker, u.gender, u.text]).encode())
    return Plan(root, fmt, utterances, splits, digest.hexdigest())


def prepare_shard(cfg: PrepareConfig, sample_rate: int, out_dir: str | Path, shard: int) -> ShardSummary:
    """Process and write shard ``shard`` of ``cfg.num_shards`` (see module docstring)."""
    if not 0 <= shard < cfg.num_shards:
        raise PrepareError(f"shard {shard} is outside 0..{cfg.num_shards - 1}")
    return _prepare(cfg, sample_rate, out_dir, [shard], make_plan(cfg, sample_rate))[0]


def run_prepare(
    cfg: PrepareConfig, sample_rate: int, out_dir: str | Path, stats_path: str | Path, rejected_path: str | Path
) -> tuple[PrepareStats, list[ShardSummary]]:
    """Every shard (one shared process pool, no pause between shards), then the merge; the corpus index is
    read once."""
    plan = make_plan(cfg, sample_rate)
    summaries = _prepare(cfg, sample_rate, out_dir, list(range(cfg.num_shards)), plan)
    return merge_shards(cfg, sample_rate, out_dir, stats_path, rejected_path, plan), summaries


def merge_shards(
    cfg: PrepareConfig,
    sample_rate: int,
    out_dir: str | Path,
    stats_path: str | Path,
    rejected_path: str | Path,
    plan: Plan | None = None,
) -> PrepareStats:
    """Check the parts of all shards, write ``manifest.json``, the stats json and rejected csv.

    Raises :class:`PrepareError` when a part is missing or from another config/corpus, and
    (after writing the rejected csv, which says why) when no segment at all was kept.
    """
    out_dir = Path(out_dir)
    plan = plan or make_plan(cfg, sample_rate)
    parts = [_load_part(out_dir, shard, cfg.num_shards, plan.fingerprint) for shard in range(cfg.num_shards)]
    rejected = sorted((r for p in parts for r in p.rejected), key=lambda r: r["id"])
    write_csv_atomic(rejected_path, ["id", "source_path", "reason"], rejected)
    reasons = Counter(r["reason"].split(":", 1)[0] for r in rejected)
    splits: dict[str, dict[str, Any]] = {}
    manifest_splits: dict[str, dict[str, Any]] = {}
    for split in SPLITS:
        entries = [p.splits[split] for p in parts]
        rows = sum(e.rows for e in entries)
        seconds = round(sum(e.seconds for e in entries), 6)
        speakers = sorted({s for e in entries for s in e.speakers})
        splits[split] = {
            "hours": round(seconds / 3600, 6),
            "seconds": seconds,
            "utterances": rows,
            "source_utterances": sum(e.source_utterances for e in entries),
            "speakers": len(speakers),
        }
        files = [
            _file_entry(out_dir, shard_path(out_dir, split, shard), e.rows, e.seconds)
            for shard, e in enumerate(entries)
        ]
        manifest_splits[split] = {"rows": rows, "seconds": seconds, "speakers": len(speakers), "files": files}
    if not any(s["utterances"] for s in splits.values()):
        summary = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())) or "no files"
        # Empty Parquet parts are no dataset: remove them (and the parts' json), keep the rejected csv.
        for shard in range(cfg.num_shards):
            for split in SPLITS:
                shard_path(out_dir, split, shard).unlink(missing_ok=True)
            part_path(out_dir, shard).unlink(missing_ok=True)
        raise PrepareError(
            f"no usable audio in {plan.root}: all {len(plan.utterances)} files were rejected ({summary}); "
            f"see {rejected_path}"
        )
    stats = PrepareStats(
        sample_rate,
        len(plan.utterances),
        splits,
        len(rejected),
        dict(sorted(reasons.items())),
        sum(p.clipped_files for p in parts),
        sum(p.clipped_samples for p in parts),
    )
    write_json_atomic(stats_path, to_dict(stats))
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "corpus": {"root": cfg.corpus, "format": plan.format, "utterances": len(plan.utterances)},
        "params": _params(cfg, sample_rate),
        "fingerprint": plan.fingerprint,
        "num_shards": cfg.num_shards,
        "rejected": len(rejected),
        "splits": manifest_splits,
    }
    write_json_atomic(out_dir / MANIFEST, manifest)
    return stats


# ------------------------------------------------------------------------------------- internals


class _FileResult(NamedTuple):
    source_seconds: float  # decoded duration; 0 for a rejected file
    source_rate: int
    num_segments: int
    segments: list[Segment]
    rejected: list[tuple[int | None, str]]  # (segment index or None for the whole file, reason)
    clipped_samples: int = 0


def _process_batch(paths: list[str], opts: AudioOptions) -> list[_FileResult]:
    """Worker task: several files per task keeps inter-process overhead per file small."""
    results = []
    for path in paths:
        try:
            done = process_file(path, opts)
            results.append(
                _FileResult(
                    done.source_seconds,
                    done.source_rate,
                    done.num_segments,
                    done.segments,
                    list(done.rejected),
                    done.clipped_samples,
                )
            )
        except AudioRejected as exc:
            results.append(_FileResult(0.0, 0, 0, [], [(None, str(exc))]))
        except Exception as exc:
            results.append(_FileResult(0.0, 0, 0, [], [(None, f"error: {type(exc).__name__}: {exc}")]))
    return results


def _prepare(
    cfg: PrepareConfig, sample_rate: int, out_dir: str | Path, shards: list[int], plan: Plan
) -> list[ShardSummary]:
    out_dir = Path(out_dir)
    opts = cfg.audio_options(sample_rate)
    members = {shard: plan.shard_utterances(shard, cfg.num_shards) for shard in shards}
    # A worker process only pays off with a few dozen files to share out.
    workers = max(
        1, min(cfg.workers or available_cpus(), math.ceil(sum(map(len, members.values())) / MIN_FILES_PER_WORKER))
    )
    size = max(1, min(32, math.ceil(sum(map(len, members.values())) / (workers * 4))))
    batches = {shard: [utts[i : i + size] for i in range(0, len(utts), size)] for shard, utts in members.items()}
    task = functools.partial(_process_batch, opts=opts)
    items = ([str(u.path) for u in b] for s in shards for b in batches[s])
    summaries = []
    mark = time.perf_counter()  # the first shard's wall time includes the pool start-up
    with pool_map(task, items, workers, depth=3 * workers) as stream:
        for shard in shards:
            with _ShardOutput(plan, sample_rate, out_dir, shard, cfg.row_group_rows) as output:
                for batch in batches[shard]:
                    for utt, result in zip(batch, next(stream)):
                        output.add(utt, result)
            summary = output.summary()
            # No wall time in the part: timings would break byte-identical outputs.
            content = {k: v for k, v in to_dict(summary).items() if k != "wall_seconds"}
            write_part(out_dir, shard, cfg.num_shards, plan.fingerprint, SCHEMA_VERSION, content)
            summaries.append(replace(summary, wall_seconds=time.perf_counter() - mark))
            mark = time.perf_counter()
    return summaries


class _ShardOutput:
    """The three split files of one shard (closed on exit, removed when the block fails) and the counts that
    make its :class:`ShardSummary`."""

    def __init__(self, plan: Plan, sample_rate: int, out_dir: Path, shard: int, row_group_rows: int) -> None:
        self.plan, self.sample_rate, self.shard = plan, sample_rate, shard
        self.writers = {s: ShardWriter(shard_path(out_dir, s, shard), row_group_rows) for s in SPLITS}
        self.speakers: dict[str, set[str]] = {s: set() for s in SPLITS}
        self.corpus_name = plan.root.resolve().name
        self.kept_utterances: Counter[str] = Counter()
        self.rejected: list[dict[str, str]] = []
        self.source_files = 0
        self.source_seconds = 0.0
        self.clipped_files = 0
        self.clipped_samples = 0

    def add(self, utt: Utterance, result: _FileResult) -> None:
        split, source = self.plan.splits[utt.id], _relative(utt.path, self.plan.root)
        self.source_files += 1
        self.source_seconds += result.source_seconds
        for index, reason in result.rejected:
            rid = utt.id if index is None else _segment_id(utt.id, index)
            self.rejected.append({"id": rid, "source_path": source, "reason": reason})
        if result.segments:
            self.kept_utterances[split] += 1
            self.clipped_files += result.clipped_samples > 0
            self.clipped_samples += result.clipped_samples
            if utt.speaker is not None:
                self.speakers[split].add(utt.speaker)
        for seg in result.segments:
            self.writers[split].add(
                SegmentRow(
                    id=_segment_id(utt.id, seg.index),
                    utterance_id=utt.id,
                    segment=seg.index,
                    num_segments=result.num_segments,
                    offset=seg.offset,
                    speaker=utt.speaker,
                    gender=utt.gender,
                    text=utt.text if result.num_segments == 1 else None,
                    split=split,
                    source_path=source,
                    corpus=self.corpus_name,
                    format=self.plan.format,
                    source_sample_rate=result.source_rate,
                    sample_rate=self.sample_rate,
                    num_samples=int(seg.pcm.shape[0]),
                    audio=seg.pcm,
                )
            )

    def __enter__(self) -> _ShardOutput:
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        for writer in self.writers.values():
            writer.close(exc)

    def summary(self) -> ShardSummary:
        """What was written (call after the block)."""
        splits = {
            s: SplitSummary(
                w.rows, round(w.samples / self.sample_rate, 6), self.kept_utterances[s], sorted(self.speakers[s])
            )
            for s, w in self.writers.items()
        }
        return ShardSummary(
            self.shard,
            self.source_files,
            round(self.source_seconds, 6),
            splits,
            sorted(self.rejected, key=lambda r: r["id"]),
            self.clipped_files,
            self.clipped_samples,
        )


def _load_part(out_dir: Path, shard: int, num_shards: int, fingerprint: str) -> ShardSummary:
    path = part_path(out_dir, shard)
    part = read_part(out_dir, shard)
    if part is None:
        raise PrepareError(
            f"shard {shard} of {num_shards} has not been prepared ({path} is missing or unreadable); "
            f"run it with --shard {shard}"
        )
    if part.get("num_shards") != num_shards:
        raise PrepareError(
            f"{path} belongs to a run with {part.get('num_shards')} shards, not {num_shards}; prepare the shards again"
        )
    if part.get("fingerprint") != fingerprint:
        raise PrepareError(f"{path} was made from another corpus or config; prepare shard {shard} again")
    for split in SPLITS:
        if not shard_path(out_dir, split, shard).is_file():
            raise PrepareError(f"{shard_path(out_dir, split, shard)} is missing; prepare shard {shard} again")
    try:
        return from_dict(ShardSummary, {k: v for k, v in part.items() if k not in RUN_KEYS}, str(path))
    except ConfigError as exc:
        raise PrepareError(f"{exc}; prepare shard {shard} again") from None


def _file_entry(out_dir: Path, path: Path, rows: int, seconds: float) -> dict[str, Any]:
    return {
        "path": path.relative_to(out_dir).as_posix(),
        "rows": rows,
        "seconds": seconds,
        "bytes": path.stat().st_size,
        "sha256": file_sha256(path),
    }


def _params(cfg: PrepareConfig, sample_rate: int) -> dict[str, Any]:
    # workers changes speed, never content: leave it out so it cannot change outputs.
    params = to_dict(cfg)
    params.pop("workers")
    return {"sample_rate": sample_rate, "prepare": params}


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _segment_id(utterance_id: str, index: int) -> str:
    return f"{utterance_id}-{index:03d}"
