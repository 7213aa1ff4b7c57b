"""The residual-VQ speed benchmark runs both quantizers on a tiny latent (its timings are its output, never
asserted here)."""

from __future__ import annotations

import pytest

from benchmarks import quantizer_speed
from tests.benchmarks.conftest import numbers, positive

pytest.importorskip("vector_quantize_pytorch", reason="the benchmark compares with it (bench extra)")


def test_benchmark_smoke(capsys):
    quantizer_speed.main(
        ["--batch", "2", "--frames", "8", "--dim", "8", "--levels", "2", "--codebook-size", "16", "--steps", "2",
         "--warmup", "1", "--threads", "1"]
    )  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("train step B=2 T=8 D=8 2 levels x 16 entries, 1 threads, median of 2 steps")
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"ours", "vector_quantize_pytorch", "speed-up"}
    for name in ("ours", "vector_quantize_pytorch"):
        assert rows[name].endswith("ms/step") and positive(numbers(rows[name]))
    assert positive(numbers(rows["speed-up"].split("(target")[0]))
