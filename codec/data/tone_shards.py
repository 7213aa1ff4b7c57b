"""A small synthetic shard folder (harmonic tones) for tests and benchmarks when no corpus is at hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from codec.data.shards import MANIFEST, SegmentRow, ShardWriter, shard_path
from codec.runtime.io import write_json_atomic


def synthetic_rows(
    split: str, count: int, sample_rate: int, min_seconds: float, max_seconds: float, seed: int
) -> list[SegmentRow]:
    """``count`` rows of 3-harmonic tones (100-300 Hz, 5 Hz vibrato, a little noise), int16 PCM."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        n = int(rng.integers(round(min_seconds * sample_rate), round(max_seconds * sample_rate) + 1))
        t = np.arange(n) / sample_rate
        phase = 2 * np.pi * rng.uniform(100, 300) * t + 3 * np.sin(2 * np.pi * 5 * t)
        wave = sum(np.sin(k * phase) / k for k in range(1, 4)) * rng.uniform(0.1, 0.4)
        wave += 0.01 * rng.standard_normal(n)
        pcm = np.clip(wave * 32767, -32768, 32767).astype(np.int16)
        rows.append(
            SegmentRow(
                id=f"{split}-{i:05d}-000",
                utterance_id=f"{split}-{i:05d}",
                segment=0,
                num_segments=1,
                offset=0,
                speaker=f"spk{i % 4}",
                gender=None,
                text=None,
                split=split,
                source_path=f"{split}/{i:05d}.wav",
                corpus="synthetic",
                format="folder",
                source_sample_rate=sample_rate,
                sample_rate=sample_rate,
                num_samples=n,
                audio=pcm,
            )
        )
    return rows


def write_synthetic_shards(
    root: str | Path,
    *,
    sample_rate: int = 16000,
    train_rows: int = 48,
    valid_rows: int = 8,
    num_shards: int = 2,
    min_seconds: float = 0.02,
    max_seconds: float = 0.2,
    row_group_rows: int = 8,
    seed: int = 0,
) -> Path:
    """Write ``<root>/{train,valid}/part-XXXXX.parquet`` and a ``manifest.json`` that lists them."""
    root = Path(root)
    splits = {}
    for k, (split, count) in enumerate((("train", train_rows), ("valid", valid_rows))):
        rows = synthetic_rows(split, count, sample_rate, min_seconds, max_seconds, seed + k)
        files = []
        for shard in range(num_shards):
            path = shard_path(root, split, shard)
            with ShardWriter(path, row_group_rows) as writer:
                for row in rows[shard::num_shards]:
                    writer.add(row)
            files.append({"path": path.relative_to(root).as_posix()})
        splits[split] = {"rows": count, "seconds": sum(r.num_samples for r in rows) / sample_rate, "files": files}
    write_json_atomic(root / MANIFEST, {"splits": splits, "sample_rate": sample_rate})
    return root
