"""The CLI speed benchmark runs `telucodec encode`/`decode` in process on a tiny codec and half a second of
audio (its timings are its output, never asserted here). Its batch comparison (``--batch-clips``) is left out:
it starts at least three interpreters (10-25 s on a loaded 2-core machine); the batch CLI itself is tested in
tests/codec/cli."""

from __future__ import annotations

import re

from benchmarks import cli_speed
from tests.benchmarks.conftest import finite, positive


def test_benchmark_smoke(tiny_params, capsys):
    cli_speed.main(
        ["--params", str(tiny_params), "--seconds", "0.5", "--repeats", "1", "--input-rate", "22050",
         "--channels", "2", "--batch-clips", "0"]
    )  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("cli_speed: default codec (")
    assert "4 levels x 32), 0.5 s input at 22050 Hz x 2 ch, 1 thread, best of 1" in lines[0]
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["encode", "decode", "bitstream"]  # no batch
    for line in lines[1:3]:
        seconds = re.fullmatch(r"  \w+: (\S+) s wall \((\S+)x real time\), (\S+) s CPU \((\S+)x real time\)", line)
        assert seconds, line
        assert positive([float(seconds[1]), float(seconds[3])]) and finite([float(seconds[2]), float(seconds[4])])
    bitstream = re.fullmatch(
        r"  bitstream: (\d+) bytes, (\S+) kbit/s nominal, (\S+) kbit/s achieved \(entropy-coded, random weights\)",
        lines[3],
    )
    assert bitstream and positive([float(v) for v in bitstream.groups()]), lines[3]
