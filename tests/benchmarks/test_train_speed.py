"""The train speed benchmark draws a few loader batches and runs a few training steps of a tiny codec on tiny
shards (its timings are its output, never asserted here)."""

from __future__ import annotations

import re

from benchmarks import train_speed
from tests.benchmarks.conftest import finite, positive


def test_benchmark_smoke(tiny_params, tiny_shards, capsys):
    train_speed.main(["--params", str(tiny_params), "--shards", str(tiny_shards), "--steps", "3", "--batches", "3"])
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(rf"batch 2 x 0.25 s, 1 loader worker\(s\), \d+ torch threads, shards: {tiny_shards}", lines[0])
    loader = re.fullmatch(r"loader alone: +(\S+) examples/s", lines[1])
    step = re.fullmatch(
        r"training steps \(CPU\): +(\S+) examples/s \((\S+) s/step\), data wait (\S+)% of step time", lines[2]
    )
    ratio = re.fullmatch(r"loader / training: +(\S+)x \(target >= 5x\)", lines[3])
    assert loader and step and ratio, lines
    assert positive([float(loader[1]), float(step[1]), float(step[2]), float(ratio[1])])
    assert finite([float(step[3])])
    assert len(lines) == 4 or lines[4].startswith("training steps (CUDA): ")
