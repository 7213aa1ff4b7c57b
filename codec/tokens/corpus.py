"""Corpus to codes: the prepared shards (and more corpora) encoded by an exported codec into token shards.

Three entry points, like ``prepare``'s, all deterministic (same inputs, model and config -> the same files):

- :func:`tokenize_shard` encodes shard ``i`` of every source: the prepared shards' ``<split>/part-i.parquet``,
  and of each extra corpus the utterances ``prepare`` would put in shard ``i`` (``shard_of(id)``), cleaned and
  split with ``prepare``'s settings; it writes ``<out>/<source>/<split>/part-i.parquet`` and
  ``<out>/parts/part-i.json`` (rows, frames, file digests, skipped segments, code counts);
- :func:`merge_tokens` checks every part, writes ``<out>/manifest.json``, the stats json and the skipped csv;
- :func:`run_tokenize` does every shard in a process pool, then the merge.

The layout, the parts, the pool and the Parquet writer are :mod:`codec.runtime.sharded`'s, shared with
``prepare``. A part whose json matches this run's fingerprint (model id, settings, input digests, code) and whose
files are intact is kept as it is: a run killed halfway resumes with the shards it had not finished. The temporary
files a killed write leaves (``.<name>.<random>.tmp`` beside ``<name>``, :func:`codec.runtime.io.atomic_path`'s)
are removed when the stage runs again: a shard's own when it starts, every one under ``<out>`` at the merge
(after every shard is done); the stage says how many. The codes of a
segment are :func:`codec.model.chunked.encode_waveform`'s, the function ``telucodec encode`` uses, so a row
holds exactly the codes of the ``.tcq`` file of the same audio.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from codec.config.convert import to_dict
from codec.config.prepare import CorpusFormat, PrepareConfig
from codec.config.tokenize import TokenizeConfig
from codec.data.audio import AudioRejected, pcm16_to_float, peak_dbfs, process_file
from codec.data.prepare import make_plan
from codec.data.shards import iter_segments, read_manifest, shard_path
from codec.data.splits import SPLITS
from codec.formats.export import ExportedCodec, load_export
from codec.formats.tokens import MAX_CODEBOOK_SIZE, TOKEN_SCHEMA_VERSION, TokenRow, TokenWriter
from codec.model.chunked import Runner, encode_waveform
from codec.runtime.cpus import available_cpus
from codec.runtime.io import CODE_ROOT, code_digest, file_sha256, write_csv_atomic, write_json_atomic
from codec.runtime.sharded import (
    MANIFEST,
    changed_file,
    kept_part,
    part_path,
    pool_map,
    read_part,
    remove_temp_files,
    shard_file,
    write_part,
)
from codec.tokens.stats import CodeCounts, token_stats

CHUNK_FRAMES = 1000  # 20 s at 50 frames/s, the CLI's default chunk; codes do not depend on it
# The code a part's content depends on: this package, the token format, the model, the clean-up and the shard
# machinery (the Parquet writer, the parts).
_CODE_FILES = (
    "tokens",
    "formats/tokens.py",
    "model",
    "quantization",
    "data/audio.py",
    "data/prepare.py",
    "runtime/sharded.py",
)


class TokenizeError(RuntimeError):
    """The corpus cannot be tokenized as asked (no shards, an unusable model, missing parts)."""


@dataclass(frozen=True)
class Source:
    """One corpus to tokenize: the prepared shards, or a corpus folder cleaned and split like ``prepare``."""

    name: str
    path: Path
    format: CorpusFormat | None = None  # None: the prepared shards at ``path``

    @property
    def is_shards(self) -> bool:
        return self.format is None


def sources(cfg: TokenizeConfig, shards_dir: str | Path) -> list[Source]:
    return [Source(cfg.corpus_name, Path(shards_dir))] + [Source(c.name, Path(c.path), c.format) for c in cfg.corpora]


def token_path(out_dir: str | Path, source: str, split: str, shard: int) -> Path:
    return shard_file(Path(out_dir) / source / split, shard)


def _report_removed(removed: list[Path], when: str) -> None:
    if removed:
        print(
            f"note: tokenize: {when}: removed {len(removed)} temporary file(s) left by a killed run "
            f"({', '.join(p.name for p in removed[:3])}{', ...' if len(removed) > 3 else ''})",
            file=sys.stderr,
        )


def _fingerprint(model_id: str, cfg: TokenizeConfig, prepare: PrepareConfig, inputs: dict[str, str]) -> str:
    """What a part's content depends on: the model, the settings, its inputs' digests and the code."""
    settings = {
        "tokenize": {**to_dict(cfg), "workers": None},
        "cleanup": {**to_dict(prepare), "corpus": None, "workers": None, "row_group_rows": None},
    }
    text = json.dumps([model_id, settings, inputs, code_digest(CODE_ROOT, _CODE_FILES)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------------------------------- one shard


@dataclass
class _Output:
    """What one (source, split) of a shard wrote."""

    rows: int
    frames: int
    counts: CodeCounts


def _input_digests(
    srcs: list[Source], shards_dir: Path, prepare: PrepareConfig, sample_rate: int, shard: int
) -> dict[str, str]:
    """Per source, a digest of what shard ``shard`` reads: shard files by their manifest sha256, a corpus by
    ``prepare``'s plan fingerprint (index + settings) and the sizes and times of the shard's files."""
    out = {}
    for src in srcs:
        if src.is_shards:
            files = {
                f["path"]: f["sha256"]
                for split in read_manifest(src.path)["splits"].values()
                for f in split["files"]
                if f["path"].endswith(f"part-{shard:05d}.parquet")
            }
            out[src.name] = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
        else:
            plan = _corpus_plan(src, prepare, sample_rate)
            stat = [
                (u.id, (s := Path(u.path).stat()).st_size, s.st_mtime_ns)
                for u in plan.shard_utterances(shard, prepare.num_shards)
            ]
            out[src.name] = hashlib.sha256(json.dumps([plan.fingerprint, stat]).encode()).hexdigest()
    return out


def _corpus_plan(src: Source, prepare: PrepareConfig, sample_rate: int):
    return make_plan(replace(prepare, corpus=str(src.path), format=src.format or "auto"), sample_rate)


def _segments(
    src: Source, prepare: PrepareConfig, sample_rate: int, shard: int, skipped: list[dict[str, str]]
) -> Iterator[tuple[TokenRow, np.ndarray]]:
    """Shard ``shard``'s segments of ``src`` as (row without codes, float32 audio); unusable ones go to
    ``skipped``."""
    if src.is_shards:
        for split in SPLITS:
            for seg in iter_segments(shard_path(src.path, split, shard)):
                audio = pcm16_to_float(seg.audio)
                if seg.sample_rate != sample_rate:
                    skipped.append(
                        {
                            "corpus": src.name,
                            "id": seg.id,
                            "reason": f"sample rate {seg.sample_rate} Hz, the codec's is {sample_rate} Hz",
                        }
                    )
                    continue
                row = TokenRow(
                    seg.id,
                    seg.utterance_id,
                    seg.speaker,
                    seg.gender,
                    seg.text,
                    seg.split,
                    seg.num_samples,
                    seg.sample_rate,
                    0.0,
                    np.empty((0, 0)),
                )
                yield row, audio
        return
    plan = _corpus_plan(src, prepare, sample_rate)
    options = prepare.audio_options(sample_rate)
    for utt in plan.shard_utterances(shard, prepare.num_shards):
        try:
            processed = process_file(utt.path, options)
        except AudioRejected as exc:
            skipped.append({"corpus": src.name, "id": utt.id, "reason": str(exc)})
            continue
        for segment in processed.segments:
            audio = pcm16_to_float(segment.pcm)
            row = TokenRow(
                f"{utt.id}-{segment.index:03d}",
                utt.id,
                utt.speaker,
                utt.gender,
                utt.text,
                plan.splits[utt.id],
                int(audio.shape[0]),
                sample_rate,
                0.0,
                np.empty((0, 0)),
            )
            yield row, audio


def encode_segment(model: ExportedCodec, audio: np.ndarray, levels: int, runner: Runner | None = None) -> np.ndarray:
    """``audio [T]`` float32 at the codec's rate -> codes ``[levels, ceil(T / hop)]`` int16, as ``telucodec encode``
    computes them (with ``runner``, e.g. :class:`codec.formats.onnx_runtime.OnnxCodec`, in place of the torch codec)."""
    with torch.inference_mode():
        codes = encode_waveform(runner or model.codec, audio, levels, CHUNK_FRAMES)
    return codes.numpy().astype(np.int16)


def tokenize_shard(
    model_path: str | Path,
    shards_dir: str | Path,
    cfg: TokenizeConfig,
    prepare: PrepareConfig,
    sample_rate: int,
    out_dir: str | Path,
    shard: int,
    threads: int = 0,
    backend: str = "torch",
    onnx_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Encode shard ``shard`` of every source (see the module docstring); returns its part (the json's content).
    Kept as it is when a part of this run is there intact. ``backend`` ``onnx``: the codes computed by the export's
    ONNX graphs in ``onnx_dir`` (default: beside the export), a run of its own (the part's fingerprint says so)."""
    if not 0 <= shard < prepare.num_shards:
        raise TokenizeError(f"shard {shard} is outside 0..{prepare.num_shards - 1}")
    shards_dir, out_dir = Path(shards_dir), Path(out_dir)
    model = _load_model(model_path)
    codec = model.codec
    levels = cfg.levels or codec.num_levels
    if levels > codec.num_levels:
        raise TokenizeError(f"tokenize.levels is {levels}, the model has {codec.num_levels} levels")
    if codec.quantizer.codebook_size > MAX_CODEBOOK_SIZE:
        raise TokenizeError(f"codebook size {codec.quantizer.codebook_size}: token shards hold int16 codes")
    runner = _runner(model, backend, onnx_dir, threads)
    removed = remove_temp_files(out_dir, shard)  # this shard's writes that a killed run left half done
    _report_removed(removed, f"shard {shard}")
    srcs = sources(cfg, shards_dir)
    try:
        fingerprint = _fingerprint(
            model.model_id if runner is None else f"{model.model_id}/{backend}",
            cfg,
            prepare,
            _input_digests(srcs, shards_dir, prepare, sample_rate, shard),
        )
    except FileNotFoundError as exc:
        raise TokenizeError(f"{exc.filename}: not found (run the prepare stage first)") from None
    kept = kept_part(out_dir, shard, fingerprint)
    if kept is not None:
        return {**kept, "seconds": 0.0, "wall_seconds": 0.0, "kept": True, "removed_temp_files": len(removed)}
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    skipped: list[dict[str, str]] = []
    files, seconds = [], 0.0
    counts: dict[str, dict[str, list[list[int]]]] = {}
    for src in srcs:
        by_split: dict[str, list[TokenRow]] = {split: [] for split in SPLITS}
        for row, audio in _segments(src, prepare, sample_rate, shard, skipped):
            reason = _unusable(audio, prepare, codec.hop_length, cfg.min_frames)
            if reason:
                skipped.append({"corpus": src.name, "id": row.id, "reason": reason})
                continue
            codes = encode_segment(model, audio, levels, runner)
            by_split[row.split].append(replace(row, frame_rate=codec.frame_rate, codes=codes))
            seconds += audio.shape[0] / sample_rate
        counts[src.name] = {}
        for split, rows in by_split.items():
            rows.sort(key=lambda r: r.id)
            path = token_path(out_dir, src.name, split, shard)
            with TokenWriter(
                path, levels, model.model_id, cfg.row_group_rows, codebook_size=int(codec.quantizer.codebook_size)
            ) as writer:
                for row in rows:
                    writer.add(row)
            tally = CodeCounts.of(levels, int(codec.quantizer.codebook_size), [r.codes for r in rows])
            counts[src.name][split] = tally.counts.tolist()
            files.append(
                {
                    "path": path.relative_to(out_dir).as_posix(),
                    "rows": writer.rows,
                    "frames": writer.frames,
                    "sha256": file_sha256(path),
                }
            )
    content = {
        "model_id": model.model_id,
        "levels": levels,
        "frame_rate": codec.frame_rate,
        "sample_rate": sample_rate,
        "files": files,
        "skipped": sorted(skipped, key=lambda s: (s["corpus"], s["id"])),
        "counts": counts,
    }
    part = write_part(out_dir, shard, prepare.num_shards, fingerprint, TOKEN_SCHEMA_VERSION, content)
    return {
        **part,
        "seconds": seconds,
        "wall_seconds": time.perf_counter() - start,
        "removed_temp_files": len(removed),
    }


def _load_model(path: str | Path) -> ExportedCodec:
    try:
        return load_export(path)
    except ValueError as exc:
        raise TokenizeError(str(exc)) from None


def _runner(model: ExportedCodec, backend: str, onnx_dir: str | Path | None, threads: int) -> Runner | None:
    """None for the torch codec, else the ONNX runtime of ``model`` (:class:`TokenizeError` when it cannot load)."""
    if backend == "torch":
        return None
    if backend != "onnx":
        raise TokenizeError(f"unknown backend {backend!r} (torch or onnx)")
    from codec.formats.onnx_runtime import OnnxBackendError, OnnxCodec, default_onnx_dir

    assert model.path is not None  # load_export records it
    try:
        return OnnxCodec(model, onnx_dir or default_onnx_dir(model.path), threads=threads)
    except OnnxBackendError as exc:
        raise TokenizeError(str(exc)) from None


def _unusable(audio: np.ndarray, prepare: PrepareConfig, hop: int, min_frames: int) -> str | None:
    if not np.isfinite(audio).all():
        return "bad audio: non-finite samples"
    if -(-audio.shape[0] // hop) < min_frames:
        return f"too short: {audio.shape[0]} samples, fewer than {min_frames} code frame(s)"
    level = peak_dbfs(audio)
    if level < prepare.silence_dbfs:
        return f"silent: peak {level:.1f} dBFS < {prepare.silence_dbfs:.1f} dBFS"
    return None


# ---------------------------------------------------------------------------------------- all shards


def _shard_job(job: tuple) -> dict[str, Any]:
    return tokenize_shard(*job)


def run_tokenize(
    model_path: str | Path,
    shards_dir: str | Path,
    cfg: TokenizeConfig,
    prepare: PrepareConfig,
    sample_rate: int,
    out_dir: str | Path,
    stats_path: str | Path,
    skipped_path: str | Path,
    backend: str = "torch",
    onnx_dir: str | Path | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Every shard (``cfg.workers`` processes, one shard each at a time), then :func:`merge_tokens`."""
    shards = list(range(prepare.num_shards))
    workers = min(cfg.workers or available_cpus(), len(shards))
    threads = max(1, available_cpus() // workers)
    jobs = [
        (model_path, shards_dir, cfg, prepare, sample_rate, out_dir, shard, threads, backend, onnx_dir)
        for shard in shards
    ]
    with pool_map(_shard_job, jobs, workers) as results:
        parts = list(results)
    return merge_tokens(model_path, shards_dir, cfg, prepare, out_dir, stats_path, skipped_path), parts


def merge_tokens(
    model_path: str | Path,
    shards_dir: str | Path,
    cfg: TokenizeConfig,
    prepare: PrepareConfig,
    out_dir: str | Path,
    stats_path: str | Path,
    skipped_path: str | Path,
) -> dict[str, Any]:
    """Check every shard's part (present, of this model, files intact), remove files no part lists (a corpus
    dropped from the config) and temporary files killed writes left, write the manifest, the stats json and the
    skipped csv; returns the stats."""
    out_dir = Path(out_dir)
    model = _load_model(model_path)
    parts = []
    for shard in range(prepare.num_shards):
        path, part = part_path(out_dir, shard), read_part(out_dir, shard)
        if part is None:
            raise TokenizeError(f"{path} is missing or unreadable: tokenize shard {shard} (--shard {shard})")
        if part.get("model_id") != model.model_id or part.get("num_shards") != prepare.num_shards:
            raise TokenizeError(f"{path} was made with another model or shard count: tokenize shard {shard} again")
        changed = changed_file(out_dir, part)
        if changed is not None:
            raise TokenizeError(f"{changed} is missing or changed: tokenize shard {shard} again")
        parts.append(part)
    names = [s.name for s in sources(cfg, shards_dir)]
    listed = {f["path"] for p in parts for f in p["files"]}
    for stale in sorted(p for p in out_dir.rglob("*.parquet") if p.relative_to(out_dir).as_posix() not in listed):
        stale.unlink()
    _report_removed(remove_temp_files(out_dir), "merge")
    levels, frame_rate = parts[0]["levels"], parts[0]["frame_rate"]
    size = int(model.codec.quantizer.codebook_size)
    corpora: dict[str, Any] = {}
    tallies: dict[str, CodeCounts] = {}
    for name in names:
        splits = {}
        for split in SPLITS:
            files = [f for p in parts for f in p["files"] if f["path"].startswith(f"{name}/{split}/")]
            splits[split] = {
                "rows": sum(f["rows"] for f in files),
                "frames": sum(f["frames"] for f in files),
                "files": files,
            }
        corpora[name] = {"splits": splits}
        tallies[name] = CodeCounts(
            np.sum(
                [np.asarray(p["counts"][name][split], dtype=np.int64) for p in parts for split in SPLITS], axis=0
            ).reshape(levels, size)
        )
    skipped = sorted((s for p in parts for s in p["skipped"]), key=lambda s: (s["corpus"], s["id"]))
    manifest = {
        "schema_version": TOKEN_SCHEMA_VERSION,
        "model_id": model.model_id,
        "levels": levels,
        "frame_rate": frame_rate,
        "sample_rate": parts[0]["sample_rate"],
        "codebook_size": size,
        "num_shards": prepare.num_shards,
        "skipped": len(skipped),
        "corpora": corpora,
    }
    write_json_atomic(out_dir / MANIFEST, manifest)
    stats = token_stats(tallies, corpora, frame_rate, model.probabilities[:levels], skipped)
    write_json_atomic(stats_path, {"model_id": model.model_id, **stats})
    write_csv_atomic(skipped_path, ["corpus", "id", "reason"], skipped)
    return stats
