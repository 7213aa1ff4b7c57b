"""Tiny settings for the benchmarks' smoke tests: each benchmark runs its real code path on tiny input."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.params import merge_params

ROOT = Path(__file__).resolve().parents[2]

# params.yaml with the tests' tiny codec (tests/codec/conftest.py: hop 320, 4 levels x 32), a tiny training batch,
# and two evaluated level counts with one Opus bitrate.
TINY_PARAMS = {
    "model": {"channels": 4, "latent_dim": 16, "n_residual_layers": 1},
    "quantizer": {"num_levels": 4, "codebook_size": 32, "dead_code_max_per_step": 16},
    "train": {"batch_size": 2, "segment_seconds": 0.25, "num_workers": 1, "prefetch_batches": 2},
    "evaluate": {"levels": [1, 4], "opus_kbps": [6]},
}


def write_params(path: Path, override: dict) -> Path:
    """params.yaml with ``override`` merged over it, written to ``path``."""
    base = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    path.write_text(yaml.safe_dump(merge_params(base, override)), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """The benchmarks set torch's thread count as they measure: each test leaves it as it found it."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_params(tmp_path) -> Path:
    return write_params(tmp_path / "params.yaml", TINY_PARAMS)


NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")


def numbers(text: str) -> list[float]:
    """Every number in ``text`` (thousands separators allowed)."""
    return [float(n.replace(",", "")) for n in NUMBER.findall(text)]


def positive(values: list[float]) -> bool:
    return bool(values) and all(math.isfinite(v) and v > 0 for v in values)


def finite(values: list[float]) -> bool:
    """Finite and not negative: a rate of a tiny run may print as 0 at the benchmark's precision."""
    return bool(values) and all(math.isfinite(v) and v >= 0 for v in values)


def table(text: str) -> list[list[str]]:
    """The body rows of the Markdown tables in ``text`` (header and rule rows left out), as cells."""
    rows = [line.strip().strip("|").split("|") for line in text.splitlines() if line.strip().startswith("|")]
    rows = [[cell.strip() for cell in row] for row in rows]
    return [row for i, row in enumerate(rows) if not set("".join(row)) <= set("-: ") and not _is_header(rows, i)]


def _is_header(rows: list[list[str]], i: int) -> bool:
    return i + 1 < len(rows) and set("".join(rows[i + 1])) <= set("-: ")
