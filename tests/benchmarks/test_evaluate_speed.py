"""The evaluate-stage speed benchmark scores a short utterance with a tiny codec at every level count (and Opus,
when its tools are installed) and costs every metric (its timings are its output, never asserted here)."""

from __future__ import annotations

import re

from benchmarks import evaluate_speed
from codec.evaluation.opus import OpusUnavailable, find_opus_tools
from tests.benchmarks.conftest import finite, numbers, positive

METRICS = ["snr + si_snr + segsnr", "mel_distance", "lsd_db", "mrstft_distance", "stoi", "pesq_wb"]


def test_benchmark_smoke(tiny_params, capsys):
    evaluate_speed.main(["--params", str(tiny_params), "--utterances", "1", "--seconds", "1"])
    lines = capsys.readouterr().out.splitlines()
    try:
        find_opus_tools()
        opus = 1  # the tiny params' one Opus bitrate
    except OpusUnavailable:
        assert lines.pop(0).startswith("note: ")  # Opus not timed, and said so
        opus = 0
    assert lines[0].startswith("device cpu, threads ")
    assert lines[0].endswith(f"1 x 1 s, 2 level counts + {opus} Opus bitrates")
    rtf = re.fullmatch(r"codec real-time factor \(all 4 levels\): encode x(\S+), decode x(\S+)", lines[1])
    assert rtf and positive([float(rtf[1]), float(rtf[2])])
    assert lines[2].startswith("stage wall time per utterance: ") and positive(numbers(lines[2]))
    assert lines[3] == f"metric cost for one 1 s utterance and {2 + opus} systems:"
    costs = dict(line.strip().rsplit(maxsplit=2)[:2] for line in lines[4:])
    assert list(costs) == METRICS and finite([float(v) for v in costs.values()])
    assert all(line.endswith(" s") for line in lines[4:])
