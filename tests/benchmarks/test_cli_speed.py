"""The CLI speed benchmark runs `telucodec encode`/`decode` and the batch comparison on a tiny codec and a
fraction of a second of audio (its timings are its output, never asserted here)."""

from __future__ import annotations

import re

import pytest
import torch

from benchmarks import cli_speed
from tests.benchmarks.conftest import finite, numbers, positive


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()  # the benchmark sets torch's threads
    yield
    torch.set_num_threads(threads)


def test_benchmark_smoke(tiny_params, capsys):
    cli_speed.main(
        ["--params", str(tiny_params), "--seconds", "0.5", "--repeats", "1", "--input-rate", "22050",
         "--channels", "2", "--batch-clips", "1", "--clip-seconds", "0.3"]
    )  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("cli_speed: default codec (")
    assert "4 levels x 32), 0.5 s input at 22050 Hz x 2 ch, 1 thread, best of 1" in lines[0]
    assert [line.split(":")[0].strip() for line in lines[1:4]] == ["encode", "decode", "bitstream"]
    for line in lines[1:3]:
        seconds = re.fullmatch(r"  \w+: (\S+) s wall \((\S+)x real time\), (\S+) s CPU \((\S+)x real time\)", line)
        assert seconds, line
        assert positive([float(seconds[1]), float(seconds[3])]) and finite([float(seconds[2]), float(seconds[4])])
    assert positive(numbers(lines[3]))  # bytes, nominal and achieved kbit/s
    assert lines[4].startswith("cli_speed batch: 1 clips of 0.3 s")
    labels = [line.split(":")[0].strip() for line in lines[5:8]]
    assert labels[:2] == ["a process per file, 1 thread", "one batch call, --jobs 1, 1 thread"]
    assert labels[2].startswith("one batch call, every core (")
    assert all(finite(numbers(line.split(":")[1])) for line in lines[5:8])
    assert lines[8].strip() == "batch output identical to per-file output: True"
    assert len(lines) == 9
