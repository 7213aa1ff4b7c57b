"""The loader memory benchmark writes a few seconds of corpus, prepares it and draws a few batches in each mode
(its speeds and memory are its output, never asserted here)."""

from __future__ import annotations

import re

from benchmarks import loader_memory
from tests.benchmarks.conftest import finite, positive


def test_benchmark_smoke(tmp_path, capsys):
    work = tmp_path / "work"
    loader_memory.main(["--hours", "0.01", "--window", "1", "--batches", "3", "--keep", str(work)])
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"corpus: 0.0 h of 16 kHz WAV written in \d+ s", lines[0]), lines[0]
    prepare = re.fullmatch(
        r"prepare: (\S+) h of train split in (\d+) s \((\d+)x real time\); peak RSS (\d+) MB \(main process\), "
        r"(\d+) MB \(largest worker\)",
        lines[1],
    )
    assert prepare and finite([float(v) for v in prepare.groups()]), lines[1]
    assert lines[2] == ""
    split = re.fullmatch(
        r"train split: (\d+) rows in (\d+) row groups, \d+ MB of Parquet; a training step consumes (\S+) examples/s "
        "here",
        lines[3],
    )
    assert split and positive([float(v) for v in split.groups()]), lines[3]
    assert lines[4].split() == ["mode", "examples/s", "x", "training", "worker", "peak", "RSS"]
    modes = [re.fullmatch(r"(.+?) +(\d+) +(\d+)x +(\d+) MB", line) for line in lines[5:7]]
    assert [m and m[1] for m in modes] == ["in-memory (cached_row_groups: 0)", "window (cached_row_groups: 1)"]
    assert all(m and finite([float(m[2])]) and positive([float(m[4])]) for m in modes)
    assert re.fullmatch(r"the window mode holds \S+x less per worker, at \S+x the in-memory speed", lines[7])
    assert len(lines) == 8
    assert (work / "corpus" / ".complete").is_file() and (work / "prepared" / "shards" / "manifest.json").is_file()
