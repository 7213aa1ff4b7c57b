"""Per-level code statistics of a tokenized corpus (pure functions over code counts).

For each corpus and level: the entries used, the perplexity, the empirical entropy (what an ideal per-level
entropy coder spends) and the cross-entropy under the export's code distributions (what the ``.tcq`` range
coder spends on these codes), and the bitrates they make at the codec's frame rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from codec.dsp.metrics import entropy_bits, nominal_kbps, perplexity, used_fraction


@dataclass(frozen=True)
class CodeCounts:
    """How often each entry of each level occurs: ``counts [L, K]`` int64."""

    counts: np.ndarray

    @classmethod
    def of(cls, levels: int, codebook_size: int, codes: Sequence[np.ndarray]) -> CodeCounts:
        """Counts of ``codes`` (each ``[levels, F]``)."""
        counts = np.zeros((levels, codebook_size), dtype=np.int64)
        for c in codes:
            for level in range(levels):
                counts[level] += np.bincount(c[level].astype(np.int64), minlength=codebook_size)
        return cls(counts)


def model_bits(counts: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Bits per frame of each level under ``probabilities [L, K]`` (cross-entropy): ``[L]``."""
    total = counts.sum(axis=1).clip(min=1)
    return -(counts * np.log2(probabilities)).sum(axis=1) / total


def token_stats(
    tallies: dict[str, CodeCounts],
    corpora: dict[str, Any],
    frame_rate: float,
    probabilities: np.ndarray,
    skipped: list[dict[str, str]],
) -> dict[str, Any]:
    """The stats json: per corpus, rows / frames / hours per split and per-level figures over all its splits."""
    out: dict[str, Any] = {"frame_rate": frame_rate, "corpora": {}}
    for name, tally in tallies.items():
        counts = tally.counts
        levels, size = counts.shape
        torch_counts = torch.from_numpy(counts)
        entropy = entropy_bits(torch_counts).numpy()
        coded = model_bits(counts, probabilities)
        splits = corpora[name]["splits"]
        frames = sum(s["frames"] for s in splits.values())
        out["corpora"][name] = {
            "rows": sum(s["rows"] for s in splits.values()),
            "frames": frames,
            "tokens": frames * levels,
            "hours": round(frames / frame_rate / 3600, 6),
            "splits": {split: {"rows": s["rows"], "frames": s["frames"]} for split, s in splits.items()},
            "skipped": sum(1 for s in skipped if s["corpus"] == name),
            "nominal_kbps": nominal_kbps(levels, size, frame_rate),
            "entropy_kbps": round(float(entropy.sum()) * frame_rate / 1000, 6),
            "model_coded_kbps": round(float(coded.sum()) * frame_rate / 1000, 6) if frames else 0.0,
            "levels": [
                {
                    "level": level,
                    "used_fraction": round(float(used_fraction(torch_counts)[level]), 6),
                    "perplexity": round(float(perplexity(torch_counts)[level]), 3),
                    "entropy_bits": round(float(entropy[level]), 6),
                    "model_bits": round(float(coded[level]), 6),
                }
                for level in range(levels)
            ],
        }
    return out
